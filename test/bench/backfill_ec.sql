-- test/bench/backfill_ec.sql: expand_contract's backfill.  Variables: doc (the migration),
-- configure (true: apply the jsonb settings with ec_configure in ec_start's transaction, before the
-- worker starts), settings, timeout and stall (seconds, for bench.wait_tasks).  Prints key=value tokens:
--   start_ms            ec_start's wall time, commit included (it holds ACCESS EXCLUSIVE throughout)
--   backfill_status     done | failed | stalled | timeout | none | no_tasks_table (bench.wait_tasks)
--   backfill_wall_ms    from ec_start's commit until the backfill task was seen done (50 ms polls)
--   worker_ms           the backfill task's finished_at - started_at
--   launch_ms           from ec_start's commit to the task's started_at
--   tasks_status, tasks_wall_ms   the same for all the migration's tasks (backfill, then validation)
\set ON_ERROR_STOP 1
SET search_path = public;
SELECT clock_timestamp() AS t0 \gset
\if :configure
BEGIN;
SELECT ec_start('v1', :'doc') AS vschema \gset
SELECT ec_configure('public', :'settings'::jsonb) AS cfg \gset
COMMIT;
\else
SELECT ec_start('v1', :'doc') AS vschema \gset
\endif
SELECT clock_timestamp() AS t_commit \gset
SELECT 'version_schema=' || :'vschema',
       'start_ms=' || round(1000 * extract(epoch FROM :'t_commit'::timestamptz - :'t0'::timestamptz), 1);
CALL bench.wait_tasks('v1', '{backfill}', :timeout, :stall, NULL, NULL, NULL) \gset bf_
SELECT 'backfill_status=' || :'bf_status', 'backfill_states=' || :'bf_states',
       'backfill_wall_ms=' || round(1000 * extract(epoch FROM :'bf_done_at'::timestamptz - :'t_commit'::timestamptz), 1);
SELECT bench.task_times('v1', :'t_commit');
SELECT :'bf_status' = 'done' AS bf_done \gset
\if :bf_done
CALL bench.wait_tasks('v1', '{backfill,sql}', :timeout, :stall, NULL, NULL, NULL) \gset all_
SELECT 'tasks_status=' || :'all_status',
       'tasks_wall_ms=' || round(1000 * extract(epoch FROM :'all_done_at'::timestamptz - :'t_commit'::timestamptz), 1);
\else
SELECT 'tasks_status=skipped';
\endif
