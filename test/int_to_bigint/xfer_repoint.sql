-- Re-point a transfer to another checking account of the same client (the foreign key checks it).
-- Run by test/t/011_int_to_bigint.pl through either version (the names are the same in both: the
-- migration only widens types); the session setting aux.writer says which (old or new).  Each key
-- belongs to one client (see the test's header): a savings account k, band index (k - 1) / nslots
-- even, never has transfers; a checking account, band index odd, always exists at id k.  Each write
-- appends what it changed, and the row it returned, to aux.ledger in the same statement.
\set t random(0, :ntkeys / :nslots - 1) * :nslots + :slot0 + :client_id + 1
\set k (random(0, :nkeys / :nslots / 2 - 1) * 2 + 1) * :nslots + :slot0 + :client_id + 1
WITH w AS (
  UPDATE transfers SET account_id = :k::bigint,
                       writer = current_setting('aux.writer'), nw = nw + 1 WHERE id = :t::bigint
  RETURNING id, account_id, amount, ref, created, writer, nw)
INSERT INTO aux.ledger (tbl, k, rid, delta, how, phase, r_account, r_amount, r_ref, r_created, r_writer, r_nw)
SELECT 't', :t::bigint, id, 0, current_setting('aux.writer') || '_xfer_repoint', :phase::int,
       account_id, amount, ref, created, writer, nw FROM w;
