-- New version: delete the customer's oldest order.
-- Picks a logical customer key k owned by this client ((k - 1) % nslots = slot0 + client_id) and a
-- value v.  The new version shows a customer's id, the key under migration, as NULL until the
-- backfill reaches the row, so it finds customers by their name; its own customers are never moved
-- (only the old version's clients move keys, theirs), so a customer of its own lives at id k.  What
-- the write changed, and the row it returned, go to aux.pledger in the same statement.
\set k random(0, :ckeys / :nslots - 1) * :nslots + :slot0 + :client_id + 1
\set k2 :k + :ckoff
\set v random(1, 1000000)
WITH w AS (
  DELETE FROM orders WHERE id = (SELECT min(id) FROM orders WHERE customer_id = :k::bigint)
  RETURNING id, customer_id, amount)
INSERT INTO aux.pledger (k, how, rid, cid, delta, v, phase)
SELECT :k::bigint, 'new_order_delete', id, customer_id, -1, amount, :phase::int FROM w;
