-- New version: insert the customer if it is absent.
-- Picks a logical customer key k owned by this client ((k - 1) % nslots = slot0 + client_id) and a
-- value v.  The new version shows a customer's id, the key under migration, as NULL until the
-- backfill reaches the row, so it finds customers by their name; its own customers are never moved
-- (only the old version's clients move keys, theirs), so a customer of its own lives at id k.  What
-- the write changed, and the row it returned, go to aux.pledger in the same statement.
\set k random(0, :ckeys / :nslots - 1) * :nslots + :slot0 + :client_id + 1
\set k2 :k + :ckoff
\set v random(1, 1000000)
WITH w AS (
  INSERT INTO customers (id, name, writer)
  SELECT :k::bigint, 'c' || :k::bigint, 'new'
   WHERE NOT EXISTS (SELECT FROM customers WHERE name = 'c' || :k::bigint)
  RETURNING id, name, writer)
INSERT INTO aux.pledger (k, how, rid, cid, delta, v, phase, r_name, r_writer)
SELECT :k::bigint, 'new_customer_insert', id, id, 1, :k2::int, :phase::int, name, writer FROM w;
