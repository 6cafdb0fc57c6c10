-- A maintenance client: freezes the table every second while the others write (as an aggressive
-- autovacuum or a DBA's VACUUM FREEZE would), so that rows written during the migration, by the
-- backfill and through either version, get frozen xmins.  Run with pgbench -M simple.
\sleep 1 s
VACUUM (FREEZE) accounts;
