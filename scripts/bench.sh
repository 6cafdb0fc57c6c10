#!/usr/bin/env bash
# scripts/bench.sh: the benchmark (`make bench`).
#
# One throwaway cluster, one run.  Every figure is a ratio against a baseline measured in the same run
# on the same cluster, printed as a table and as one machine-readable line:
#     BENCH {"backfill_1m_ec_vs_update": 1.08, ...}
# (also written to results.json in the temp dir; BENCH_OUT=FILE copies it there).
#
# Table public.t(id bigint primary key, cents int not null, payload text) with N rows; the migration:
#     alter_column cents -> amount numeric(12,2), up: cents / 100.0, down: (amount * 100)::int
#
# What each phase measures and its targets: scripts/bench_report.sh; the cases themselves (the table
# and the one measurement loop): scripts/bench_cases.sh.
#
#   Targets (the issues'): ec backfill <= 1.00 x the UPDATE at the small size, in both configurations and
#   for both migrations (issue 11), <= 1.15 x at the large size (issue 10), and well ahead of
#   pgroll-style (taken as <= 0.8 x); C trigger <= 1.25 x on the bulk INSERT; ec_start/ec_complete under
#   100 ms and flat as the table grows (4 and 6); during a backfill with the default settings or the
#   int -> bigint migration >= 80% of the throughput, p99 <= 2 x, no client errors, and (5) a throttled
#   backfill under traffic <= 2 x the unthrottled one's time.  A missed target is marked MISS in the
#   table; it does not fail the run.
#
#   Every measurement starts from a freshly loaded, vacuumed, analysed and checkpointed table; the extension
#   is recreated in between, so each starts without history.  At the small size the backfills (1), the
#   writes (2) and the reads (3) are repeated BENCH_ROUNDS times, interleaved, and the medians compared
#   (the table shows the spread); the large size runs once.  Each round of 1 runs the durable and the
#   fast server's measurements, durable first in odd rounds and fast first in even ones; everything
#   after phase 1's small size runs on the durable server.
#
# Knobs (environment):
#   BENCH_SCALE=full         the defaults of the five knobs below: full (1M/10M rows, 10 s and 30 s
#                            pgbench runs, 3 rounds), quick (100k/300k, 3 s and 10 s, 2 rounds: about
#                            five minutes) or tiny (10k/30k, 2 s and 3 s, 1 round, workers "1 2": a check
#                            that every phase runs, in a few minutes; its figures mean little)
#   BENCH_QUICK=1            the same as BENCH_SCALE=quick
#   BENCH_ROWS_SMALL=1000000 BENCH_ROWS_LARGE=10000000
#   BENCH_ROUNDS=3           repetitions at the small size (medians)
#   BENCH_PGBENCH_SECS=10    each pgbench run of phases 2 and 3
#   BENCH_MIXED_SECS=30      the baselines of 5 (5a, 5a', and before each ec_start) and of 6
#   BENCH_CLIENTS=2          pgbench clients (phases 2, 3, 5)
#   BENCH_PGBENCH_MODE=simple   pgbench query protocol (simple, extended, prepared)
#   BENCH_EC_BATCHES=20000   extra batch sizes measured once at the small size ("" for none)
#   BENCH_FAST=1             0: phase 1 leaves the fast server configuration out (durable only)
#   BENCH_MIXED_NICE="0.5 2" nice_ratio values for more backfills under traffic in 5 ("" for none)
#   BENCH_MIXED_DELAYS=""    batch_delay_ms values for more backfills under traffic in 5 (e.g. "50")
#   BENCH_MIXED_VARIANTS=""  more backfills under traffic in 5, as KEY=JSON words for ec_configure
#                            (e.g. 'nice10={"worker_nice":10} nocompact={"compact":false}')
#   BENCH_PARALLEL_WORKERS="1 2 4"   worker counts of 7 (the first is the speed-up's baseline)
#   BENCH_PHASES="backfill writes mixed rebuild parallel compact"   which parts to run (backfill
#                            includes 3 and 4; rebuild is 6, parallel 7, compact 8)
#   BENCH_BACKFILL_SETTINGS=''  jsonb for ec_configure in phase 1's backfills (1b), e.g. '{"compact": false}' to
#                            time the backfill alone, without compaction (phase 8 times that)
#   BENCH_REBUILD_TRANSFERS=1   transfers per account in 6 (1: as many transfers as accounts)
#   BENCH_REBUILD_SETTINGS=''   jsonb for ec_configure in 6's ec_start transaction, e.g.
#                            '{"batch_size": 1000, "batch_delay_ms": 10}' ("": the extension's defaults)
#   BENCH_WRITE_VARIANTS="plain extra_column ec ec_subquery plpgsql plpgsql_subquery"   which variants
#                            phase 2 measures (plain is every ratio's baseline, ec the subquery's)
#   BENCH_BACKFILL_TIMEOUT   seconds to wait for a backfill (default max(120, 10 x the UPDATE's time))
#   BENCH_STALL_TIMEOUT=30   give up on a migration's tasks after this many seconds without any progress
#                            (in 6 at least 3 x the offline ALTER's time: an index build or a validation
#                            shows no progress until it is done)
#   BENCH_BUILD=0            do not build/install; benchmark the copy already installed
#   BENCH_PRELOAD=1          add expand_contract to shared_preload_libraries
#   BENCH_CONF='a = 1; b = 2'   extra postgresql.conf lines (for experiments; the figures are then not comparable)
#   BENCH_OUT=FILE           also write the JSON object to FILE
#   EC_KEEP_TMP=1            keep the temp dir (server.log, pgbench output and logs, results.json)
#   PG_CONFIG=...
#
# Exit status: 0 when every measurement ran (whether or not it met its target), 2 when something went
# wrong (listed under "anomalies": a failed step, a stalled or failed backfill, rows whose new column is
# wrong, client errors), 1 when the bench itself could not run.
# shellcheck disable=SC2034  # the phase files (scripts/bench_*.sh) use these globals
set -euo pipefail
set -euo pipefail

here=$(dirname "${BASH_SOURCE[0]}")
# shellcheck source=scripts/lib.sh
source "$here/lib.sh"
ec_setup_traps

BENCH_SCALE=${BENCH_SCALE:-}
[[ -z $BENCH_SCALE && ${BENCH_QUICK:-0} == 1 ]] && BENCH_SCALE=quick
BENCH_SCALE=${BENCH_SCALE:-full}
BENCH_QUICK=0
[[ $BENCH_SCALE == full ]] || BENCH_QUICK=1
#                             small    large     pgbench mixed rounds  parallel workers
case $BENCH_SCALE in
    full)  scale=(1000000 10000000 10 30 3 "1 2 4") ;;
    quick) scale=(100000  300000   3  10 2 "1 2 4") ;;
    tiny)  scale=(10000   30000    2  3  1 "1 2") ;;
    *) die "BENCH_SCALE must be full, quick or tiny (is '$BENCH_SCALE')" ;;
esac
BENCH_ROWS_SMALL=${BENCH_ROWS_SMALL:-${scale[0]}}
BENCH_ROWS_LARGE=${BENCH_ROWS_LARGE:-${scale[1]}}
BENCH_PGBENCH_SECS=${BENCH_PGBENCH_SECS:-${scale[2]}}
BENCH_MIXED_SECS=${BENCH_MIXED_SECS:-${scale[3]}}
BENCH_ROUNDS=${BENCH_ROUNDS:-${scale[4]}}
BENCH_PARALLEL_WORKERS=${BENCH_PARALLEL_WORKERS:-${scale[5]}}
BENCH_CLIENTS=${BENCH_CLIENTS:-2}
BENCH_PGBENCH_MODE=${BENCH_PGBENCH_MODE:-simple}
BENCH_EC_BATCHES=${BENCH_EC_BATCHES-20000}
BENCH_MIXED_NICE=${BENCH_MIXED_NICE-0.5 2}
BENCH_MIXED_DELAYS=${BENCH_MIXED_DELAYS-}
BENCH_MIXED_VARIANTS=${BENCH_MIXED_VARIANTS-}
BENCH_PHASES=${BENCH_PHASES:-backfill writes mixed rebuild parallel compact}
BENCH_REBUILD_TRANSFERS=${BENCH_REBUILD_TRANSFERS:-1}
BENCH_REBUILD_SETTINGS=${BENCH_REBUILD_SETTINGS:-}
BENCH_BACKFILL_SETTINGS=${BENCH_BACKFILL_SETTINGS:-}
BENCH_WRITE_VARIANTS=${BENCH_WRITE_VARIANTS:-plain extra_column ec ec_subquery plpgsql plpgsql_subquery}
BENCH_BACKFILL_TIMEOUT=${BENCH_BACKFILL_TIMEOUT:-}
BENCH_STALL_TIMEOUT=${BENCH_STALL_TIMEOUT:-30}
BENCH_FAST=${BENCH_FAST:-1}
BENCH_BUILD=${BENCH_BUILD:-1}
BENCH_PRELOAD=${BENCH_PRELOAD:-0}
BENCH_CONF=${BENCH_CONF:-}
BENCH_OUT=${BENCH_OUT:-}
BENCH_STEP_TIMEOUT=${BENCH_STEP_TIMEOUT:-3600}   # hard limit on any one psql call, seconds
BENCH_PROBE_RATE=${BENCH_PROBE_RATE:-200}        # the lock probe client's selects per second
EC_PSQL_TIMEOUT=$BENCH_STEP_TIMEOUT

posint() { [[ ${!1} =~ ^[0-9]+$ && ${!1} -gt 0 ]] || die "$1 must be a positive integer (is '${!1}')"; }
for v in BENCH_ROWS_SMALL BENCH_ROWS_LARGE BENCH_PGBENCH_SECS BENCH_MIXED_SECS BENCH_CLIENTS BENCH_ROUNDS \
         BENCH_STALL_TIMEOUT BENCH_STEP_TIMEOUT BENCH_PROBE_RATE BENCH_REBUILD_TRANSFERS; do
    posint "$v"
done
[[ -z $BENCH_BACKFILL_TIMEOUT ]] || posint BENCH_BACKFILL_TIMEOUT
# words VAR REGEX WHAT: every word of VAR matches REGEX
words() { local w; for w in ${!1}; do [[ $w =~ ^($2)$ ]] || die "$1: '$w' is not $3"; done; }
words BENCH_EC_BATCHES '[1-9][0-9]*' "a positive integer"
words BENCH_MIXED_DELAYS '[0-9]+' "a number of milliseconds"
words BENCH_MIXED_NICE '[0-9]+(\.[0-9]+)?' "a number"
words BENCH_MIXED_VARIANTS '[a-z0-9_]+=\{[^ ]*\}' "KEY={json}"
words BENCH_PARALLEL_WORKERS '[1-9][0-9]*' "a positive integer"
words BENCH_PHASES 'backfill|writes|mixed|rebuild|parallel|compact' "a part (backfill writes mixed rebuild parallel compact)"
words BENCH_WRITE_VARIANTS 'plain|extra_column|ec|ec_subquery|plpgsql|plpgsql_subquery' "a write variant"
[[ $BENCH_FAST =~ ^[01]$ ]] || die "BENCH_FAST must be 0 or 1"
[[ $BENCH_PGBENCH_MODE =~ ^(simple|extended|prepared)$ ]] || die "BENCH_PGBENCH_MODE must be simple, extended or prepared"
phase_on() { [[ " $BENCH_PHASES " == *" $1 "* ]]; }

MIGRATION='{"operations":[{"alter_column":{"table":"t","column":"cents","name":"amount","type":"numeric(12,2)","up":"cents / 100.0","down":"(amount * 100)::int"}}]}'
# Issue 11's measurement: text -> bigint of t.a (test/bench/load_text.sql's table).
MIGRATION_TEXT='{"operations":[{"alter_column":{"table":"t","column":"a","type":"bigint","up":"CAST(a AS bigint)","down":"a::text"}}]}'
# The same migration with an "up" that reads another table (test/bench/setup.sql: every divisor is 100.0).
MIGRATION_SUBQUERY='{"operations":[{"alter_column":{"table":"t","column":"cents","name":"amount","type":"numeric(12,2)","up":"cents / (SELECT u.divisor FROM bench.units u WHERE u.code = cents % 1000)","down":"(amount * 100)::int"}}]}'


# 1000000 -> 1m, 300000 -> 300k, 1500000 -> 1500k: sizes in result keys
size_label() {
    local n=$1
    if ((n % 1000000 == 0)); then echo "$((n / 1000000))m"
    elif ((n % 1000 == 0)); then echo "$((n / 1000))k"
    else echo "$n"; fi
}
LAB_S=$(size_label "$BENCH_ROWS_SMALL")
LAB_L=$(size_label "$BENCH_ROWS_LARGE")
[[ $LAB_S != "$LAB_L" ]] || die "BENCH_ROWS_SMALL and BENCH_ROWS_LARGE must differ"

for f in bench_results bench_db bench_clients bench_cases bench_rebuild bench_report; do
    # shellcheck source=/dev/null
    source "$here/$f.sh"
done
define_cases

# ---------------------------------------------------------------------------------------------------
# the cluster

ensure_packages
make_workdir bench
work=$EC_WORKDIR
cd "$work"
if [[ $BENCH_BUILD == 1 ]]; then
    copy_tree "$EC_ROOT" "$work/src" || die "could not copy the source tree"
    build_and_install "$work/src" >"$work/build.log" 2>&1 || { cat "$work/build.log"; die "build/install failed"; }
    say "built$([[ $EC_SKIP_INSTALL == 1 ]] || echo ' and installed') (log: build.log)"
else
    say "BENCH_BUILD=0: benchmarking the expand_contract already installed in $("$(pg_config_cmd)" --pkglibdir)"
fi
as_pg mkdir -p "$work/bench" "$work/log"
cp "$EC_ROOT"/test/bench/*.sql "$work/bench/" || die "could not copy test/bench"
if is_root; then chown -R "$EC_PG_USER:" "$work/bench" || die "chown $work/bench failed"; fi

# Tuned for a 2-core / 24 GB machine.  Durability stays at the defaults (fsync, synchronous_commit and
# full_page_writes on, wal_level replica) except while phase 1 measures the "fast" configuration
# (server_mode): that one favours the single UPDATE, whose WAL is no longer flushed either, and shows
# the per-batch costs that the flushes hide.  Autovacuum is off so that nothing runs behind
# a measurement; each starts after VACUUM ANALYZE and CHECKPOINT instead.  JIT is off: it would compile
# the big UPDATE and not the small batches.  wal_init_zero is off so that the first measurements, which
# create the cluster's WAL segments, do not pay much more for them than later ones, which recycle them.
conf=(
    "shared_buffers = 2GB" "effective_cache_size = 16GB" "maintenance_work_mem = 1GB" "work_mem = 64MB"
    "max_wal_size = 8GB" "min_wal_size = 4GB" "checkpoint_timeout = 30min" "checkpoint_completion_target = 0.9"
    "wal_level = replica" "synchronous_commit = on" "fsync = on" "full_page_writes = on" "wal_init_zero = off"
    "autovacuum = off" "jit = off" "max_connections = 50" "max_worker_processes = 16"
    "log_min_messages = warning" "log_lock_waits = on" "deadlock_timeout = 1s" "lc_messages = 'C'"
)
[[ $BENCH_PRELOAD == 1 ]] && conf+=("shared_preload_libraries = 'expand_contract'")
if [[ -n $BENCH_CONF ]]; then
    IFS=';' read -r -a extra_conf <<<"$BENCH_CONF"
    for line in "${extra_conf[@]}"; do
        [[ $line =~ [^[:space:]] ]] && conf+=("$line") && warn "BENCH_CONF: $line"
    done
fi
pg_cluster_start "$work" "${conf[@]}"
as_pg "$EC_BINDIR/createdb" bench || fatal "createdb bench failed"
export PGDATABASE=bench

say "loading expand_contract and the helpers"
qv -f "$work/bench/setup.sql" >/dev/null || fatal "test/bench/setup.sql failed"
qv -f "$work/bench/pgroll_style.sql" >/dev/null || fatal "test/bench/pgroll_style.sql failed"
EC_VERSION=$(qv -c "SELECT extversion FROM pg_extension WHERE extname = 'expand_contract'")
[[ $(qv -c "SELECT to_regclass('expand_contract.tasks') IS NOT NULL AND to_regprocedure('pg_catalog.ec_pause(text)') IS NOT NULL") == t ]] ||
    fatal "expand_contract $EC_VERSION has no background worker or no ec_pause: the bench measures 0.1.0 and later"
DEFAULT_BATCH=$(qv -c "LOAD 'expand_contract'" -c "SELECT coalesce(current_setting('expand_contract.batch_size', true), '')" 2>/dev/null | tail -n1 || true)
LOCK_TIMEOUT_MS=$(qv -c "LOAD 'expand_contract'" -c "SELECT coalesce(round(1000 * extract(epoch FROM current_setting('expand_contract.lock_timeout', true)::interval))::text, '')" 2>/dev/null | tail -n1 || true)
DURABLE_SETTINGS=$(qv -c "$DURABILITY_SQL") || fatal "could not read the durability settings"
say "expand_contract $EC_VERSION with the background worker (expand_contract.batch_size = ${DEFAULT_BATCH:-?})"
qv -c "SELECT version()"
LOAD_START=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo null)
put load_avg_start "$LOAD_START"
if awk -v l="$LOAD_START" 'BEGIN { exit !(l > 0.5) }'; then
    warn "load average $LOAD_START before the first measurement: other work on this machine will skew the figures"
fi
say "rows: small $BENCH_ROWS_SMALL ($LAB_S, $BENCH_ROUNDS rounds), large $BENCH_ROWS_LARGE ($LAB_L); pgbench ${BENCH_PGBENCH_SECS}s, mixed ${BENCH_MIXED_SECS}s, $BENCH_CLIENTS clients, $BENCH_PGBENCH_MODE protocol"
put rows_small "$BENCH_ROWS_SMALL"
put rows_large "$BENCH_ROWS_LARGE"
put rounds "$BENCH_ROUNDS"
put_raw quick "$([[ $BENCH_QUICK == 1 ]] && echo true || echo false)"
put_raw worker true
put_raw scale "\"$BENCH_SCALE\""

# ---------------------------------------------------------------------------------------------------
# the phases: the small size's backfills in both server configurations, interleaved (each round runs
# the durable and the fast cases, in alternating order, so that neither always comes first); the rest
# on the durable server, once

T_BEGIN=$(now_ms)
if phase_on backfill; then
    for ((r = 1; r <= BENCH_ROUNDS; r++)); do
        modes=durable
        if [[ $BENCH_FAST == 1 ]]; then
            if ((r % 2)); then modes="durable fast"; else modes="fast durable"; fi
        fi
        for mode in $modes; do
            server_mode "$mode"
            run_group "backfill_$mode" "$r" "$BENCH_ROUNDS"
        done
    done
    server_mode durable
    run_group backfill_batches 1
    run_group backfill_large 1
fi
if phase_on writes; then
    for ((r = 1; r <= BENCH_ROUNDS; r++)); do run_group writes "$r" "$BENCH_ROUNDS"; done
fi
phase_on mixed && run_group mixed 1
phase_on rebuild && { rebuild_size "$BENCH_ROWS_SMALL" "$LAB_S"; rebuild_size "$BENCH_ROWS_LARGE" "$LAB_L"; }
phase_on parallel && run_group parallel 1
phase_on compact && run_group compact 1
reset_state

title "results"
T_TOTAL=$(( ($(now_ms) - T_BEGIN) / 1000 ))
phase_on backfill && backfill_report
phase_on writes && writes_report
phase_on backfill && reads_locks_report
phase_on mixed && mixed_report
phase_on parallel && parallel_report
phase_on compact && compact_report
phase_on rebuild && rebuild_report
print_results
