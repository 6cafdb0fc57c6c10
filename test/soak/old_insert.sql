-- Old version: insert the key if it is free (neither k nor k2 holds a row).
-- Picks a logical key k owned by this client ((k - 1) % nslots = slot0 + client_id), its other id
-- k2 (a key update moves a row between k and k2), and a value v (1000001 stands for NULL).  What the
-- write changed, and the row it returned, go to aux.ledger in the same statement.
\set k random(0, :nkeys / :nslots - 1) * :nslots + :slot0 + :client_id + 1
\set k2 :k + :koff
\set v CASE WHEN random(1, 8) = 1 THEN 1000001 ELSE random(-1000000, 1000000) END
WITH w AS (
  INSERT INTO accounts (id, owner, cents, writer, nw)
  SELECT :k::bigint, 'o' || :v::int, nullif(:v::int, 1000001), 'old', 0
   WHERE NOT EXISTS (SELECT FROM accounts WHERE id IN (:k::bigint, :k2::bigint))
  RETURNING id, owner, cents, writer, nw)
INSERT INTO aux.ledger (k, rid, delta, how, v, phase, r_owner, r_cents, r_writer, r_nw)
SELECT :k::bigint, id, 1, 'old_insert', :v::int, :phase::int, owner, cents, writer, nw FROM w;
