-- Old version: an order of the customer, at the id it has now, if it exists.
-- Picks a logical customer key k owned by this client ((k - 1) % nslots = slot0 + client_id), its
-- other id k2 (an old-version key update moves a customer between k and k2, and its orders with it:
-- ON UPDATE CASCADE), and a value v.  What the write changed, and the row it returned, go to
-- aux.pledger in the same statement.
\set k random(0, :ckeys / :nslots - 1) * :nslots + :slot0 + :client_id + 1
\set k2 :k + :ckoff
\set v random(1, 1000000)
WITH w AS (
  INSERT INTO orders (id, customer_id, amount)
  SELECT nextval('aux.order_ids'), c.id, :v::int FROM customers c WHERE c.id IN (:k::int, :k2::int)
  RETURNING id, customer_id, amount)
INSERT INTO aux.pledger (k, how, rid, cid, delta, v, phase)
SELECT :k::bigint, 'old_order_insert', id, customer_id, 1, amount, :phase::int FROM w;
