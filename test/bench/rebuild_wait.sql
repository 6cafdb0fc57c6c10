-- test/bench/rebuild_wait.sql: the wait for every task of the int -> bigint migration's worker (index
-- builds, backfills, the new foreign key, validations).  Variables: timeout and stall (seconds, for
-- bench.wait_tasks), start_t1 (ec_start's commit, epoch seconds).  Prints key=value tokens:
-- tasks_status, tasks_states, tasks_wall_ms (from ec_start's commit until seen done, 50 ms polls)
-- and those of bench.rebuild_task_times.
\set ON_ERROR_STOP 1
CALL bench.wait_tasks('v1', '{backfill,sql}', :timeout, :stall, NULL, NULL, NULL) \gset tasks_
SELECT 'tasks_status=' || :'tasks_status', 'tasks_states=' || :'tasks_states',
       'tasks_wall_ms=' || round(1000 * (extract(epoch FROM :'tasks_done_at'::timestamptz) - :start_t1), 1);
SELECT bench.rebuild_task_times('v1');
