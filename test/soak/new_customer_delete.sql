-- New version: delete the customer; ON DELETE CASCADE deletes its orders, which the statement
-- counts beforehand (every part of it sees the orders as they were before).  The id it returns is
-- the new version's, NULL until the backfill reached the row: the count goes by the key, k.
-- Picks a logical customer key k owned by this client ((k - 1) % nslots = slot0 + client_id) and a
-- value v.  The new version shows a customer's id, the key under migration, as NULL until the
-- backfill reaches the row, so it finds customers by their name; its own customers are never moved
-- (only the old version's clients move keys, theirs), so a customer of its own lives at id k.  What
-- the write changed, and the row it returned, go to aux.pledger in the same statement.
\set k random(0, :ckeys / :nslots - 1) * :nslots + :slot0 + :client_id + 1
\set k2 :k + :ckoff
\set v random(1, 1000000)
WITH w AS (
  DELETE FROM customers WHERE name = 'c' || :k::bigint
  RETURNING id, name, writer)
INSERT INTO aux.pledger (k, how, rid, cid, delta, v, phase, r_name, r_writer, cascaded)
SELECT :k::bigint, 'new_customer_delete', id, id, -1, :k2::int, :phase::int, name, writer,
       (SELECT count(*) FROM orders o WHERE o.customer_id = :k::bigint) FROM w;
