-- Old version: delete the customer; ON DELETE CASCADE deletes its orders, which the statement
-- counts beforehand (every part of it sees the orders as they were before).
-- Picks a logical customer key k owned by this client ((k - 1) % nslots = slot0 + client_id), its
-- other id k2 (an old-version key update moves a customer between k and k2, and its orders with it:
-- ON UPDATE CASCADE), and a value v.  What the write changed, and the row it returned, go to
-- aux.pledger in the same statement.
\set k random(0, :ckeys / :nslots - 1) * :nslots + :slot0 + :client_id + 1
\set k2 :k + :ckoff
\set v random(1, 1000000)
WITH w AS (
  DELETE FROM customers WHERE id IN (:k::int, :k2::int)
  RETURNING id, name, writer)
INSERT INTO aux.pledger (k, how, rid, cid, delta, v, phase, r_name, r_writer, cascaded)
SELECT :k::bigint, 'old_customer_delete', id, id, -1, :k2::int, :phase::int, name, writer,
       (SELECT count(*) FROM orders o WHERE o.customer_id = w.id) FROM w;
