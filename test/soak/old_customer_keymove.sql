-- Old version: move the customer between ids k and k2; ON UPDATE CASCADE moves its orders.
-- Picks a logical customer key k owned by this client ((k - 1) % nslots = slot0 + client_id), its
-- other id k2 (an old-version key update moves a customer between k and k2, and its orders with it:
-- ON UPDATE CASCADE), and a value v.  What the write changed, and the row it returned, go to
-- aux.pledger in the same statement.
\set k random(0, :ckeys / :nslots - 1) * :nslots + :slot0 + :client_id + 1
\set k2 :k + :ckoff
\set v random(1, 1000000)
WITH w AS (
  UPDATE customers SET id = CASE WHEN id = :k::int THEN :k2::int ELSE :k::int END
   WHERE id IN (:k::int, :k2::int)
  RETURNING id, name, writer)
INSERT INTO aux.pledger (k, how, rid, cid, delta, v, phase, r_name, r_writer)
SELECT :k::bigint, 'old_customer_keymove', id, id, 0, :k2::int, :phase::int, name, writer FROM w;
