-- Update a savings account (not its key).
-- Run by test/t/011_int_to_bigint.pl through either version (the names are the same in both: the
-- migration only widens types); the session setting aux.writer says which (old or new).  Each key
-- belongs to one client (see the test's header): a savings account k, band index (k - 1) / nslots
-- even, never has transfers; a checking account, band index odd, always exists at id k.  Each write
-- appends what it changed, and the row it returned, to aux.ledger in the same statement.
\set k random(0, :nkeys / :nslots / 2 - 1) * 2 * :nslots + :slot0 + :client_id + 1
\set v random(1, 1000)
WITH w AS (
  UPDATE accounts SET branch = :v::int % 50, balance = balance + :v::bigint,
                      writer = current_setting('aux.writer'), nw = nw + 1
   WHERE email = 'a' || :k::bigint || '@bank.test'
  RETURNING id, email, branch, balance, writer, nw)
INSERT INTO aux.ledger (tbl, k, rid, delta, how, phase, r_email, r_branch, r_balance, r_writer, r_nw)
SELECT 'a', :k::bigint, id, 0, current_setting('aux.writer') || '_sav_update', :phase::int,
       email, branch, balance, writer, nw FROM w;
