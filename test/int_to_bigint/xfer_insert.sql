-- Post a transfer: debit a checking account and insert the transfer with the id the account's
-- update returned (through the new version, an account the backfill has not reached gets its new
-- id from that write), if the transfer's key is free.
-- Run by test/t/011_int_to_bigint.pl through either version (the names are the same in both: the
-- migration only widens types); the session setting aux.writer says which (old or new).  Each key
-- belongs to one client (see the test's header): a savings account k, band index (k - 1) / nslots
-- even, never has transfers; a checking account, band index odd, always exists at id k.  Each write
-- appends what it changed, and the row it returned, to aux.ledger in the same statement.
\set t random(0, :ntkeys / :nslots - 1) * :nslots + :slot0 + :client_id + 1
\set k (random(0, :nkeys / :nslots / 2 - 1) * 2 + 1) * :nslots + :slot0 + :client_id + 1
\set v random(1, 1000)
WITH a AS (
  UPDATE accounts SET balance = balance - :v::bigint, writer = current_setting('aux.writer'), nw = nw + 1
   WHERE email = 'a' || :k::bigint || '@bank.test'
     AND NOT EXISTS (SELECT FROM transfers WHERE id = :t::bigint)
  RETURNING id, email, branch, balance, writer, nw),
w AS (
  INSERT INTO transfers (id, account_id, amount, ref, writer, nw)
  SELECT :t::bigint, a.id, :v::int, 't' || :t::bigint, a.writer, 0 FROM a
  RETURNING id, account_id, amount, ref, created, writer, nw)
INSERT INTO aux.ledger (tbl, k, rid, delta, how, phase, r_email, r_branch, r_balance, r_account,
                        r_amount, r_ref, r_created, r_writer, r_nw)
SELECT 'a', :k::bigint, id, 0, current_setting('aux.writer') || '_xfer_debit', :phase::int,
       email, branch, balance, NULL, NULL, NULL, NULL, writer, nw FROM a
UNION ALL
SELECT 't', :t::bigint, id, 1, current_setting('aux.writer') || '_xfer_insert', :phase::int,
       NULL, NULL, NULL, account_id, amount, ref, created, writer, nw FROM w;
