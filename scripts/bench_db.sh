# shellcheck shell=bash
# shellcheck disable=SC2034,SC2154  # sourced by scripts/bench.sh, which defines work and uses the globals
# scripts/bench_db.sh: the benchmark database: test/bench/*.sql runs, resets, loads, the server
# configuration, expand_contract's backfill and its checks.  Sourced by scripts/bench.sh.

declare -A KV=()
# sql FILE [psql args...]: runs test/bench/FILE; its key=value tokens land in KV.  On error prints the
# output and returns 1.
sql() {
    local file=$1 out=$work/last.out rc=0 tok
    shift
    KV=()
    qv -f "$work/bench/$file" "$@" >"$out" 2>&1 || rc=$?
    for tok in $(grep -v '^\(ERROR\|WARNING\|NOTICE\|DETAIL\|HINT\|CONTEXT\|LINE\|psql\)' "$out" || true); do
        [[ $tok =~ ^([a-z_0-9]+)=(.*)$ ]] && KV[${BASH_REMATCH[1]}]=${BASH_REMATCH[2]}
    done
    if ((rc != 0)); then
        warn "$file failed (exit $rc):"
        sed 's/^/      /' "$out" >&2
        return 1
    fi
}
kv() { printf '%s' "${KV[$1]:-}"; }
# tokens ARRAY TEXT: the key=value tokens of TEXT into the associative array ARRAY
tokens() {
    local -n into=$1
    local tok
    for tok in $2; do
        # shellcheck disable=SC2034,SC2004  # into is a name reference to the caller's array
        [[ $tok =~ ^([a-z_0-9]+)=(.*)$ ]] && into[${BASH_REMATCH[1]}]=${BASH_REMATCH[2]}
    done
    return 0
}

# reset_state: no active migration, no t, no version schema, a fresh extension (no history, no worker)
reset_state() {
    if ! sql reset.sql; then
        anomaly "reset failed (ec_rollback?); dropping by force"
        qv -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()" >/dev/null || true
        sleep 1
        qv -c "SET expand_contract.allow_ddl = on" -c "DROP TABLE IF EXISTS public.t, public.transfers, public.accounts CASCADE" -c "DROP EXTENSION IF EXISTS expand_contract CASCADE" \
           -c "CREATE EXTENSION expand_contract" >/dev/null || fatal "could not reset the benchmark database"
        qv -c "SELECT format('DROP SCHEMA %I CASCADE', nspname) FROM pg_namespace WHERE nspname LIKE 'public\_%'" |
            while read -r stmt; do qv -c "$stmt" >/dev/null; done
    fi
    wait_no_workers
}

# wait_no_workers: after a rollback, the migration's worker must go away
wait_no_workers() {
    local i n
    for ((i = 0; i < 100; i++)); do
        n=$(qv -c "SELECT bench.ec_workers()") || n=0
        ((n == 0)) && return 0
        sleep 0.1
    done
    anomaly "an expand_contract background worker is still connected 10s after its migration was rolled back or dropped; terminating it"
    qv -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND backend_type ILIKE '%expand%'" >/dev/null || true
}

ROWS_CUR=0
# load_rows FILE N: a fresh public.t of N rows from test/bench/FILE (load.sql, load_text.sql, create_empty.sql)
load_rows() {
    local t0
    t0=$(now_ms)
    sql "$1" -v rows="$2" || fatal "loading $2 rows ($1) failed"
    ROWS_CUR=$2
    if [[ $1 == create_empty.sql ]]; then say "created an empty public.t"; return; fi
    say "loaded $2 rows ($1), vacuumed, analysed, checkpointed ($(( ($(now_ms) - t0) / 1000 ))s)"
}

table_mb() { qv -c "SELECT round(pg_total_relation_size('public.t') / 1048576.0, 1)" 2>/dev/null || echo null; }
# backfill_parts: the backfill tasks of migration v1 (the parts the table was cut into)
backfill_parts() {
    qv -c "SELECT count(*) FROM expand_contract.tasks k JOIN expand_contract.migrations m ON m.id = k.migration_id WHERE m.name = 'v1' AND k.kind = 'backfill'"
}

# task_diag MIGRATION: diagnostics for a migration whose tasks did not finish
task_diag() {
    {
        echo "--- expand_contract.tasks of migration $1 ---"
        qv -c "SELECT * FROM bench.task_report('$1')" || true
        qv -x -c "SELECT * FROM ec_status('public')" || true
        echo "--- non-client backends ---"
        qv -c "SELECT pid, backend_type, state, wait_event_type, wait_event, left(query, 80) FROM pg_stat_activity WHERE backend_type NOT IN ('client backend', 'checkpointer', 'background writer', 'walwriter', 'logical replication launcher', 'autovacuum launcher')" || true
        echo "--- last lines of the server log ---"
        tail -n 20 "$EC_PG_LOG" || true
    } >&2
}

# backfill_timeout [UPDATE_MS]: seconds to wait for a backfill of the current size
backfill_timeout() {
    local upd
    upd=$(median "${1:-}")
    if [[ -n $BENCH_BACKFILL_TIMEOUT ]]; then echo "$BENCH_BACKFILL_TIMEOUT"; return; fi
    if is_num "$upd"; then
        awk -v u="$upd" 'BEGIN { t = 10 * u / 1000; if (t < 120) t = 120; printf "%d\n", t }'
    else
        awk -v n="$ROWS_CUR" 'BEGIN { t = n / 20000; if (t < 120) t = 120; printf "%d\n", t }'
    fi
}

# server_mode durable|fast: durable is postgresql.conf as bench.sh writes it; fast turns fsync,
# synchronous_commit and full_page_writes off (ALTER SYSTEM, reloaded: no restart needed; the worker is
# forked by the postmaster after the reload and sees the new values).  Waits until a new session sees
# them.  Back to durable, it also flushes what the fast configuration left in the page cache to disk
# (syncfs of the cluster's file system), so that the kernel does not write it back during the next
# measurement.
SERVER_MODE=durable
DURABILITY_SQL="SELECT string_agg(name || '=' || setting, ' ' ORDER BY name) FROM pg_settings WHERE name IN ('fsync', 'full_page_writes', 'synchronous_commit')"
server_mode() {
    local want i got s cmds=()
    for s in fsync synchronous_commit full_page_writes; do
        if [[ $1 == fast ]]; then cmds+=(-c "ALTER SYSTEM SET $s = off"); else cmds+=(-c "ALTER SYSTEM RESET $s"); fi
    done
    qv "${cmds[@]}" -c "SELECT pg_reload_conf()" >/dev/null || fatal "ALTER SYSTEM failed"
    want=$DURABLE_SETTINGS
    [[ $1 == fast ]] && want='fsync=off full_page_writes=off synchronous_commit=off'
    for ((i = 0; i < 100; i++)); do
        got=$(qv -c "$DURABILITY_SQL") || got=''
        [[ $got == "$want" ]] && break
        sleep 0.1
    done
    [[ $got == "$want" ]] || fatal "server_mode $1: the server shows '$got' 10 s after the reload, not '$want'"
    if [[ $1 != fast && $SERVER_MODE == fast ]]; then
        qv -c "CHECKPOINT" >/dev/null || true
        sync -f "$EC_PGDATA" || true
    fi
    SERVER_MODE=$1
    say "server configuration: $1 ($got)"
}

BF_OK=0
# ec_backfill WHAT DOC SETTINGS UPDATE_MS: ec_start (timed) and the wait for the backfill (its timeout
# follows UPDATE_MS, the baseline's times); BF_OK=1 when done.  SETTINGS: jsonb for ec_configure,
# applied in ec_start's transaction ("": none).  Returns 1 when ec_start failed.
ec_backfill() {
    local what=$1 doc=$2 settings=${3:-} configure=true tmo status
    [[ -n $settings ]] || { configure=false; settings='{}'; }
    tmo=$(backfill_timeout "${4:-}")
    BF_OK=0
    sql backfill_ec.sql -v doc="$doc" -v configure="$configure" -v settings="$settings" \
        -v timeout="$tmo" -v stall="$BENCH_STALL_TIMEOUT" || {
        anomaly "ec_start or the wait for its backfill failed ($what, ec_configure settings $settings)"
        return 1
    }
    status=$(kv backfill_status)
    say "ec_start: $(kv start_ms) ms.  backfill: $status $(kv backfill_wall_ms) ms after the commit (task: $(kv worker_ms) ms, started $(kv launch_ms) ms after the commit, $(kv rows_done) rows, $(kv batches) batches); all tasks $(kv tasks_status) after $(kv tasks_wall_ms) ms"
    case $status in
        done) BF_OK=1 ;;
        stalled) anomaly "backfill ($what): no progress for ${BENCH_STALL_TIMEOUT}s (BENCH_STALL_TIMEOUT), task states '$(kv backfill_states)': worker not launched, paused or stuck?" ;;
        timeout) anomaly "backfill ($what): not done after ${tmo}s (BENCH_BACKFILL_TIMEOUT)" ;;
        failed)  anomaly "backfill ($what): a task failed" ;;
        none)    anomaly "backfill ($what): ec_start queued no backfill task" ;;
        *)       anomaly "backfill ($what): unexpected status '$status'" ;;
    esac
    if [[ $BF_OK == 1 && $(kv tasks_status) != "done" ]]; then
        anomaly "$what: the backfill is done but the migration's other tasks are '$(kv tasks_status)'"
    fi
    [[ $BF_OK == 1 && $(kv tasks_status) == "done" ]] || task_diag v1
    return 0
}

# mismatch_check WHAT [EXPECTED]: rows whose new column is not EXPECTED (default cents / 100.0) must be 0
mismatch_check() {
    local n expected=${2:-cents / 100.0}
    n=$(qv -v expected="$expected" <<<"SELECT coalesce(bench.ec_mismatches(:'expected')::text, 'n/a')") || n=error
    say "check: rows whose new column is not $expected: $n"
    [[ $n == 0 || $n == n/a ]] || anomaly "$1: $n rows whose new column is not $expected"
}
