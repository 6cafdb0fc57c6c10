-- New version: upsert at the id the row has now; nw = 0 tells an insert.
-- Picks a logical key k owned by this client ((k - 1) % nslots = slot0 + client_id), its other id
-- k2 (a key update moves a row between k and k2), and a value v (1000001 stands for NULL).  What the
-- write changed, and the row it returned, go to aux.ledger in the same statement.
\set k random(0, :nkeys / :nslots - 1) * :nslots + :slot0 + :client_id + 1
\set k2 :k + :koff
\set v CASE WHEN random(1, 8) = 1 THEN 1000001 ELSE random(-1000000, 1000000) END
WITH w AS (
  INSERT INTO accounts AS a (id, holder, amount, label, writer, nw)
  SELECT CASE WHEN EXISTS (SELECT FROM accounts WHERE id = :k2::bigint) THEN :k2::bigint ELSE :k::bigint END,
         'n' || :v::int, nullif(:v::int, 1000001) / 100.0, 'N:' || :v::int, 'new', 0
  ON CONFLICT (id) DO UPDATE SET holder = excluded.holder, amount = excluded.amount, label = excluded.label,
                                 writer = 'new', nw = a.nw + 1
  RETURNING id, holder, amount, label, writer, nw)
INSERT INTO aux.ledger (k, rid, delta, how, v, phase, r_owner, r_amount, r_label, r_writer, r_nw)
SELECT :k::bigint, id, CASE WHEN nw = 0 THEN 1 ELSE 0 END, 'new_upsert', :v::int, :phase::int, holder, amount, label, writer, nw FROM w;
