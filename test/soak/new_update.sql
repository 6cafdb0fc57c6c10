-- New version: update every column under migration.
-- Picks a logical key k owned by this client ((k - 1) % nslots = slot0 + client_id), its other id
-- k2 (a key update moves a row between k and k2), and a value v (1000001 stands for NULL).  What the
-- write changed, and the row it returned, go to aux.ledger in the same statement.
\set k random(0, :nkeys / :nslots - 1) * :nslots + :slot0 + :client_id + 1
\set k2 :k + :koff
\set v CASE WHEN random(1, 8) = 1 THEN 1000001 ELSE random(-1000000, 1000000) END
WITH w AS (
  UPDATE accounts SET holder = 'n' || :v::int, amount = nullif(:v::int, 1000001) / 100.0,
                      label = 'N:' || :v::int, writer = 'new', nw = nw + 1
   WHERE id IN (:k::bigint, :k2::bigint)
  RETURNING id, holder, amount, label, writer, nw)
INSERT INTO aux.ledger (k, rid, delta, how, v, phase, r_owner, r_amount, r_label, r_writer, r_nw)
SELECT :k::bigint, id, 0, 'new_update', :v::int, :phase::int, holder, amount, label, writer, nw FROM w;
