-- Old version: insert the customer if it is absent (neither k nor k2 holds it).
-- Picks a logical customer key k owned by this client ((k - 1) % nslots = slot0 + client_id), its
-- other id k2 (an old-version key update moves a customer between k and k2, and its orders with it:
-- ON UPDATE CASCADE), and a value v.  What the write changed, and the row it returned, go to
-- aux.pledger in the same statement.
\set k random(0, :ckeys / :nslots - 1) * :nslots + :slot0 + :client_id + 1
\set k2 :k + :ckoff
\set v random(1, 1000000)
WITH w AS (
  INSERT INTO customers (id, name, writer)
  SELECT :k::int, 'c' || :k::int, 'old'
   WHERE NOT EXISTS (SELECT FROM customers WHERE id IN (:k::int, :k2::int))
  RETURNING id, name, writer)
INSERT INTO aux.pledger (k, how, rid, cid, delta, v, phase, r_name, r_writer)
SELECT :k::bigint, 'old_customer_insert', id, id, 1, :k2::int, :phase::int, name, writer FROM w;
