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
#   1. backfill, at BENCH_ROWS_SMALL and BENCH_ROWS_LARGE rows:
#        update     baseline: ALTER TABLE t ADD COLUMN amount ...; UPDATE t SET amount = cents / 100.0
#                   (only the UPDATE is timed)
#        ec         from ec_start's commit until the worker's backfill task is seen done (50 ms polls),
#                   and the task's own finished_at - started_at as the worker stamps them; default batch
#                   size, and at the small size each of BENCH_EC_BATCHES (ec_configure in ec_start's
#                   transaction); every filled row is then checked against cents / 100.0
#        pgroll     test/bench/pgroll_style.sql: PL/pgSQL trigger, batches of 1,000 ids, COMMIT per batch
#      and the table's size afterwards (bloat) against the UPDATE's.
#      At BENCH_ROWS_SMALL also issue 11's measurement, update and ec only: text -> bigint on
#      t(id bigint primary key, a text not null, b text) (test/bench/load_text.sql), migration
#          alter_column a, type bigint, up: CAST(a AS bigint), down: a::text
#      against ALTER TABLE t ADD COLUMN a2 bigint; UPDATE t SET a2 = CAST(a AS bigint) (only the UPDATE
#      timed): backfill_<small>_text_bigint_vs_update.  And both migrations, update and ec, on a "fast"
#      server as bulk-load and test servers run, fsync, synchronous_commit and full_page_writes off (ALTER
#      SYSTEM and a reload between the configurations; each UPDATE compared with the ec backfill on the
#      same server): backfill_<small>_ec_vs_update_fast, backfill_<small>_text_bigint_vs_update_fast.
#      Issue 11 found the ratio higher there (1.22-1.32 against 1.00-1.09 on the durable server): the
#      worker commits its batches with synchronous_commit off on either server, while the UPDATE gets
#      cheaper without WAL flushes and full-page images, so the per-batch costs show.  The large size,
#      the batch sizes and pgroll-style run on the durable server only: the large size's UPDATE and
#      backfill on the fast server would add about 4 minutes per migration; the small size's additions
#      cost about 3.
#   2. the dual-write trigger on writes: INSERT ... SELECT of BENCH_ROWS_SMALL rows and pgbench single-row
#      INSERTs, into a plain table (baseline), a table with the extra column only, with the expand_contract
#      trigger (old-version writes: it computes "up") and with the PL/pgSQL trigger of pgroll_style.sql;
#      and both triggers again with an "up" that looks its divisor up in another table by key,
#      cents / (SELECT u.divisor FROM bench.units u WHERE u.code = cents % 1000) (the same values): the
#      expand_contract trigger runs such an expression through SPI instead of compiled, and the figure
#      ec_subquery_vs_ec is what that costs
#   3. reads by primary key through the version view public_v1.t against public.t (pgbench, alternated),
#      in BENCH_PGBENCH_MODE and with prepared statements
#   4. how long ec_start and ec_complete (backfill done) hold their ACCESS EXCLUSIVE lock, at both sizes,
#      and the worst latency of a probe client selecting from the table meanwhile
#   5. pgbench selects + updates (4:1) by random pk through the old version, BENCH_ROWS_LARGE rows: without
#      a migration for BENCH_MIXED_SECS (baseline), with a migration started but its backfill paused (the
#      dual-write trigger alone), and during the backfill of a fresh migration, each from a freshly loaded
#      table, with: the default settings (no ec_configure: the load-aware throttle of the extension),
#      unthrottled (ec_configure '{"nice_ratio": 0, "max_load": 0}'), each nice_ratio of BENCH_MIXED_NICE
#      and each batch_delay_ms of BENCH_MIXED_DELAYS (settings applied in ec_start's transaction).  For a
#      backfill the clients run from BENCH_MIXED_SECS before ec_start until the backfill task is done, as
#      back-to-back pgbench runs of 5 s (as in 6), and the figures are those of the transactions completed
#      between ec_start's commit and the task's finished_at: throughput and p99 against those of the
#      BENCH_MIXED_SECS before ec_start on the same table (the targets' baseline: next to the backfill in
#      time, on a shared machine whose load changes) and against 5a's, client errors, and the backfill's
#      time (that span) against the unthrottled one's, both under the same traffic.
#   6. the headline migration of issue 10 ("rebuild"): integer -> bigint of accounts.id, the primary key,
#      referenced by transfers.account_id (a foreign key), both tables with secondary and unique indexes
#      (test/bench/rebuild_load.sql), at BENCH_ROWS_SMALL and BENCH_ROWS_LARGE accounts, with
#      BENCH_REBUILD_TRANSFERS transfers per account; one migration retypes both columns (alter_column,
#      up/down the column itself).  Once per size:
#        baseline   pgbench through the old version for BENCH_MIXED_SECS: selects of accounts by pk,
#                   updates of accounts, inserts of transfers for existing accounts (4:1:1); then on the
#                   same copy ALTER TABLE accounts ALTER COLUMN id TYPE bigint; ALTER TABLE transfers
#                   ALTER COLUMN account_id TYPE bigint (one transaction, timed): the downtime replaced
#        ec         a freshly loaded copy, the same pgbench running throughout: ec_start, the wait for
#                   every worker task, ec_complete (test/bench/rebuild_{start,wait,complete}.sql).
#                   Reported: for each call, how long it held ACCESS EXCLUSIVE on a table (the longest
#                   span, and how many spans: a lock attempt that timed out and was retried makes two),
#                   as another session sees it polling pg_locks every 2 ms (bench.watch_locks); the
#                   strongest table lock it took (read from pg_locks before its commit); its time, the
#                   call alone and BEGIN to COMMIT (a bound that also counts lock waits and, for
#                   ec_complete, the removal of the dropped indexes' files, which PostgreSQL does after
#                   releasing the locks); the clients' worst latency during it.  The total (ec_start's
#                   BEGIN to ec_complete's COMMIT) against the offline ALTER, and the worker's tasks by
#                   kind; throughput, p99 and worst latency of the transactions completed between
#                   ec_start and ec_complete against the baseline's, and what the migration was doing
#                   while the slowest of them waited; client errors.  Then checked: the
#                   tables' constraints, indexes, columns, relations and triggers equal the offline
#                   copy's; no key changed, no update or insert that a client saw commit is missing, no
#                   orphan transfer.
#      The clients run as back-to-back pgbench runs of 5 s (so that they can be stopped when the
#      migration ends), and the figures come from their per-transaction logs.
#   7. parallel backfill ("parallel"): the BENCH_ROWS_LARGE-row table, freshly loaded each time, backfilled
#      by each worker count of BENCH_PARALLEL_WORKERS (ec_configure max_parallel_workers, with nice_ratio 0
#      and max_load 0: there is no traffic, and the bench's own polling session must not slow it), no
#      traffic; from ec_start's commit until every part is done, against one UPDATE of the same rows in the
#      same run (7a), and the speed-up against the first count (1 worker).  Also the parts the table was
#      cut into and the most workers seen connected at once (sampled every 0.5 s).  No target: on a
#      machine with fewer cores than workers the speed-up is bounded by the cores.
#   8. compaction ("compact"), at both sizes: cents int -> bigint offline (ALTER TABLE, VACUUM), and
#      through expand_contract with compact on and off (nice_ratio 0, max_load 0: no traffic): ec_start,
#      CALL ec_wait() (the backfill and the REINDEX tasks), ec_complete, VACUUM; heap and index sizes
#      against the offline change's (targets <= 1.2 and <= 1.1, issue 12), and the time compact costs
#      against the backfill without it, and against that plus the VACUUM it needs anyway.
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
#   BENCH_QUICK=1            smoke run: 100k/300k rows, 3 s pgbench runs, 2 rounds
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
#   BENCH_PARALLEL_WORKERS="1 2 4"   worker counts of 7 (the first is the speed-up's baseline)
#   BENCH_PHASES="backfill writes mixed rebuild parallel compact"   which parts to run (backfill
#                            includes 3 and 4; rebuild is 6, parallel 7, compact 8)
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
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ec_setup_traps

BENCH_QUICK=${BENCH_QUICK:-0}
if [[ $BENCH_QUICK == 1 ]]; then
    BENCH_ROWS_SMALL=${BENCH_ROWS_SMALL:-100000}
    BENCH_ROWS_LARGE=${BENCH_ROWS_LARGE:-300000}
    BENCH_PGBENCH_SECS=${BENCH_PGBENCH_SECS:-3}
    BENCH_MIXED_SECS=${BENCH_MIXED_SECS:-10}
    BENCH_ROUNDS=${BENCH_ROUNDS:-2}
else
    BENCH_ROWS_SMALL=${BENCH_ROWS_SMALL:-1000000}
    BENCH_ROWS_LARGE=${BENCH_ROWS_LARGE:-10000000}
    BENCH_PGBENCH_SECS=${BENCH_PGBENCH_SECS:-10}
    BENCH_MIXED_SECS=${BENCH_MIXED_SECS:-30}
    BENCH_ROUNDS=${BENCH_ROUNDS:-3}
fi
BENCH_CLIENTS=${BENCH_CLIENTS:-2}
BENCH_PGBENCH_MODE=${BENCH_PGBENCH_MODE:-simple}
BENCH_EC_BATCHES=${BENCH_EC_BATCHES-20000}
BENCH_MIXED_NICE=${BENCH_MIXED_NICE-0.5 2}
BENCH_MIXED_DELAYS=${BENCH_MIXED_DELAYS-}
BENCH_PARALLEL_WORKERS=${BENCH_PARALLEL_WORKERS:-1 2 4}
BENCH_PHASES=${BENCH_PHASES:-backfill writes mixed rebuild parallel compact}
BENCH_REBUILD_TRANSFERS=${BENCH_REBUILD_TRANSFERS:-1}
BENCH_REBUILD_SETTINGS=${BENCH_REBUILD_SETTINGS:-}
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

posint() { [[ ${!1} =~ ^[0-9]+$ && ${!1} -gt 0 ]] || die "$1 must be a positive integer (is '${!1}')"; }
for v in BENCH_ROWS_SMALL BENCH_ROWS_LARGE BENCH_PGBENCH_SECS BENCH_MIXED_SECS BENCH_CLIENTS BENCH_ROUNDS \
         BENCH_STALL_TIMEOUT BENCH_STEP_TIMEOUT BENCH_PROBE_RATE BENCH_REBUILD_TRANSFERS; do
    posint "$v"
done
[[ -z $BENCH_BACKFILL_TIMEOUT ]] || posint BENCH_BACKFILL_TIMEOUT
for b in $BENCH_EC_BATCHES; do [[ $b =~ ^[0-9]+$ && $b -gt 0 ]] || die "BENCH_EC_BATCHES: '$b' is not a positive integer"; done
for b in $BENCH_MIXED_DELAYS; do [[ $b =~ ^[0-9]+$ ]] || die "BENCH_MIXED_DELAYS: '$b' is not a number of milliseconds"; done
for r in $BENCH_MIXED_NICE; do [[ $r =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "BENCH_MIXED_NICE: '$r' is not a number"; done
for w in $BENCH_PARALLEL_WORKERS; do [[ $w =~ ^[0-9]+$ && $w -gt 0 ]] || die "BENCH_PARALLEL_WORKERS: '$w' is not a positive integer"; done
for p in $BENCH_PHASES; do [[ $p =~ ^(backfill|writes|mixed|rebuild|parallel|compact)$ ]] || die "BENCH_PHASES: unknown part '$p' (backfill writes mixed rebuild parallel compact)"; done
for v in $BENCH_WRITE_VARIANTS; do [[ $v =~ ^(plain|extra_column|ec|ec_subquery|plpgsql|plpgsql_subquery)$ ]] || die "BENCH_WRITE_VARIANTS: unknown variant '$v'"; done
[[ $BENCH_FAST =~ ^[01]$ ]] || die "BENCH_FAST must be 0 or 1"
[[ $BENCH_PGBENCH_MODE =~ ^(simple|extended|prepared)$ ]] || die "BENCH_PGBENCH_MODE must be simple, extended or prepared"
phase_on() { [[ " $BENCH_PHASES " == *" $1 "* ]]; }

MIGRATION='{"operations":[{"alter_column":{"table":"t","column":"cents","name":"amount","type":"numeric(12,2)","up":"cents / 100.0","down":"(amount * 100)::int"}}]}'
# The same migration with an "up" that reads another table (test/bench/setup.sql: every divisor is 100.0).
# Issue 11's measurement: text -> bigint of t.a (test/bench/load_text.sql's table).
MIGRATION_TEXT='{"operations":[{"alter_column":{"table":"t","column":"a","type":"bigint","up":"CAST(a AS bigint)","down":"a::text"}}]}'
MIGRATION_SUBQUERY='{"operations":[{"alter_column":{"table":"t","column":"cents","name":"amount","type":"numeric(12,2)","up":"cents / (SELECT u.divisor FROM bench.units u WHERE u.code = cents % 1000)","down":"(amount * 100)::int"}}]}'

now_ms() { date +%s%3N; }
T_BEGIN=$(now_ms)
title() { printf '\n=== %s  [+%ss]\n' "$*" $(( ($(now_ms) - T_BEGIN) / 1000 )); }

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

# ---------------------------------------------------------------------------------------------------
# results: a flat JSON object (insertion order), the table's rows, anomalies

JSON_KEYS=()
declare -A JSON_VAL=()
TABLE=()
ANOMALIES=()

is_num() { [[ ${1:-} =~ ^-?[0-9]+(\.[0-9]+)?$ ]]; }
# put KEY VALUE: a number, or null when VALUE is not one
put() {
    local v=${2:-}
    is_num "$v" || v=null
    [[ -v JSON_VAL[$1] ]] || JSON_KEYS+=("$1")
    JSON_VAL[$1]=$v
}
put_raw() { [[ -v JSON_VAL[$1] ]] || JSON_KEYS+=("$1"); JSON_VAL[$1]=$2; }
anomaly() { ANOMALIES+=("$*"); warn "$*"; }

# median LIST: the median of the numbers in LIST (space-separated; anything else is ignored), or null
median() {
    local x nums=()
    for x in $1; do is_num "$x" && nums+=("$x"); done
    ((${#nums[@]})) || { echo null; return; }
    printf '%s\n' "${nums[@]}" | sort -g | awk '
        { a[NR] = $1 }
        END {
            if (NR % 2) { print a[(NR + 1) / 2]; exit }
            m = (a[NR / 2] + a[NR / 2 + 1]) / 2
            printf (m >= 100 ? "%.1f\n" : "%.3f\n"), m
        }'
}
# spread LIST: "n=3, spread 4%" ((max - min) / median), or "" for fewer than two numbers
spread() {
    local x nums=()
    for x in $1; do is_num "$x" && nums+=("$x"); done
    ((${#nums[@]} > 1)) || return 0
    printf '%s\n' "${nums[@]}" | sort -g | awk -v m="$(median "$1")" '{ a[NR] = $1 } END { if (m > 0) printf "n=%d, spread %.0f%%\n", NR, 100 * (a[NR] - a[1]) / m }'
}
# ratio A B: A/B with 3 decimals, or null
ratio() {
    if is_num "${1:-}" && is_num "${2:-}" && awk -v b="$2" 'BEGIN { exit !(b > 0) }'; then
        awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f\n", a / b }'
    else
        echo null
    fi
}
# meets VALUE OP LIMIT: ok / MISS / n/a
meets() {
    is_num "${1:-}" || { echo "n/a"; return; }
    if awk -v v="$1" -v l="$3" -v op="$2" 'BEGIN { exit !((op == "<=" && v <= l) || (op == ">=" && v >= l) || (op == "==" && v == l)) }'; then
        echo ok
    else
        echo MISS
    fi
}
fmt() { if is_num "${1:-}"; then printf '%s%s' "$1" "${2:-}"; else printf -- '-'; fi; }

section() { TABLE+=("#$*"); }
# cmp KEY LABEL VALUES UNIT BASELINES [OP LIMIT]: KEY = median(VALUES) / median(BASELINES), and a table row
cmp() {
    local key=$1 label=$2 values=$3 unit=$4 bases=$5 op=${6:-} limit=${7:-} v b r target='' verdict='' note
    v=$(median "$values")
    b=$(median "$bases")
    r=$(ratio "$v" "$b")
    put "$key" "$r"
    if [[ -n $op ]]; then target="$op $limit"; verdict=$(meets "$r" "$op" "$limit"); fi
    note=$(spread "$values")
    [[ -n $note && -n $(spread "$bases") ]] && note+=" (baseline: $(spread "$bases" | sed 's/^n=[0-9]*, //'))"
    TABLE+=("$label|$(fmt "$v" "$unit")|$(fmt "$b" "$unit")|$r|$target|$verdict|$note")
}
# info LABEL VALUE [TARGET VERDICT [NOTE]]: a table row without a baseline
info() { TABLE+=("$1|$2|||${3:-}|${4:-}|${5:-}"); }

# ---------------------------------------------------------------------------------------------------
# cluster

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
bindir=$(pg_bindir)

# fatal MESSAGE: the server log usually says why; exit through the cleanup trap
fatal() {
    if [[ -n $EC_PG_LOG && -f $EC_PG_LOG ]]; then
        echo "--- last lines of the server log ---" >&2
        tail -n 40 "$EC_PG_LOG" >&2
    fi
    die "$*"
}

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
as_pg "$bindir/createdb" bench || fatal "createdb bench failed"
export PGDATABASE=bench

# psql as the postgres OS user: unaligned, tuples only, fields separated by spaces, stop at the first
# error.  (psql does not interpolate :variables in -c commands: pass those on standard input.)
q() { as_pg timeout -k 10 "$BENCH_STEP_TIMEOUT" "$bindir/psql" -X -q -v ON_ERROR_STOP=1 -At -F ' ' "$@"; }

declare -A KV=()
# sql FILE [psql args...]: runs test/bench/FILE; its key=value tokens land in KV.  On error prints the
# output and returns 1.
sql() {
    local file=$1 out=$work/last.out rc=0 tok
    shift
    KV=()
    q -f "$work/bench/$file" "$@" >"$out" 2>&1 || rc=$?
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

say "loading expand_contract and the helpers"
q -f "$work/bench/setup.sql" >/dev/null || fatal "test/bench/setup.sql failed"
q -f "$work/bench/pgroll_style.sql" >/dev/null || fatal "test/bench/pgroll_style.sql failed"
EC_VERSION=$(q -c "SELECT extversion FROM pg_extension WHERE extname = 'expand_contract'")
HAS_WORKER=$(q -c "SELECT to_regclass('expand_contract.tasks') IS NOT NULL")
HAS_CONFIGURE=$(q -c "SELECT to_regprocedure('pg_catalog.ec_configure(text,jsonb)') IS NOT NULL")
HAS_PAUSE=$(q -c "SELECT to_regprocedure('pg_catalog.ec_pause(text)') IS NOT NULL")
DEFAULT_BATCH=$(q -c "LOAD 'expand_contract'" -c "SELECT coalesce(current_setting('expand_contract.batch_size', true), '')" 2>/dev/null | tail -n1 || true)
[[ -n $DEFAULT_BATCH ]] || DEFAULT_BATCH='?'
LOCK_TIMEOUT_MS=$(q -c "LOAD 'expand_contract'" -c "SELECT coalesce(round(1000 * extract(epoch FROM current_setting('expand_contract.lock_timeout', true)::interval))::text, '')" 2>/dev/null | tail -n1 || true)
if [[ $HAS_WORKER == t ]]; then
    say "expand_contract $EC_VERSION with the background worker (expand_contract.batch_size = $DEFAULT_BATCH)"
else
    say "expand_contract $EC_VERSION without a background worker: ec_complete fills the rows (measured as such)"
fi
q -c "SELECT version()"
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
put_raw worker "$([[ $HAS_WORKER == t ]] && echo true || echo false)"

# reset_state: no active migration, no t, no version schema, a fresh extension (no history, no worker)
reset_state() {
    if ! sql reset.sql; then
        anomaly "reset failed (ec_rollback?); dropping by force"
        q -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()" >/dev/null || true
        sleep 1
        q -c "SET expand_contract.allow_ddl = on" -c "DROP TABLE IF EXISTS public.t, public.transfers, public.accounts CASCADE" -c "DROP EXTENSION IF EXISTS expand_contract CASCADE" \
          -c "CREATE EXTENSION expand_contract" >/dev/null || fatal "could not reset the benchmark database"
        q -c "SELECT format('DROP SCHEMA %I CASCADE', nspname) FROM pg_namespace WHERE nspname LIKE 'public\_%'" |
            while read -r stmt; do q -c "$stmt" >/dev/null; done
    fi
    wait_no_workers
}

# wait_no_workers: after a rollback, the migration's worker must go away
wait_no_workers() {
    local i n
    for ((i = 0; i < 100; i++)); do
        n=$(q -c "SELECT bench.ec_workers()") || n=0
        ((n == 0)) && return 0
        sleep 0.1
    done
    anomaly "an expand_contract background worker is still connected 10s after its migration was rolled back or dropped; terminating it"
    q -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND backend_type ILIKE '%expand%'" >/dev/null || true
}

ROWS_CUR=0
# load_table N: a fresh public.t of N rows
load_table() {
    local t0
    t0=$(now_ms)
    sql load.sql -v rows="$1" || fatal "loading $1 rows failed"
    ROWS_CUR=$1
    say "loaded $1 rows, vacuumed, analysed, checkpointed ($(( ($(now_ms) - t0) / 1000 ))s)"
}

table_mb() { q -c "SELECT round(pg_total_relation_size('public.t') / 1048576.0, 1)" 2>/dev/null || echo null; }

# task_diag MIGRATION: diagnostics for a migration whose tasks did not finish
task_diag() {
    {
        echo "--- expand_contract.tasks of migration $1 ---"
        q -c "SELECT * FROM bench.task_report('$1')" || true
        q -x -c "SELECT * FROM ec_status('public')" || true
        echo "--- non-client backends ---"
        q -c "SELECT pid, backend_type, state, wait_event_type, wait_event, left(query, 80) FROM pg_stat_activity WHERE backend_type NOT IN ('client backend', 'checkpointer', 'background writer', 'walwriter', 'logical replication launcher', 'autovacuum launcher')" || true
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

# server_mode durable|fast: durable is postgresql.conf as written above; fast turns fsync,
# synchronous_commit and full_page_writes off (ALTER SYSTEM, reloaded: no restart needed; the worker is
# forked by the postmaster after the reload and sees the new values).  Waits until a new session sees
# them.  Back to durable, it also flushes what the fast configuration left in the page cache to disk
# (syncfs of the cluster's file system), so that the kernel does not write it back during the next
# measurement.
SERVER_MODE=durable
DURABLE_SETTINGS=$(q -c "SELECT string_agg(name || '=' || setting, ' ' ORDER BY name) FROM pg_settings WHERE name IN ('fsync', 'full_page_writes', 'synchronous_commit')") ||
    fatal "could not read the durability settings"
server_mode() {
    local want i got
    if [[ $1 == fast ]]; then
        q -c "ALTER SYSTEM SET fsync = off" -c "ALTER SYSTEM SET synchronous_commit = off" \
          -c "ALTER SYSTEM SET full_page_writes = off" -c "SELECT pg_reload_conf()" >/dev/null || fatal "ALTER SYSTEM failed"
        want='fsync=off full_page_writes=off synchronous_commit=off'
    else
        q -c "ALTER SYSTEM RESET fsync" -c "ALTER SYSTEM RESET synchronous_commit" \
          -c "ALTER SYSTEM RESET full_page_writes" -c "SELECT pg_reload_conf()" >/dev/null || fatal "ALTER SYSTEM failed"
        want=$DURABLE_SETTINGS
    fi
    for ((i = 0; i < 100; i++)); do
        got=$(q -c "SELECT string_agg(name || '=' || setting, ' ' ORDER BY name) FROM pg_settings WHERE name IN ('fsync', 'full_page_writes', 'synchronous_commit')") || got=''
        [[ $got == "$want" ]] && break
        sleep 0.1
    done
    [[ $got == "$want" ]] || fatal "server_mode $1: the server shows '$got' 10 s after the reload, not '$want'"
    if [[ $1 != fast && $SERVER_MODE == fast ]]; then
        q -c "CHECKPOINT" >/dev/null || true
        sync -f "$EC_PGDATA" || true
    fi
    SERVER_MODE=$1
    say "server configuration: $1 ($got)"
}

# ---------------------------------------------------------------------------------------------------
# pgbench

# latency_stats PREFIX: "p50 p99 max n failed" (ms) from pgbench's per-transaction logs PREFIX.*
latency_stats() {
    local files
    files=$(compgen -G "$1.*" | grep -v '\.failed$' || true)
    if [[ -z $files ]]; then echo "null null null 0 0"; return; fi
    # shellcheck disable=SC2086
    cat $files | awk '
        $3 ~ /^[0-9]+$/ { print $3; next }
        { failed++ }
        END { print failed + 0 > "/dev/stderr" }' 2>"$1.failed" | sort -n | awk '
        { a[NR] = $1 }
        END {
            if (NR == 0) { print "null null null 0"; exit }
            i50 = int(0.50 * NR); if (i50 < 1) i50 = 1
            i99 = int(0.99 * NR + 0.999999); if (i99 > NR) i99 = NR
            printf "%.3f %.3f %.3f %d\n", a[i50] / 1000, a[i99] / 1000, a[NR] / 1000, NR
        }' | tr '\n' ' '
    cat "$1.failed"
}

# pgb NAME SEARCH_PATH SECS CLIENTS SCRIPT[@WEIGHT]...: one pgbench run, as fast as it goes, with
# per-transaction logs, in the query mode PGB_MODE (default BENCH_PGBENCH_MODE).  Sets PGB_TPS PGB_P50 PGB_P99 PGB_MAX PGB_N PGB_FAILED PGB_ABORTED PGB_RC.
pgb() {
    local name=$1 path=$2 secs=$3 clients=$4 out f rc=0
    shift 4
    out=$work/pgb_$name.out
    local args=(-n -c "$clients" -j "$clients" -T "$secs" -D rows="$ROWS_CUR" -M "${PGB_MODE:-$BENCH_PGBENCH_MODE}"
                --log --log-prefix="$work/log/$name")
    ((secs >= 10)) && args+=(-P 5)
    for f; do args+=(-f "$work/bench/$f"); done
    as_pg env PGOPTIONS="-c search_path=$path" PGAPPNAME="bench_$name" "$bindir/pgbench" "${args[@]}" \
        >"$out" 2>&1 || rc=$?
    grep '^progress:' "$out" | sed 's/^/      /' || true
    PGB_RC=$rc
    PGB_TPS=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$out" | head -n1)
    is_num "$PGB_TPS" && PGB_TPS=$(awk -v t="$PGB_TPS" 'BEGIN { printf "%.1f\n", t }')
    PGB_FAILED=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$out" | head -n1)
    PGB_ABORTED=$(grep -c 'aborted' "$out" || true)
    read -r PGB_P50 PGB_P99 PGB_MAX PGB_N _ <<<"$(latency_stats "$work/log/$name")"
    if ((rc != 0)) || [[ -z $PGB_TPS ]]; then
        warn "pgbench $name exited with $rc; its output:"
        grep -v '^progress:' "$out" | sed 's/^/      /' >&2
    fi
    printf '      %-22s tps %-9s p50 %-7s p99 %-7s max %-8s ms  txns %-7s failed %s  aborted %s  exit %s\n' \
        "$name" "${PGB_TPS:-?}" "$PGB_P50" "$PGB_P99" "$PGB_MAX" "$PGB_N" "${PGB_FAILED:-?}" "$PGB_ABORTED" "$rc"
}

# probe_start NAME: a client selecting by pk from public.t, BENCH_PROBE_RATE a second for 4 s, in the
# background; returns after 1.5 s.  probe_end: waits for it and sets PROBE_MAX (worst latency, ms).
probe_start() {
    PROBE_NAME=probe_$1
    run_bg as_pg env PGOPTIONS="-c search_path=public" "$bindir/pgbench" -n -c 1 -j 1 -T 4 -R "$BENCH_PROBE_RATE" \
        -D rows="$ROWS_CUR" --log --log-prefix="$work/log/$PROBE_NAME" -f "$work/bench/pgb_probe.sql" \
        >"$work/$PROBE_NAME.out" 2>&1
    PROBE_PID=$EC_LAST_PID
    sleep 1.5
}
probe_end() {
    local rc=0 p50 n
    wait "$PROBE_PID" || rc=$?
    read -r p50 _ PROBE_MAX n _ <<<"$(latency_stats "$work/log/$PROBE_NAME")"
    if ((rc != 0)); then
        warn "the probe client exited with $rc:"
        sed 's/^/      /' "$work/$PROBE_NAME.out" >&2
        PROBE_MAX=null
    fi
    say "probe: $n selects meanwhile, median $p50 ms, worst $PROBE_MAX ms"
}

# ---------------------------------------------------------------------------------------------------
# 1, 3, 4: backfill at one size.  Lists (one value per round) keyed by size label.

declare -A UPD_MS=() EC_MS=() EC_WORKER_MS=() EC_LAUNCH_MS=() PGROLL_MS=() EC_INLINE_MS=()
declare -A UPD_MB=() EC_MB=() PGROLL_MB=()
declare -A START_MS=() COMPLETE_MS=() PROBE_START=() PROBE_COMPLETE=() EC_BATCH_MS=()
READ_BASE_TPS=''; READ_VIEW_TPS=''; READ_BASE_PREP_TPS=''; READ_VIEW_PREP_TPS=''
BF_OK=0

# ec_backfill LAB [SETTINGS [DOC]]: ec_start (timed) and the wait for the backfill; BF_OK=1 when done.
# LAB: the size label, or a key of UPD_MS such as "1m fast" (the timeout follows that UPDATE's time).
# SETTINGS: jsonb for ec_configure, applied in ec_start's transaction.  DOC: the migration (default
# MIGRATION).  Returns 1 when ec_start failed.
ec_backfill() {
    local lab=$1 settings=${2:-} doc=${3:-$MIGRATION} configure=true tmo status
    [[ -n $settings ]] || { configure=false; settings='{}'; }
    tmo=$(backfill_timeout "${UPD_MS[$lab]:-}")
    BF_OK=0
    sql backfill_ec.sql -v doc="$doc" -v configure="$configure" -v settings="$settings" \
        -v timeout="$tmo" -v stall="$BENCH_STALL_TIMEOUT" || {
        anomaly "ec_start or the wait for its backfill failed at $lab rows (ec_configure settings $settings)"
        return 1
    }
    status=$(kv backfill_status)
    say "ec_start: $(kv start_ms) ms.  backfill: $status $(kv backfill_wall_ms) ms after the commit (task: $(kv worker_ms) ms, started $(kv launch_ms) ms after the commit, $(kv rows_done) rows, $(kv batches) batches); all tasks $(kv tasks_status) after $(kv tasks_wall_ms) ms"
    case $status in
        done) BF_OK=1 ;;
        no_tasks_table) ;;
        stalled)
            anomaly "backfill at $lab rows: no progress for ${BENCH_STALL_TIMEOUT}s (BENCH_STALL_TIMEOUT), task states '$(kv backfill_states)': worker not launched, paused or stuck?"
            task_diag v1 ;;
        timeout)
            anomaly "backfill at $lab rows: not done after ${tmo}s (BENCH_BACKFILL_TIMEOUT)"
            task_diag v1 ;;
        failed)
            anomaly "backfill at $lab rows: a task failed"
            task_diag v1 ;;
        none)
            anomaly "backfill at $lab rows: ec_start queued no backfill task"
            task_diag v1 ;;
        *)  anomaly "backfill at $lab rows: unexpected status '$status'" ;;
    esac
    if [[ $BF_OK == 1 && $(kv tasks_status) != "done" ]]; then
        anomaly "at $lab rows the backfill is done but the migration's other tasks are '$(kv tasks_status)'"
        task_diag v1
    fi
    return 0
}

# mismatch_check WHAT [EXPECTED]: rows whose new column is not EXPECTED (default cents / 100.0) must be 0
mismatch_check() {
    local n expected=${2:-cents / 100.0}
    n=$(q -v expected="$expected" <<<"SELECT coalesce(bench.ec_mismatches(:'expected')::text, 'n/a')") || n=error
    say "check: rows whose new column is not $expected: $n"
    [[ $n == 0 || $n == n/a ]] || anomaly "$1: $n rows whose new column is not $expected"
}

# reads LAB: pgbench select by pk, public.t and public_v1.t alternated BENCH_ROUNDS times, in the
# query mode of the run (BENCH_PGBENCH_MODE) and with prepared statements (execution without parsing,
# rewriting and planning: what the view costs at run time)
reads() {
    local i
    title "3. reads by pk: public_v1.t (view) against public.t, $1 rows, $BENCH_ROUNDS rounds of ${BENCH_PGBENCH_SECS}s runs"
    q -c "VACUUM (ANALYZE) public.t" -c "CHECKPOINT" >/dev/null || true
    for ((i = 1; i <= BENCH_ROUNDS; i++)); do
        pgb "read_base_$i" public "$BENCH_PGBENCH_SECS" "$BENCH_CLIENTS" pgb_read_base.sql
        READ_BASE_TPS+=" ${PGB_TPS:-}"
        pgb "read_view_$i" public_v1 "$BENCH_PGBENCH_SECS" "$BENCH_CLIENTS" pgb_read_view.sql
        READ_VIEW_TPS+=" ${PGB_TPS:-}"
        ((PGB_RC == 0)) || anomaly "select through public_v1.t failed"
        if [[ $BENCH_PGBENCH_MODE != prepared ]]; then
            PGB_MODE=prepared pgb "read_base_prepared_$i" public "$BENCH_PGBENCH_SECS" "$BENCH_CLIENTS" pgb_read_base.sql
            READ_BASE_PREP_TPS+=" ${PGB_TPS:-}"
            PGB_MODE=prepared pgb "read_view_prepared_$i" public_v1 "$BENCH_PGBENCH_SECS" "$BENCH_CLIENTS" pgb_read_view.sql
            READ_VIEW_PREP_TPS+=" ${PGB_TPS:-}"
        fi
    done
}

# backfill_round N LAB ROUND: the three backfills once; the first round also measures 3 and 4
backfill_round() {
    local n=$1 lab=$2 round=$3 first=0 of=''
    [[ $round == 1 ]] && first=1
    [[ $lab == "$LAB_S" ]] && of=", round $round of $BENCH_ROUNDS"

    title "1a. backfill baseline, $lab rows$of: one UPDATE"
    reset_state
    load_table "$n"
    if sql backfill_update.sql; then
        UPD_MS[$lab]+=" $(kv update_ms)"
        ((first)) && UPD_MB[$lab]=$(table_mb)
        say "UPDATE of $n rows: $(kv update_ms) ms"
    else
        anomaly "the baseline UPDATE failed at $lab rows"
    fi

    title "1b. expand_contract, $lab rows$of: ec_start, worker backfill$( ((first)) && echo ', ec_complete')"
    reset_state
    load_table "$n"
    if ((first)); then
        say "lock probe: ec_start in a transaction rolled back, while a client selects by pk"
        probe_start "start_$lab"
        sql ec_start_dry.sql -v doc="$MIGRATION" || anomaly "ec_start (rolled back) failed at $lab rows"
        probe_end
        PROBE_START[$lab]=$PROBE_MAX
        say "ec_start (rolled back): $(kv start_dry_ms) ms"
    fi
    if ec_backfill "$lab"; then
        ((first)) && START_MS[$lab]=$(kv start_ms)
        if [[ $BF_OK == 1 ]]; then
            EC_MS[$lab]+=" $(kv backfill_wall_ms)"
            EC_WORKER_MS[$lab]+=" $(kv worker_ms)"
            EC_LAUNCH_MS[$lab]+=" $(kv launch_ms)"
            ((first)) && EC_MB[$lab]=$(table_mb)
            mismatch_check "expand_contract backfill at $lab rows"
        fi
        if ((first)) && [[ $lab == "$LAB_S" ]] && [[ $BF_OK == 1 || $HAS_WORKER != t ]]; then
            reads "$lab"
        fi
        if ((first)); then
            title "4. ec_complete, $lab rows"
            if [[ $HAS_WORKER == t && $BF_OK == 1 ]]; then
                say "lock probe: ec_complete in a transaction rolled back, while a client selects by pk"
                probe_start "complete_$lab"
                sql ec_complete.sql -v dry=true -v wait=false || anomaly "ec_complete (rolled back) failed at $lab rows"
                probe_end
                PROBE_COMPLETE[$lab]=$PROBE_MAX
                say "ec_complete (rolled back): $(kv complete_dry_ms) ms"
                if sql ec_complete.sql -v dry=false -v wait=false; then
                    COMPLETE_MS[$lab]=$(kv complete_ms)
                    say "ec_complete: ${COMPLETE_MS[$lab]} ms"
                else
                    anomaly "ec_complete(wait => false) failed at $lab rows although every task was done"
                fi
            elif [[ $HAS_WORKER == t ]]; then
                say "skipped: the backfill did not finish"
            else
                say "no background worker: ec_complete fills the rows itself, under its locks (timed as a backfill)"
                if sql ec_complete.sql -v dry=false -v wait=true; then
                    EC_INLINE_MS[$lab]+=" $(kv complete_ms)"
                    say "ec_complete, with the fill: $(kv complete_ms) ms"
                else
                    anomaly "ec_complete failed at $lab rows"
                fi
            fi
        fi
    fi

    title "1c. pgroll-style backfill, $lab rows$of: PL/pgSQL trigger, batches of 1,000 ids"
    reset_state
    load_table "$n"
    if sql backfill_pgroll.sql; then
        PGROLL_MS[$lab]+=" $(kv pgroll_ms)"
        ((first)) && PGROLL_MB[$lab]=$(table_mb)
        say "pgroll-style backfill: $(kv pgroll_ms) ms"
        [[ $(kv pgroll_mismatches) == 0 ]] || anomaly "the pgroll-style backfill left $(kv pgroll_mismatches) mismatching rows (bench bug)"
    else
        anomaly "the pgroll-style backfill failed at $lab rows"
    fi
    return 0
}

# backfill_pair KEY LOAD UPDATE DOC EXPECTED ROUND: the UPDATE (test/bench/UPDATE) and expand_contract's
# backfill of DOC, each on a fresh BENCH_ROWS_SMALL-row table (test/bench/LOAD), in the current server
# configuration; values land under KEY ("1m fast", "1m text_bigint", ...).  EXPECTED: what the new
# column must hold.
backfill_pair() {
    local key=$1 load=$2 upd=$3 doc=$4 expected=$5 round=$6 n=$BENCH_ROWS_SMALL t0
    local of=", round $round of $BENCH_ROUNDS, $SERVER_MODE server"
    title "1a. backfill baseline, $key$of: one UPDATE ($upd)"
    reset_state
    t0=$(now_ms)
    sql "$load" -v rows="$n" || fatal "loading $n rows ($load) failed"
    ROWS_CUR=$n
    say "loaded $n rows ($load), vacuumed, analysed, checkpointed ($(( ($(now_ms) - t0) / 1000 ))s)"
    if sql "$upd"; then
        UPD_MS[$key]+=" $(kv update_ms)"
        say "UPDATE of $n rows: $(kv update_ms) ms"
        [[ $(kv update_mismatches) == 0 ]] || anomaly "the baseline UPDATE ($key) left $(kv update_mismatches) mismatching rows (bench bug)"
    else
        anomaly "the baseline UPDATE failed ($key)"
    fi
    [[ $HAS_WORKER == t ]] || return 0
    title "1b. expand_contract, $key$of: ec_start, worker backfill"
    reset_state
    t0=$(now_ms)
    sql "$load" -v rows="$n" || fatal "loading $n rows ($load) failed"
    say "loaded $n rows ($load), vacuumed, analysed, checkpointed ($(( ($(now_ms) - t0) / 1000 ))s)"
    if ec_backfill "$key" "" "$doc" && [[ $BF_OK == 1 ]]; then
        EC_MS[$key]+=" $(kv backfill_wall_ms)"
        EC_WORKER_MS[$key]+=" $(kv worker_ms)"
        EC_LAUNCH_MS[$key]+=" $(kv launch_ms)"
        mismatch_check "expand_contract backfill ($key)" "$expected"
    fi
    return 0
}

# The small size in both server configurations, interleaved: each round runs the durable and the fast
# measurements (in alternating order, so that neither always comes first), the large size runs durable
# only.
backfill_phase() {
    local r b mode modes
    for ((r = 1; r <= BENCH_ROUNDS; r++)); do
        modes=durable
        if [[ $BENCH_FAST == 1 ]]; then
            if ((r % 2)); then modes="durable fast"; else modes="fast durable"; fi
        fi
        for mode in $modes; do
            server_mode "$mode"
            if [[ $mode == durable ]]; then
                backfill_round "$BENCH_ROWS_SMALL" "$LAB_S" "$r"
                backfill_pair "$LAB_S text_bigint" load_text.sql backfill_update_text.sql "$MIGRATION_TEXT" "CAST(a AS bigint)" "$r"
            else
                backfill_pair "$LAB_S fast" load.sql backfill_update.sql "$MIGRATION" "cents / 100.0" "$r"
                backfill_pair "$LAB_S text_bigint fast" load_text.sql backfill_update_text.sql "$MIGRATION_TEXT" "CAST(a AS bigint)" "$r"
            fi
        done
    done
    server_mode durable
    if [[ $HAS_WORKER == t && $HAS_CONFIGURE == t ]]; then
        for b in $BENCH_EC_BATCHES; do
            title "1b'. expand_contract, $LAB_S rows, batch_size $b (ec_configure)"
            reset_state
            load_table "$BENCH_ROWS_SMALL"
            if ec_backfill "$LAB_S" "{\"batch_size\": $b}" && [[ $BF_OK == 1 ]]; then
                EC_BATCH_MS[$b]=$(kv backfill_wall_ms)
                mismatch_check "expand_contract backfill at $LAB_S rows, batch_size $b"
            fi
        done
    fi
    backfill_round "$BENCH_ROWS_LARGE" "$LAB_L" 1
    reset_state
}

# ---------------------------------------------------------------------------------------------------
# 2: writes

declare -A INS_MS=() INS_TPS=()
writes_phase() {
    local n=$BENCH_ROWS_SMALL v setup r st
    for ((r = 1; r <= BENCH_ROUNDS; r++)); do
        for v in $BENCH_WRITE_VARIANTS; do
            case $v in
                plain)        setup="SELECT 1" ;;
                extra_column) setup="ALTER TABLE public.t ADD COLUMN extra numeric(12,2)" ;;
                ec)           setup="SELECT ec_start('v1', '$MIGRATION')" ;;
                ec_subquery)  setup="SELECT ec_start('v1', '$MIGRATION_SUBQUERY')" ;;
                plpgsql)      setup="CALL bench.pgroll_start()" ;;
                plpgsql_subquery) setup="CALL bench.pgroll_start(true)" ;;
            esac
            title "2. writes, $v, round $r of $BENCH_ROUNDS: INSERT ... SELECT of $n rows, then ${BENCH_PGBENCH_SECS}s of single-row INSERTs"
            reset_state
            sql create_empty.sql || fatal "creating the empty table failed"
            if ! q -c "$setup" >/dev/null; then
                anomaly "setting up the $v write variant failed"
                continue
            fi
            if [[ $v == ec || $v == ec_subquery ]]; then
                st=$(q -c "CALL bench.wait_tasks('v1', '{backfill,sql}', 60, $BENCH_STALL_TIMEOUT, NULL, NULL, NULL)" | awk '{ print $1 }') || st=error
                if [[ $st != "done" && $st != no_tasks_table ]]; then
                    anomaly "the tasks of a migration of an empty table are '$st' after 60s"
                    task_diag v1
                fi
            fi
            ROWS_CUR=$n
            if sql insert_bulk.sql -v rows="$n"; then
                INS_MS[$v]+=" $(kv insert_ms)"
                say "INSERT ... SELECT of $n rows: $(kv insert_ms) ms"
            else
                anomaly "the bulk INSERT failed ($v)"
            fi
            pgb "insert_${v}_$r" public "$BENCH_PGBENCH_SECS" "$BENCH_CLIENTS" pgb_insert_one.sql
            INS_TPS[$v]+=" ${PGB_TPS:-}"
            ((PGB_RC == 0 && ${PGB_FAILED:-0} == 0)) || anomaly "pgbench inserts ($v): exit $PGB_RC, failed ${PGB_FAILED:-?}"
            if [[ $v == ec || $v == ec_subquery ]]; then mismatch_check "rows inserted through the old version with the trigger ($v)"; fi
        done
    done
    reset_state
}

# ---------------------------------------------------------------------------------------------------
# 5: traffic during a backfill, and 7: parallel backfill

MIXED_SCRIPTS=(pgb_mixed_select.sql@4 pgb_mixed_update.sql@1)
# mixed_loop NAME: the 4:1 mix of 5 through the old version, as back-to-back pgbench runs of
# TRAFFIC_CHUNK_SECS (as traffic_loop of 6) until the file NAME.stop exists, so that the clients run for
# the whole backfill, however long it takes; each run's number and exit status go to NAME.chunks
mixed_loop() {
    local name=$1 i=0 rc f args
    while [[ ! -e $work/$name.stop ]]; do
        i=$((i + 1))
        rc=0
        args=(-n -c "$BENCH_CLIENTS" -j "$BENCH_CLIENTS" -T "$TRAFFIC_CHUNK_SECS" -D rows="$ROWS_CUR"
              -M "$BENCH_PGBENCH_MODE" --log --log-prefix="$work/log/${name}_$i")
        for f in "${MIXED_SCRIPTS[@]}"; do args+=(-f "$work/bench/$f"); done
        as_pg env PGOPTIONS="-c search_path=public" PGAPPNAME="bench_$name" "$bindir/pgbench" "${args[@]}" \
            >"$work/${name}_$i.out" 2>&1 || rc=$?
        echo "$i $rc" >>"$work/$name.chunks"
    done
}
# mixed_start NAME: the clients in the background (traffic_stop stops them); returns once they run
mixed_start() {
    TRAFFIC_NAME=$1
    rm -f "$work/$1.stop" "$work/$1.chunks"
    run_bg mixed_loop "$1"
    TRAFFIC_PID=$EC_LAST_PID
    sleep 1.5
}
# mixed_window NAME FROM TO: MW_TPS MW_P50 MW_P99 MW_MAX MW_N of the transactions completed between
# FROM and TO (epoch seconds), MW_ERRORS over all of NAME's runs
mixed_window() {
    read -r MW_TPS MW_P50 MW_P99 MW_MAX MW_N _ <<<"$(traffic_window "$1" "$2" "$3")"
    MW_ERRORS=$(traffic_errors "$1")
    say "$1: tps $MW_TPS, p50 $MW_P50 ms, p99 $MW_P99 ms, max $MW_MAX ms, $MW_N transactions in $(awk -v a="$2" -v b="$3" 'BEGIN { printf "%.1f", b - a }') s; client errors $MW_ERRORS"
}

# The backfills of 5, in run order: key, label, ec_configure settings ("" for none)
MIX_KEYS=()
declare -A MIX_LABEL=() MIX_SETTINGS=()
mix_variant() { MIX_KEYS+=("$1"); MIX_LABEL[$1]=$2; MIX_SETTINGS[$1]=$3; }
mix_variant default "default settings" ""
mix_variant unthrottled "unthrottled (nice_ratio 0, max_load 0)" '{"nice_ratio": 0, "max_load": 0}'
for r in $BENCH_MIXED_NICE; do mix_variant "nice${r//./_}" "nice_ratio $r" "{\"nice_ratio\": $r}"; done
for d in $BENCH_MIXED_DELAYS; do mix_variant "delay$d" "batch_delay_ms $d" "{\"batch_delay_ms\": $d}"; done

declare -A MIX_TPS=() MIX_P99=() MIX_MAX=() MIX_ERR=() MIX_BF_S=() MIX_BATCHES=() MIX_PRE_TPS=() MIX_PRE_P99=()
MIX_IDLE_TPS=''; MIX_IDLE_P99=''; MIX_IDLE_ERR=''; MIX_TRIG_TPS=''; MIX_TRIG_P99=''; MIX_TRIG_ERR=''

# mixed_backfill KEY: a freshly loaded table with the mix running; ec_start (and ec_configure with the
# variant's settings, in its transaction) and the traffic until the worker's backfill task is done.
# The figures are those of the transactions completed between ec_start's commit and the task's
# finished_at; the backfill's time is that span, so every variant's time is measured under the same traffic.
mixed_backfill() {
    local key=$1 n=$BENCH_ROWS_LARGE lab=$LAB_L configure=false settings='{}' t_commit t_done tmo st info_line batches from to pre_tps pre_p99
    [[ -n ${MIX_SETTINGS[$key]} ]] && { configure=true; settings=${MIX_SETTINGS[$key]}; }
    title "5. the mix while the backfill of $lab rows runs, ${MIX_LABEL[$key]}${MIX_SETTINGS[$key]:+ (ec_configure $settings)}"
    reset_state
    load_table "$n"
    mixed_start "mx_$key"
    # the same mix on this table just before ec_start: a baseline next to the backfill in time, which a
    # shared machine's changing load affects as much as it does the backfill's window
    from=$(epoch_now)
    sleep "$BENCH_MIXED_SECS"
    to=$(epoch_now)
    read -r pre_tps _ pre_p99 _ <<<"$(traffic_window "mx_$key" "$from" "$to")"
    MIX_PRE_TPS[$key]=$pre_tps; MIX_PRE_P99[$key]=$pre_p99
    say "before ec_start (${BENCH_MIXED_SECS}s): tps ${MIX_PRE_TPS[$key]}, p99 ${MIX_PRE_P99[$key]} ms"
    if ! t_commit=$(q -v doc="$MIGRATION" -v configure="$configure" -v settings="$settings" <<'SQL'
BEGIN;
SELECT ec_start('v1', :'doc') IS NOT NULL AS started \gset
\if :configure
SELECT ec_configure('public', :'settings'::jsonb) IS NOT NULL AS configured \gset
\endif
COMMIT;
SELECT extract(epoch FROM clock_timestamp());
SQL
    ); then
        anomaly "ec_start (${MIX_LABEL[$key]}) failed under traffic"
        traffic_stop
        return 0
    fi
    tmo=$(( 3 * $(backfill_timeout "${UPD_MS[$lab]:-}") ))
    st=$(q -c "CALL bench.wait_tasks('v1', '{backfill}', $tmo, $BENCH_STALL_TIMEOUT, NULL, NULL, NULL)" | awk '{ print $1 }') || st=error
    info_line=$(q -c "SELECT extract(epoch FROM max(k.finished_at)), sum(k.batches), sum(k.rows_done), count(*) FROM expand_contract.tasks k JOIN expand_contract.migrations m ON m.id = k.migration_id WHERE m.schema_name = 'public' AND m.name = 'v1' AND k.kind = 'backfill'") || info_line=''
    read -r t_done batches _ _ <<<"$info_line"
    MIX_BATCHES[$key]=$batches
    is_num "$t_done" || t_done=$(epoch_now)
    traffic_stop
    if [[ $st == "done" ]]; then
        MIX_BF_S[$key]=$(awk -v a="$t_commit" -v b="$t_done" 'BEGIN { printf "%.1f\n", b - a }')
        say "backfill done ${MIX_BF_S[$key]} s after ec_start's commit ($info_line: finished_at, batches, rows, parts)"
    else
        anomaly "the backfill under traffic (${MIX_LABEL[$key]}) ended as '$st'"
        task_diag v1
    fi
    mixed_window "mx_$key" "$t_commit" "$t_done"
    MIX_TPS[$key]=$MW_TPS; MIX_P99[$key]=$MW_P99; MIX_MAX[$key]=$MW_MAX; MIX_ERR[$key]=$MW_ERRORS
    ((MW_ERRORS == 0)) || anomaly "client errors during the traffic of the backfill (${MIX_LABEL[$key]}): $MW_ERRORS"
    [[ $st == "done" ]] && mismatch_check "backfill under traffic at $lab rows (${MIX_LABEL[$key]})"
    return 0
}

mixed_phase() {
    local n=$BENCH_ROWS_LARGE lab=$LAB_L from to st key
    title "5a. selects + updates (4:1) by random pk through the old version, no migration, $lab rows, ${BENCH_MIXED_SECS}s"
    reset_state
    load_table "$n"
    mixed_start mx_idle
    from=$(epoch_now)
    sleep "$BENCH_MIXED_SECS"
    to=$(epoch_now)
    traffic_stop
    mixed_window mx_idle "$from" "$to"
    MIX_IDLE_TPS=$MW_TPS; MIX_IDLE_P99=$MW_P99; MIX_IDLE_ERR=$MW_ERRORS
    ((MW_ERRORS == 0)) || anomaly "client errors without a migration: $MW_ERRORS"

    if [[ $HAS_PAUSE == t ]]; then
        title "5a'. the same with a migration started but its backfill paused (the dual-write trigger alone), $lab rows, ${BENCH_MIXED_SECS}s"
        q -c "VACUUM (ANALYZE) public.t" -c "CHECKPOINT" >/dev/null || true
        if q -v doc="$MIGRATION" >/dev/null <<'SQL'
BEGIN;
SELECT ec_start('v1', :'doc');
SELECT ec_pause('public');
COMMIT;
SQL
        then
            mixed_start mx_trigger
            from=$(epoch_now)
            sleep "$BENCH_MIXED_SECS"
            to=$(epoch_now)
            traffic_stop
            mixed_window mx_trigger "$from" "$to"
            MIX_TRIG_TPS=$MW_TPS; MIX_TRIG_P99=$MW_P99; MIX_TRIG_ERR=$MW_ERRORS
            ((MW_ERRORS == 0)) || anomaly "client errors with the backfill paused: $MW_ERRORS"
            st=$(q -c "SELECT coalesce(sum(k.rows_done), 0) FROM expand_contract.tasks k JOIN expand_contract.migrations m ON m.id = k.migration_id WHERE m.name = 'v1' AND k.kind = 'backfill'") || st='?'
            [[ $st == 0 ]] || anomaly "the backfill of a migration paused in ec_start's transaction filled $st rows"
            q -c "SELECT ec_rollback('public')" >/dev/null || anomaly "ec_rollback of the paused migration failed"
        else
            anomaly "ec_start + ec_pause failed"
        fi
        wait_no_workers
    fi

    if [[ $HAS_WORKER != t || $HAS_CONFIGURE != t ]]; then
        say "no background worker or no ec_configure: no backfill under traffic to measure"
        reset_state
        return 0
    fi
    for key in "${MIX_KEYS[@]}"; do
        mixed_backfill "$key"
    done
    reset_state
}

# 7: the same BENCH_ROWS_LARGE-row table backfilled by 1, 2, 4 (BENCH_PARALLEL_WORKERS) workers, each
# from a freshly loaded table, no traffic, against one UPDATE of the same rows in the same run
declare -A PAR_MS=() PAR_TASK_MS=() PAR_PARTS=() PAR_SEEN=()
PAR_UPD_MS=''
# worker_sampler FILE: the number of expand_contract workers connected, every 0.5 s, until FILE.stop exists
worker_sampler() {
    while [[ ! -e $1.stop ]]; do
        q -c "SELECT bench.ec_workers()" >>"$1" 2>/dev/null || true
        sleep 0.5
    done
}
parallel_phase() {
    local n=$BENCH_ROWS_LARGE lab=$LAB_L w tmo settings samp pid
    title "7a. parallel backfill baseline, $lab rows: one UPDATE"
    reset_state
    load_table "$n"
    if sql backfill_update.sql; then
        PAR_UPD_MS=$(kv update_ms)
        say "UPDATE of $n rows: $PAR_UPD_MS ms"
    else
        anomaly "the baseline UPDATE of 7 failed at $lab rows"
    fi
    if [[ $HAS_WORKER != t || $HAS_CONFIGURE != t ]]; then
        say "no background worker or no ec_configure: no parallel backfill to measure"
        reset_state
        return 0
    fi
    tmo=$(backfill_timeout "$PAR_UPD_MS")
    for w in $BENCH_PARALLEL_WORKERS; do
        settings="{\"max_parallel_workers\": $w, \"nice_ratio\": 0, \"max_load\": 0}"
        title "7b. expand_contract, $lab rows, $w worker(s), no traffic (ec_configure $settings)"
        reset_state
        load_table "$n"
        samp=$work/workers_$w
        rm -f "$samp" "$samp.stop"
        run_bg worker_sampler "$samp"
        pid=$EC_LAST_PID
        sql backfill_ec.sql -v doc="$MIGRATION" -v configure=true -v settings="$settings" \
            -v timeout="$tmo" -v stall="$BENCH_STALL_TIMEOUT" || anomaly "ec_start or the wait for its backfill failed ($w workers)"
        touch "$samp.stop"
        wait "$pid" || true
        PAR_SEEN[$w]=$(sort -n "$samp" 2>/dev/null | tail -n1)
        PAR_PARTS[$w]=$(q -c "SELECT count(*) FROM expand_contract.tasks k JOIN expand_contract.migrations m ON m.id = k.migration_id WHERE m.name = 'v1' AND k.kind = 'backfill'") || PAR_PARTS[$w]=''
        say "backfill, $w worker(s): $(kv backfill_status) $(kv backfill_wall_ms) ms after the commit (first start to last finish of its ${PAR_PARTS[$w]} part(s): $(kv worker_ms) ms, $(kv batches) batches); at most ${PAR_SEEN[$w]:-?} workers seen at once"
        if [[ $(kv backfill_status) == "done" ]]; then
            PAR_MS[$w]=$(kv backfill_wall_ms)
            PAR_TASK_MS[$w]=$(kv worker_ms)
            mismatch_check "parallel backfill at $lab rows, $w workers"
        else
            anomaly "the backfill with $w workers ended as '$(kv backfill_status)' (states $(kv backfill_states))"
            task_diag v1
        fi
    done
    reset_state
}

# 8: what the table looks like after the migration: heap and indexes against the offline change
declare -A CMP_CHANGE=() CMP_COMPLETE=() CMP_VACUUM=() CMP_HEAP=() CMP_INDEX=()
compact_phase() {
    local n lab mode settings
    for n in "$BENCH_ROWS_SMALL" "$BENCH_ROWS_LARGE"; do
        [[ $n == "$BENCH_ROWS_SMALL" ]] && lab=$LAB_S || lab=$LAB_L
        for mode in offline ec_compact ec_plain; do
            case $mode in
                offline) settings='{}' ;;
                ec_compact) settings='{"nice_ratio": 0, "max_load": 0}' ;;
                ec_plain) settings='{"nice_ratio": 0, "max_load": 0, "compact": false}' ;;
            esac
            title "8. compaction, $lab rows: $mode"
            reset_state
            load_table "$n"
            if sql compact_run.sql -v mode="${mode%%_*}" -v settings="$settings"; then
                CMP_CHANGE[$lab.$mode]=$(kv change_ms)
                CMP_COMPLETE[$lab.$mode]=$(kv complete_ms)
                CMP_VACUUM[$lab.$mode]=$(kv vacuum_ms)
                CMP_HEAP[$lab.$mode]=$(kv heap_bytes)
                CMP_INDEX[$lab.$mode]=$(kv index_bytes)
                [[ $(kv mismatches) == 0 ]] || anomaly "compaction phase, $mode at $lab rows: $(kv mismatches) rows wrong"
                say "$mode: change $(kv change_ms) ms, vacuum $(kv vacuum_ms) ms, heap $(kv heap_bytes) B, indexes $(kv index_bytes) B"
            else
                anomaly "compaction phase, $mode at $lab rows failed"
            fi
        done
    done
    reset_state
}

# ---------------------------------------------------------------------------------------------------
# 6: the headline migration, integer -> bigint of a primary key that another table references

REBUILD_MIGRATION='{"operations":[{"alter_column":{"table":"accounts","column":"id","type":"bigint","up":"id","down":"id"}},{"alter_column":{"table":"transfers","column":"account_id","type":"bigint","up":"account_id","down":"account_id"}}]}'
# pgbench scripts in this order: the per-transaction logs name them by position (0, 1, 2)
REBUILD_SCRIPTS=(pgb_rebuild_select.sql@4 pgb_rebuild_update.sql@1 pgb_rebuild_insert.sql@1)
# Short runs, so that the clients stop soon after the migration, whose length is not known in advance;
# the few milliseconds of reconnection between runs cost the throughput well under 1%.
TRAFFIC_CHUNK_SECS=5

epoch_now() { date +%s.%6N; }

# traffic_loop NAME ACCOUNTS: pgbench runs of TRAFFIC_CHUNK_SECS through the old version, one after the
# other, until the file NAME.stop exists; each run's number and exit status go to NAME.chunks
traffic_loop() {
    local name=$1 accounts=$2 i=0 rc f args
    while [[ ! -e $work/$name.stop ]]; do
        i=$((i + 1))
        rc=0
        args=(-n -c "$BENCH_CLIENTS" -j "$BENCH_CLIENTS" -T "$TRAFFIC_CHUNK_SECS" -D accounts="$accounts"
              -M "$BENCH_PGBENCH_MODE" --log --log-prefix="$work/log/${name}_$i")
        for f in "${REBUILD_SCRIPTS[@]}"; do args+=(-f "$work/bench/$f"); done
        as_pg env PGOPTIONS="-c search_path=public" PGAPPNAME="bench_$name" "$bindir/pgbench" "${args[@]}" \
            >"$work/${name}_$i.out" 2>&1 || rc=$?
        echo "$i $rc" >>"$work/$name.chunks"
    done
}
# traffic_start NAME ACCOUNTS / traffic_stop: the clients in the background, until stopped
traffic_start() {
    TRAFFIC_NAME=$1
    rm -f "$work/$1.stop" "$work/$1.chunks"
    run_bg traffic_loop "$1" "$2"
    TRAFFIC_PID=$EC_LAST_PID
}
traffic_stop() {
    touch "$work/$TRAFFIC_NAME.stop"
    wait "$TRAFFIC_PID" || warn "the traffic loop $TRAFFIC_NAME exited with $?"
}
traffic_logs() { compgen -G "$work/log/$1_*" || true; }
# traffic_window NAME FROM TO: "tps p50 p99 max n failed max_at max_script" (latencies in ms) of the
# transactions that completed between FROM and TO (epoch seconds); max_at: when the slowest one
# completed, max_script: which script it ran (0 select, 1 update, 2 insert)
traffic_window() {
    local files
    files=$(traffic_logs "$1")
    if [[ -z $files ]]; then echo "null null null null 0 0 null null"; return; fi
    # shellcheck disable=SC2086
    cat $files | awk -v from="$2" -v to="$3" '
        { t = $5 + $6 / 1000000; if (t < from + 0 || t > to + 0) next
          if ($3 ~ /^[0-9]+$/) printf "%d %.6f %d\n", $3, t, $4; else failed++ }
        END { print failed + 0 > "/dev/stderr" }' 2>"$work/$1.wfailed" | sort -n -k1,1 | awk -v secs="$(awk -v a="$2" -v b="$3" 'BEGIN { print b - a }')" '
        { a[NR] = $1; at = $2; script = $3 }
        END {
            if (NR == 0 || secs <= 0) { printf "null null null null 0"; exit }
            i50 = int(0.50 * NR); if (i50 < 1) i50 = 1
            i99 = int(0.99 * NR + 0.999999); if (i99 > NR) i99 = NR
            printf "%.1f %.3f %.3f %.3f %d", NR / secs, a[i50] / 1000, a[i99] / 1000, a[NR] / 1000, NR
            printf " %s %s", at, script > "/dev/stderr"
        }' 2>"$work/$1.wmax"
    echo " $(cat "$work/$1.wfailed") $(cat "$work/$1.wmax")"
}

# worst_cause AT LATENCY_MS: what the migration was doing while the transaction that completed at AT
# (epoch seconds) waited: ec_start, ec_complete, or the worker's tasks that ran then (from M)
worst_cause() {
    local at=$1 lat=$2 begin what
    is_num "$at" && is_num "$lat" || return 0
    begin=$(awk -v a="$at" -v l="$lat" 'BEGIN { printf "%.6f\n", a - l / 1000 }')
    overlaps() { is_num "${2:-}" && is_num "${3:-}" && awk -v b="$begin" -v e="$at" -v s="$2" -v f="$3" 'BEGIN { exit !(b <= f + 0 && e >= s + 0) }'; }
    what=''
    overlaps x "${M[start_t0]:-}" "${M[start_t1]:-}" && what='ec_start; '
    overlaps x "${M[complete_t0]:-}" "${M[complete_t1]:-}" && what+='ec_complete; '
    what+=$(q -v b="$begin" -v e="$at" <<'SQL' 2>/dev/null || true
SELECT coalesce(string_agg(CASE WHEN k.kind = 'backfill' THEN 'backfill of ' || k.table_name
                                ELSE regexp_replace(k.sql, '^((\S+\s+){4}\S+).*$', '\1 ...') END, '; ' ORDER BY k.seq),
                'no worker task')
  FROM expand_contract.tasks k JOIN expand_contract.migrations m ON m.id = k.migration_id
 WHERE m.schema_name = 'public' AND m.name = 'v1'
   AND k.started_at <= to_timestamp(:e) AND coalesce(k.finished_at, 'infinity') >= to_timestamp(:b);
SQL
)
    printf '%s' "$what"
}
# traffic_committed NAME: "selects updates inserts" that the clients saw commit, over all their runs
traffic_committed() {
    local files
    files=$(traffic_logs "$1")
    if [[ -z $files ]]; then echo "0 0 0"; return; fi
    # shellcheck disable=SC2086
    cat $files | awk '$3 ~ /^[0-9]+$/ { c[$4]++ } END { printf "%d %d %d\n", c[0], c[1], c[2] }'
}
# traffic_errors NAME: failed transactions, aborted clients and failed runs, over all runs (each failed
# run's output is shown)
traffic_errors() {
    local name=$1 n=0 i rc out failed aborted
    [[ -f $work/$name.chunks ]] || { echo 1; return; }
    while read -r i rc; do
        out=$work/${name}_$i.out
        failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$out" | head -n1)
        aborted=$(grep -c 'aborted' "$out" || true)
        n=$((n + ${failed:-0} + aborted + (rc != 0)))
        if ((rc != 0)); then
            warn "pgbench run $i of $name exited with $rc:"
            sed 's/^/      /' "$out" >&2
        fi
    done <"$work/$name.chunks"
    echo "$n"
}

# watch_start APP: bench.watch_locks in the background, following the session named APP (it must
# connect within 60 s); watch_end WHAT ARRAY: waits for it, and puts WHAT_hold_ms (the longest span of
# ACCESS EXCLUSIVE on a table), WHAT_holds (how many spans), WHAT_hold_total_ms into ARRAY
watch_start() {
    WATCH_APP=$1
    run_bg q -c "CALL bench.watch_locks('$1', 60)" >"$work/watch_$1.out" 2>&1
    WATCH_PID=$EC_LAST_PID
    sleep 0.3
}
watch_end() {
    local -n dest=$2
    local hold holds total polls seen rc=0
    wait "$WATCH_PID" || rc=$?
    read -r hold holds total polls seen <"$work/watch_$WATCH_APP.out" || true
    if ((rc != 0)) || [[ $seen != t ]]; then
        anomaly "the lock watcher of $WATCH_APP failed (exit $rc, session seen: ${seen:-?}): $(tr '\n' ' ' <"$work/watch_$WATCH_APP.out")"
        return 0
    fi
    # shellcheck disable=SC2034  # dest is a name reference to the caller's array
    dest+=([$1_hold_ms]=$hold [$1_holds]=$holds [$1_hold_total_ms]=$total)
    say "lock watcher ($polls polls): $WATCH_APP held ACCESS EXCLUSIVE $holds time(s), the longest $hold ms, $total ms in all"
}

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

# rebuild_load ACCOUNTS TRANSFERS: fresh tables of 6; REBUILD_MB: their size with indexes
rebuild_load() {
    local t0
    t0=$(now_ms)
    sql rebuild_load.sql -v accounts="$1" -v transfers="$2" || fatal "loading $1 accounts and $2 transfers failed"
    ROWS_CUR=$1
    REBUILD_MB=$(q -c "SELECT round((pg_total_relation_size('public.accounts') + pg_total_relation_size('public.transfers')) / 1048576.0, 1)") || REBUILD_MB=''
    say "loaded $1 accounts and $2 transfers ($REBUILD_MB MB with indexes), vacuumed, analysed, checkpointed ($(( ($(now_ms) - t0) / 1000 ))s)"
}

declare -A RB_NT=() RB_MB=() RB_OFFLINE_MS=() RB_TOTAL_MS=() RB_TASKS_MS=() RB_START_MS=() RB_COMPLETE_MS=()
declare -A RB_START_LOCK=() RB_COMPLETE_LOCK=() RB_START_WORST=() RB_COMPLETE_WORST=()
declare -A RB_START_HOLD=() RB_START_HOLDS=() RB_COMPLETE_HOLD=() RB_COMPLETE_HOLDS=() RB_START_CALL=() RB_COMPLETE_CALL=()
declare -A RB_BASE_TPS=() RB_BASE_P99=() RB_BASE_MAX=() RB_MIG_TPS=() RB_MIG_P99=() RB_MIG_MAX=() RB_ERRORS=()
declare -A RB_TASK_BREAKDOWN=() RB_MIG_MAX_NOTE=()

# rebuild_size N LAB: 6 at N accounts
rebuild_size() {
    local n=$1 lab=$2 nt from to tps p50 p99 max cnt failed tmo stall errors configure=false settings='{}'
    local shape_offline shape_ec upd ins offline_s st k max_at max_script
    local -A M=() FB=() FA=()
    nt=$((n * BENCH_REBUILD_TRANSFERS))
    RB_NT[$lab]=$nt

    title "6a. int -> bigint, $lab accounts + $nt transfers: ${BENCH_MIXED_SECS}s of pgbench without a migration, then the offline ALTER TABLE ... TYPE bigint"
    reset_state
    rebuild_load "$n" "$nt"
    RB_MB[$lab]=$REBUILD_MB
    traffic_start "rb_base_$lab" "$n"
    sleep 1.5
    from=$(epoch_now)
    sleep "$BENCH_MIXED_SECS"
    to=$(epoch_now)
    traffic_stop
    read -r tps p50 p99 max cnt failed _ <<<"$(traffic_window "rb_base_$lab" "$from" "$to")"
    RB_BASE_TPS[$lab]=$tps; RB_BASE_P99[$lab]=$p99; RB_BASE_MAX[$lab]=$max
    errors=$(traffic_errors "rb_base_$lab")
    say "without a migration: tps $tps, p50 $p50 ms, p99 $p99 ms, max $max ms, $cnt transactions, client errors $errors"
    q -c "VACUUM (ANALYZE) public.accounts" -c "VACUUM (ANALYZE) public.transfers" -c "CHECKPOINT" >/dev/null || true
    if sql rebuild_offline.sql; then
        RB_OFFLINE_MS[$lab]=$(kv offline_ms)
        say "offline ALTER TABLE of both tables: $(kv offline_ms) ms (types now $(kv offline_types))"
        [[ $(kv offline_types) == bigint,bigint ]] || anomaly "the offline ALTER TABLE left the types $(kv offline_types) (bench bug)"
    else
        anomaly "the offline ALTER TABLE ... TYPE bigint failed at $lab accounts"
    fi
    shape_offline=$(q -c "SELECT x FROM bench.rebuild_shape() x ORDER BY x") || shape_offline=''

    title "6b. int -> bigint, $lab accounts + $nt transfers: expand_contract under the same pgbench (ec_start, the worker's tasks, ec_complete)"
    reset_state
    rebuild_load "$n" "$nt"
    tokens FB "$(q -c "SELECT bench.rebuild_fingerprint($nt)")"
    offline_s=$(awk -v m="${RB_OFFLINE_MS[$lab]:-0}" 'BEGIN { printf "%d\n", m / 1000 + 1 }')
    if [[ -n $BENCH_BACKFILL_TIMEOUT ]]; then tmo=$BENCH_BACKFILL_TIMEOUT
    else tmo=$(awk -v o="$offline_s" -v r="$((n + nt))" 'BEGIN { t = (o > 1 ? 20 * o : r / 5000); if (t < 300) t = 300; printf "%d\n", t }'); fi
    stall=$((3 * offline_s > BENCH_STALL_TIMEOUT ? 3 * offline_s : BENCH_STALL_TIMEOUT))
    [[ -n $BENCH_REBUILD_SETTINGS ]] && { configure=true; settings=$BENCH_REBUILD_SETTINGS; }
    traffic_start "rb_mig_$lab" "$n"
    sleep 1.5
    watch_start bench_ec_start
    sql rebuild_start.sql -v doc="$REBUILD_MIGRATION" -v configure="$configure" -v settings="$settings" ||
        anomaly "ec_start of the int -> bigint migration failed at $lab accounts"
    for k in "${!KV[@]}"; do M[$k]=${KV[$k]}; done
    watch_end start M
    if [[ -n ${M[start_t1]:-} ]]; then
        sql rebuild_wait.sql -v timeout="$tmo" -v stall="$stall" -v start_t1="${M[start_t1]}" ||
            anomaly "the wait for the int -> bigint migration's tasks failed at $lab accounts"
        for k in "${!KV[@]}"; do M[$k]=${KV[$k]}; done
    fi
    if [[ ${M[tasks_status]:-} == "done" ]]; then
        watch_start bench_ec_complete
        sql rebuild_complete.sql || anomaly "ec_complete of the int -> bigint migration failed at $lab accounts"
        for k in "${!KV[@]}"; do M[$k]=${KV[$k]}; done
        watch_end complete M
        is_num "${M[complete_t1]:-}" && M[total_ms]=$(awk -v a="${M[start_t0]}" -v b="${M[complete_t1]}" 'BEGIN { printf "%.1f\n", 1000 * (b - a) }')
    fi
    sleep 1
    traffic_stop

    say "ec_start: ${M[start_ms]:-?} ms BEGIN to COMMIT (the call ${M[start_call_ms]:-?} ms), ACCESS EXCLUSIVE held ${M[start_hold_ms]:-?} ms at most, strongest lock ${M[start_lock]:-?}"
    say "worker tasks ${M[tasks_status]:-?} ${M[tasks_wall_ms]:-?} ms after ec_start's commit"
    say "ec_complete: ${M[complete_ms]:-?} ms BEGIN to COMMIT (the call ${M[complete_call_ms]:-?} ms), ACCESS EXCLUSIVE held ${M[complete_hold_ms]:-?} ms at most, strongest lock ${M[complete_lock]:-?}; total ${M[total_ms]:-?} ms"
    say "worker tasks (ms): $(for k in backfill_accounts_ms backfill_transfers_ms index_builds_ms fk_add_ms validations_ms other_ms tasks worker_busy_ms; do printf '%s=%s ' "$k" "${M[$k]:-}"; done)"
    RB_START_MS[$lab]=${M[start_ms]:-}
    RB_START_CALL[$lab]=${M[start_call_ms]:-}
    RB_START_HOLD[$lab]=${M[start_hold_ms]:-}
    RB_START_HOLDS[$lab]=${M[start_holds]:-}
    RB_COMPLETE_CALL[$lab]=${M[complete_call_ms]:-}
    RB_COMPLETE_HOLD[$lab]=${M[complete_hold_ms]:-}
    RB_COMPLETE_HOLDS[$lab]=${M[complete_holds]:-}
    RB_START_LOCK[$lab]=${M[start_lock]:-}
    RB_TASKS_MS[$lab]=${M[tasks_wall_ms]:-}
    RB_COMPLETE_MS[$lab]=${M[complete_ms]:-}
    RB_COMPLETE_LOCK[$lab]=${M[complete_lock]:-}
    RB_TOTAL_MS[$lab]=${M[total_ms]:-}
    RB_TASK_BREAKDOWN[$lab]="backfill_accounts_ms=${M[backfill_accounts_ms]:-} backfill_transfers_ms=${M[backfill_transfers_ms]:-} index_builds_ms=${M[index_builds_ms]:-} fk_add_ms=${M[fk_add_ms]:-} validations_ms=${M[validations_ms]:-} worker_busy_ms=${M[worker_busy_ms]:-}"
    if [[ ${M[tasks_status]:-} != "done" ]]; then
        anomaly "int -> bigint at $lab accounts: the worker's tasks ended as '${M[tasks_status]:-?}' (states ${M[tasks_states]:-?}; timeout ${tmo}s, stall limit ${stall}s)"
        task_diag v1
    fi

    if is_num "${M[start_t0]:-}" && is_num "${M[start_t1]:-}"; then
        read -r _ _ _ max _ <<<"$(traffic_window "rb_mig_$lab" "${M[start_t0]}" "$(awk -v t="${M[start_t1]}" 'BEGIN { printf "%.6f\n", t + 0.25 }')")"
        RB_START_WORST[$lab]=$max
    fi
    if is_num "${M[complete_t0]:-}" && is_num "${M[complete_t1]:-}"; then
        read -r _ _ _ max _ <<<"$(traffic_window "rb_mig_$lab" "${M[complete_t0]}" "$(awk -v t="${M[complete_t1]}" 'BEGIN { printf "%.6f\n", t + 0.25 }')")"
        RB_COMPLETE_WORST[$lab]=$max
        # to 0.25 s after ec_complete's commit: the transactions its lock held back complete just after it
        read -r tps p50 p99 max cnt failed max_at max_script <<<"$(traffic_window "rb_mig_$lab" "${M[start_t0]}" "$(awk -v t="${M[complete_t1]}" 'BEGIN { printf "%.6f\n", t + 0.25 }')")"
        RB_MIG_TPS[$lab]=$tps; RB_MIG_P99[$lab]=$p99; RB_MIG_MAX[$lab]=$max
        RB_MIG_MAX_NOTE[$lab]=''
        if is_num "$max_at"; then
            RB_MIG_MAX_NOTE[$lab]="$(case $max_script in 0) echo 'a select' ;; 1) echo 'an update' ;; 2) echo 'an insert' ;; *) echo 'a transaction' ;; esac) at +$(awk -v a="$max_at" -v b="${M[start_t0]}" 'BEGIN { printf "%.1f", a - b }') s, during: $(worst_cause "$max_at" "$max")"
        fi
        say "during the migration: tps $tps, p50 $p50 ms, p99 $p99 ms, max $max ms ($cnt transactions; the slowest ${RB_MIG_MAX_NOTE[$lab]}); worst latency during ec_start ${RB_START_WORST[$lab]:-?} ms, during ec_complete ${RB_COMPLETE_WORST[$lab]} ms"
    fi
    errors=$((errors + $(traffic_errors "rb_mig_$lab")))
    RB_ERRORS[$lab]=$errors
    ((errors == 0)) || anomaly "client errors during the int -> bigint traffic at $lab accounts: $errors"

    if [[ -n ${M[complete_ms]:-} ]]; then
        shape_ec=$(q -c "SELECT x FROM bench.rebuild_shape() x ORDER BY x") || shape_ec=''
        if [[ -z $shape_offline || $shape_ec != "$shape_offline" ]]; then
            anomaly "int -> bigint at $lab accounts: the catalog after ec_complete differs from the offline ALTER TABLE's (< offline, > expand_contract)"
            diff <(printf '%s\n' "$shape_offline") <(printf '%s\n' "$shape_ec") | sed 's/^/      /' >&2 || true
        else
            say "check: constraints, indexes, columns, relations and triggers equal the offline copy's ($(wc -l <<<"$shape_ec") lines)"
        fi
        read -r _ upd ins <<<"$(traffic_committed "rb_mig_$lab")"
        tokens FA "$(q -c "SELECT bench.rebuild_fingerprint($nt)")"
        st=ok
        [[ ${FA[accounts]:-} == "${FB[accounts]:-x}" && ${FA[account_ids]:-} == "${FB[account_ids]:-x}" ]] || st="accounts or their ids changed (${FB[accounts]:-?}/${FB[account_ids]:-?} -> ${FA[accounts]:-?}/${FA[account_ids]:-?})"
        [[ ${FA[balances]:-} == "$(( ${FB[balances]:-0} + upd ))" ]] || st="sum of balances ${FA[balances]:-?}, expected ${FB[balances]:-?} + $upd committed updates"
        [[ ${FA[transfers]:-} == "$(( ${FB[transfers]:-0} + ins ))" ]] || st="${FA[transfers]:-?} transfers, expected ${FB[transfers]:-?} + $ins committed inserts"
        [[ ${FA[transfer_accounts]:-} == "${FB[transfer_accounts]:-x}" ]] || st="the loaded transfers' account_id changed (sum ${FB[transfer_accounts]:-?} -> ${FA[transfer_accounts]:-?})"
        [[ ${FA[orphans]:-} == 0 ]] || st="${FA[orphans]:-?} transfers without their account"
        if [[ $st == ok ]]; then
            say "check: ${FA[accounts]} accounts with the same ids, ${FA[transfers]} transfers (${FB[transfers]} + $ins inserted), balances + $upd updates, loaded transfers' accounts unchanged, no orphan"
        else
            anomaly "int -> bigint at $lab accounts: $st"
        fi
    fi
}

rebuild_phase() {
    rebuild_size "$BENCH_ROWS_SMALL" "$LAB_S"
    rebuild_size "$BENCH_ROWS_LARGE" "$LAB_L"
    reset_state
}

# ---------------------------------------------------------------------------------------------------

phase_on backfill && backfill_phase
phase_on writes && writes_phase
phase_on mixed && mixed_phase
phase_on rebuild && rebuild_phase
phase_on parallel && parallel_phase
phase_on compact && compact_phase

title "results"
T_TOTAL=$(( ($(now_ms) - T_BEGIN) / 1000 ))

if phase_on backfill; then
    for lab in "$LAB_S" "$LAB_L"; do
        section "1. backfill, $lab rows (baseline: one UPDATE)"
        put "backfill_${lab}_update_ms" "$(median "${UPD_MS[$lab]:-}")"
        if [[ $HAS_WORKER == t ]]; then
            # issue 11's target at the small size, issue 10's at the large one
            lim=1.15
            [[ $lab == "$LAB_S" ]] && lim=1.00
            cmp "backfill_${lab}_ec_vs_update" "expand_contract: ec_start commit -> backfill seen done" "${EC_MS[$lab]:-}" " ms" "${UPD_MS[$lab]:-}" "<=" "$lim"
            cmp "backfill_${lab}_ec_worker_vs_update" "expand_contract: task started_at -> finished_at" "${EC_WORKER_MS[$lab]:-}" " ms" "${UPD_MS[$lab]:-}" "<=" "$lim"
            put "backfill_${lab}_ec_launch_ms" "$(median "${EC_LAUNCH_MS[$lab]:-}")"
            if [[ $lab == "$LAB_S" ]]; then
                for b in $BENCH_EC_BATCHES; do
                    cmp "backfill_${lab}_ec_batch${b}_vs_update" "expand_contract, batch_size $b (once)" "${EC_BATCH_MS[$b]:-}" " ms" "${UPD_MS[$lab]:-}"
                done
            fi
        else
            cmp "backfill_${lab}_ec_inline_complete_vs_update" "expand_contract, no worker: ec_complete with the fill" "${EC_INLINE_MS[$lab]:-}" " ms" "${UPD_MS[$lab]:-}"
        fi
        cmp "backfill_${lab}_pgroll_vs_update" "pgroll-style: PL/pgSQL trigger, 1,000-id batches" "${PGROLL_MS[$lab]:-}" " ms" "${UPD_MS[$lab]:-}"
        if [[ $HAS_WORKER == t ]]; then
            cmp "backfill_${lab}_ec_vs_pgroll" "expand_contract against pgroll-style" "${EC_MS[$lab]:-}" " ms" "${PGROLL_MS[$lab]:-}" "<=" 0.8
            cmp "backfill_${lab}_ec_size_vs_update" "table size after: expand_contract" "${EC_MB[$lab]:-}" " MB" "${UPD_MB[$lab]:-}"
        fi
        cmp "backfill_${lab}_pgroll_size_vs_update" "table size after: pgroll-style" "${PGROLL_MB[$lab]:-}" " MB" "${UPD_MB[$lab]:-}"
        [[ $lab == "$LAB_S" ]] || continue
        # backfill_rows KEY UPD EC: the small size's other measurements (backfill_pair), against the
        # UPDATE in the same configuration: backfill_1m_${UPD}update_ms, backfill_1m_${EC}vs_update,
        # backfill_1m_${EC}worker_vs_update, backfill_1m_${EC}launch_ms, suffixed _fast for the fast server
        backfill_rows() {
            local key=$1 upd=$2 ec=$3 sfx=''
            [[ $key == *fast ]] && sfx=_fast
            put "backfill_${LAB_S}_${upd}update_ms$sfx" "$(median "${UPD_MS[$key]:-}")"
            [[ $HAS_WORKER == t ]] || return 0
            cmp "backfill_${LAB_S}_${ec}vs_update$sfx" "expand_contract: ec_start commit -> backfill seen done" "${EC_MS[$key]:-}" " ms" "${UPD_MS[$key]:-}" "<=" 1.00
            cmp "backfill_${LAB_S}_${ec}worker_vs_update$sfx" "expand_contract: task started_at -> finished_at" "${EC_WORKER_MS[$key]:-}" " ms" "${UPD_MS[$key]:-}" "<=" 1.00
            put "backfill_${LAB_S}_${ec}launch_ms$sfx" "$(median "${EC_LAUNCH_MS[$key]:-}")"
        }
        if [[ $BENCH_FAST == 1 ]]; then
            section "1. backfill, $lab rows, fast server: fsync, synchronous_commit, full_page_writes off (baseline: one UPDATE, same server)"
            backfill_rows "$lab fast" "" ec_
            cmp "backfill_${lab}_update_fast_vs_durable" "the UPDATE itself: fast server against durable" "${UPD_MS[$lab fast]:-}" " ms" "${UPD_MS[$lab]:-}"
        fi
        section "1. backfill of issue 11's text -> bigint, t(id bigint primary key, a text not null, b text), $lab rows (baseline: UPDATE t SET a2 = CAST(a AS bigint))"
        backfill_rows "$lab text_bigint" text_bigint_ text_bigint_
        if [[ $BENCH_FAST == 1 ]]; then
            section "1. the same text -> bigint, $lab rows, fast server (baseline: the UPDATE on the fast server)"
            backfill_rows "$lab text_bigint fast" text_bigint_ text_bigint_
        fi
    done
fi

if phase_on writes; then
    section "2. writes, $LAB_S rows (baseline: no trigger, no extra column)"
    put "insert_bulk_${LAB_S}_plain_ms" "$(median "${INS_MS[plain]:-}")"
    cmp "insert_bulk_${LAB_S}_extra_column_vs_plain" "INSERT..SELECT, extra column, no trigger" "${INS_MS[extra_column]:-}" " ms" "${INS_MS[plain]:-}"
    cmp "insert_bulk_${LAB_S}_ec_trigger_vs_plain" "INSERT..SELECT, expand_contract C trigger" "${INS_MS[ec]:-}" " ms" "${INS_MS[plain]:-}" "<=" 1.25
    cmp "insert_bulk_${LAB_S}_plpgsql_trigger_vs_plain" "INSERT..SELECT, PL/pgSQL trigger" "${INS_MS[plpgsql]:-}" " ms" "${INS_MS[plain]:-}"
    cmp "insert_bulk_${LAB_S}_ec_subquery_vs_plain" "INSERT..SELECT, C trigger, up with a subquery (SPI)" "${INS_MS[ec_subquery]:-}" " ms" "${INS_MS[plain]:-}"
    cmp "insert_bulk_${LAB_S}_plpgsql_subquery_vs_plain" "INSERT..SELECT, PL/pgSQL trigger, up with a subquery" "${INS_MS[plpgsql_subquery]:-}" " ms" "${INS_MS[plain]:-}"
    cmp "insert_bulk_${LAB_S}_ec_subquery_vs_ec" "INSERT..SELECT, C trigger: subquery (SPI) against compiled" "${INS_MS[ec_subquery]:-}" " ms" "${INS_MS[ec]:-}"
    cmp "insert_bulk_${LAB_S}_ec_subquery_vs_plpgsql_subquery" "INSERT..SELECT, subquery up: C trigger against PL/pgSQL" "${INS_MS[ec_subquery]:-}" " ms" "${INS_MS[plpgsql_subquery]:-}"
    put "insert_single_plain_tps" "$(median "${INS_TPS[plain]:-}")"
    cmp "insert_single_extra_column_tps_vs_plain" "single-row INSERTs (tps), extra column, no trigger" "${INS_TPS[extra_column]:-}" "" "${INS_TPS[plain]:-}"
    cmp "insert_single_ec_trigger_tps_vs_plain" "single-row INSERTs (tps), expand_contract C trigger" "${INS_TPS[ec]:-}" "" "${INS_TPS[plain]:-}"
    cmp "insert_single_plpgsql_trigger_tps_vs_plain" "single-row INSERTs (tps), PL/pgSQL trigger" "${INS_TPS[plpgsql]:-}" "" "${INS_TPS[plain]:-}"
    cmp "insert_single_ec_subquery_tps_vs_plain" "single-row INSERTs (tps), C trigger, up with a subquery" "${INS_TPS[ec_subquery]:-}" "" "${INS_TPS[plain]:-}"
    cmp "insert_single_ec_subquery_tps_vs_ec" "single-row INSERTs (tps): subquery (SPI) against compiled" "${INS_TPS[ec_subquery]:-}" "" "${INS_TPS[ec]:-}"
fi

# lock_rows OP SMALL_MS LARGE_MS PROBE_SMALL PROBE_LARGE
lock_rows() {
    local op=$1 ms_s=$2 ms_l=$3 pr_s=$4 pr_l=$5
    put "lock_ec_${op}_${LAB_S}_ms" "$ms_s"
    put "lock_ec_${op}_${LAB_L}_ms" "$ms_l"
    info "ec_$op, $LAB_S rows" "$(fmt "$ms_s" " ms")" "<= 100 ms" "$(meets "$ms_s" "<=" 100)"
    info "ec_$op, $LAB_L rows" "$(fmt "$ms_l" " ms")" "<= 100 ms" "$(meets "$ms_l" "<=" 100)"
    cmp "lock_ec_${op}_${LAB_L}_vs_${LAB_S}" "ec_$op, $LAB_L rows against $LAB_S rows" "$ms_l" " ms" "$ms_s"
    put "probe_select_max_ms_ec_${op}_${LAB_S}" "$pr_s"
    put "probe_select_max_ms_ec_${op}_${LAB_L}" "$pr_l"
    info "worst concurrent select, ec_$op rolled back, $LAB_S / $LAB_L" "$(fmt "$pr_s" " ms") / $(fmt "$pr_l" " ms")"
}

if phase_on backfill; then
    section "3. reads by pk, $LAB_S rows (baseline: public.t)"
    put "read_pk_base_tps" "$(median "$READ_BASE_TPS")"
    cmp "read_pk_view_tps_vs_base" "select by pk through public_v1.t (tps, $BENCH_PGBENCH_MODE protocol)" "$READ_VIEW_TPS" "" "$READ_BASE_TPS"
    if [[ $BENCH_PGBENCH_MODE != prepared ]]; then
        put "read_pk_base_prepared_tps" "$(median "$READ_BASE_PREP_TPS")"
        cmp "read_pk_view_prepared_tps_vs_base" "the same with prepared statements" "$READ_VIEW_PREP_TPS" "" "$READ_BASE_PREP_TPS"
    fi

    section "4. lock hold: ACCESS EXCLUSIVE for the whole call (baseline: the $LAB_S-row table)"
    lock_rows start "${START_MS[$LAB_S]:-}" "${START_MS[$LAB_L]:-}" "${PROBE_START[$LAB_S]:-}" "${PROBE_START[$LAB_L]:-}"
    lock_rows complete "${COMPLETE_MS[$LAB_S]:-}" "${COMPLETE_MS[$LAB_L]:-}" "${PROBE_COMPLETE[$LAB_S]:-}" "${PROBE_COMPLETE[$LAB_L]:-}"
fi

if phase_on mixed; then
    section "5. selects+updates (4:1), $BENCH_CLIENTS clients, running for the whole of a $LAB_L-row backfill (baselines: the same mix, no migration, ${BENCH_MIXED_SECS}s: just before ec_start, and 5a)"
    put "mixed_idle_tps" "$MIX_IDLE_TPS"
    put "mixed_idle_p99_ms" "$MIX_IDLE_P99"
    info "no migration: throughput / p99 latency" "$(fmt "$MIX_IDLE_TPS") / $(fmt "$MIX_IDLE_P99" " ms")"
    if [[ $HAS_PAUSE == t ]]; then
        cmp "mixed_trigger_only_${LAB_L}_tps_vs_idle" "throughput, migration started, backfill paused" "$MIX_TRIG_TPS" "" "$MIX_IDLE_TPS"
        cmp "mixed_trigger_only_${LAB_L}_p99_vs_idle" "p99 latency, migration started, backfill paused" "$MIX_TRIG_P99" " ms" "$MIX_IDLE_P99"
    fi
    mix_errors=$(( ${MIX_IDLE_ERR:-0} + ${MIX_TRIG_ERR:-0} ))
    for key in "${MIX_KEYS[@]}"; do
        # the default settings keep the historical key names (mixed_backfill_10m_tps_vs_idle, ...)
        if [[ $key == default ]]; then kp=mixed_backfill_${LAB_L}; op_t=">="; op_p="<="; else kp=mixed_backfill_${LAB_L}_$key; op_t=''; op_p=''; fi
        lbl=${MIX_LABEL[$key]}
        [[ $key == default ]] && lbl="DEFAULT settings"
        cmp "${kp}_tps_vs_before" "$lbl: throughput kept (against the ${BENCH_MIXED_SECS}s before)" "${MIX_TPS[$key]:-}" "" "${MIX_PRE_TPS[$key]:-}" $op_t ${op_t:+0.8}
        cmp "${kp}_p99_vs_before" "  p99 latency" "${MIX_P99[$key]:-}" " ms" "${MIX_PRE_P99[$key]:-}" $op_p ${op_p:+2}
        cmp "${kp}_tps_vs_idle" "  throughput kept against 5a's" "${MIX_TPS[$key]:-}" "" "$MIX_IDLE_TPS"
        cmp "${kp}_p99_vs_idle" "  p99 latency against 5a's" "${MIX_P99[$key]:-}" " ms" "$MIX_IDLE_P99"
        put "${kp}_max_ms" "${MIX_MAX[$key]:-}"
        put "${kp}_errors" "${MIX_ERR[$key]:-}"
        info "  client errors" "$(fmt "${MIX_ERR[$key]:-}")" "== 0" "$(meets "${MIX_ERR[$key]:-}" "==" 0)"
        is_num "${MIX_ERR[$key]:-}" && mix_errors=$((mix_errors + MIX_ERR[$key]))
        put "${kp}_backfill_s" "${MIX_BF_S[$key]:-}"
        put "${kp}_batches" "${MIX_BATCHES[$key]:-}"
        if [[ $key == unthrottled ]]; then
            info "  backfill under traffic: ec_start commit -> done" "$(fmt "${MIX_BF_S[$key]:-}" " s")" "" "" "$(fmt "${MIX_BATCHES[$key]:-}") batches"
        else
            cmp "${kp}_time_vs_unthrottled" "  backfill under traffic, against unthrottled's" "${MIX_BF_S[$key]:-}" " s" "${MIX_BF_S[unthrottled]:-}" "<=" 2
            TABLE[-1]+="$(fmt "${MIX_BATCHES[$key]:-}") batches"
        fi
    done
    put "mixed_errors" "$mix_errors"
fi

if phase_on parallel; then
    section "7. parallel backfill, $LAB_L rows, no traffic, nice_ratio 0 and max_load 0, $(nproc 2>/dev/null || echo '?') CPUs (baselines: one UPDATE; 1 worker)"
    put "parallel_${LAB_L}_update_ms" "$PAR_UPD_MS"
    info "one UPDATE t SET amount = cents / 100.0" "$(fmt "$PAR_UPD_MS" " ms")"
    w1=${BENCH_PARALLEL_WORKERS%% *}
    for w in $BENCH_PARALLEL_WORKERS; do
        put "parallel_${LAB_L}_w${w}_ms" "${PAR_MS[$w]:-}"
        put "parallel_${LAB_L}_w${w}_task_ms" "${PAR_TASK_MS[$w]:-}"
        put "parallel_${LAB_L}_w${w}_parts" "${PAR_PARTS[$w]:-}"
        put "parallel_${LAB_L}_w${w}_workers_seen" "${PAR_SEEN[$w]:-}"
        cmp "parallel_${LAB_L}_w${w}_vs_update" "$w worker(s): ec_start commit -> backfill done" "${PAR_MS[$w]:-}" " ms" "$PAR_UPD_MS"
        TABLE[-1]+="${PAR_PARTS[$w]:-?} parts, at most ${PAR_SEEN[$w]:-?} workers seen at once"
        if [[ $w != "$w1" ]]; then
            # value / baseline = the first count's time / this one's: the speed-up
            cmp "parallel_${LAB_L}_w${w}_speedup_vs_w${w1}" "  speed-up: $w1 worker(s)' time / ${w}'s" "${PAR_MS[$w1]:-}" " ms" "${PAR_MS[$w]:-}"
        fi
    done
fi

if phase_on compact; then
    section "8. after the migration (cents int -> bigint, complete, VACUUM): the table against the offline ALTER TABLE; time with and without compaction"
    for lab in "$LAB_S" "$LAB_L"; do
        cmp "compact_${lab}_heap_vs_offline" "$lab: heap, compact on" "${CMP_HEAP[$lab.ec_compact]:-}" " B" "${CMP_HEAP[$lab.offline]:-}" "<=" 1.2
        cmp "compact_${lab}_index_vs_offline" "$lab: indexes, compact on" "${CMP_INDEX[$lab.ec_compact]:-}" " B" "${CMP_INDEX[$lab.offline]:-}" "<=" 1.1
        cmp "compact_${lab}_plain_heap_vs_offline" "$lab: heap, compact off" "${CMP_HEAP[$lab.ec_plain]:-}" " B" "${CMP_HEAP[$lab.offline]:-}"
        cmp "compact_${lab}_plain_index_vs_offline" "$lab: indexes, compact off" "${CMP_INDEX[$lab.ec_plain]:-}" " B" "${CMP_INDEX[$lab.offline]:-}"
        cmp "compact_${lab}_time_vs_plain" "$lab: start -> ec_wait done, compact on vs off" "${CMP_CHANGE[$lab.ec_compact]:-}" " ms" "${CMP_CHANGE[$lab.ec_plain]:-}"
        plain_total=''
        if is_num "${CMP_CHANGE[$lab.ec_plain]:-}" && is_num "${CMP_VACUUM[$lab.ec_plain]:-}"; then
            plain_total=$(awk -v a="${CMP_CHANGE[$lab.ec_plain]}" -v b="${CMP_VACUUM[$lab.ec_plain]}" 'BEGIN { printf "%.1f", a + b }')
        fi
        cmp "compact_${lab}_time_vs_plain_and_vacuum" "$lab: compact on vs off plus the VACUUM it needs" "${CMP_CHANGE[$lab.ec_compact]:-}" " ms" "$plain_total"
    done
fi

# lock_mode LOCK: of "AccessExclusiveLock:accounts,transfers", the mode
lock_mode() { printf '%s' "${1%%:*}"; }
# lock_note LOCK HOLDS: which lock, and how many times it was taken (a lock attempt that timed out
# and was retried holds it once more)
lock_note() {
    [[ $1 == *:* ]] && printf 'strongest: %s on %s' "${1%%:*}" "${1#*:}"
    if is_num "${2:-}" && ((${2%.*} > 1)); then
        printf '; held %s times: %s attempt(s) timed out after expand_contract.lock_timeout (%s ms) and were retried' \
            "$2" "$(($2 - 1))" "${LOCK_TIMEOUT_MS:-?}"
    fi
    return 0
}

# rebuild_lock_rows OP LAB HOLD_MS HOLDS LOCK CALL_MS BEGIN_TO_COMMIT_MS: ec_OP's rows of 6
rebuild_lock_rows() {
    local op=$1 lab=$2 hold=$3 holds=$4 lock=$5 call=$6 ms=$7 note=''
    put "rebuild_${lab}_${op}_hold_ms" "$hold"
    put "rebuild_${lab}_${op}_holds" "$holds"
    put_raw "rebuild_${lab}_${op}_lock" "\"$(lock_mode "$lock")\""
    info "ec_$op: ACCESS EXCLUSIVE held, longest span (lock watcher)" "$(fmt "$hold" " ms")" "<= 100 ms" \
        "$(meets "$hold" "<=" 100)" "$(lock_note "$lock" "$holds")"
    put "rebuild_${lab}_${op}_call_ms" "$call"
    put "rebuild_${lab}_${op}_ms" "$ms"
    [[ $op == complete ]] && note="COMMIT removes the dropped indexes' files after releasing the locks"
    info "  ec_$op: the call / BEGIN to COMMIT" "$(fmt "$call") / $(fmt "$ms" " ms")" "" "" "$note"
}

if phase_on rebuild; then
    for lab in "$LAB_S" "$LAB_L"; do
        section "6. int -> bigint of accounts.id (primary key, referenced) and transfers.account_id, $lab accounts + ${RB_NT[$lab]:-?} transfers (${RB_MB[$lab]:-?} MB), $BENCH_CLIENTS clients (baselines: offline ALTER TABLE, pgbench without a migration)"
        put "rebuild_${lab}_transfers" "${RB_NT[$lab]:-}"
        put "rebuild_${lab}_offline_ms" "${RB_OFFLINE_MS[$lab]:-}"
        info "offline ALTER TABLE ... TYPE bigint of both: the downtime replaced" "$(fmt "${RB_OFFLINE_MS[$lab]:-}" " ms")"
        put "rebuild_${lab}_total_ms" "${RB_TOTAL_MS[$lab]:-}"
        cmp "rebuild_${lab}_total_vs_offline" "online: ec_start -> worker's tasks done -> ec_complete" "${RB_TOTAL_MS[$lab]:-}" " ms" "${RB_OFFLINE_MS[$lab]:-}"
        put "rebuild_${lab}_tasks_ms" "${RB_TASKS_MS[$lab]:-}"
        info "  of which ec_start's commit -> every worker task done" "$(fmt "${RB_TASKS_MS[$lab]:-}" " ms")"
        declare -A TB=()
        tokens TB "${RB_TASK_BREAKDOWN[$lab]:-}"
        for k in backfill_accounts backfill_transfers index_builds fk_add validations; do
            put "rebuild_${lab}_task_${k}_ms" "${TB[${k}_ms]:-}"
        done
        info "  worker: backfills accounts / transfers" "$(fmt "${TB[backfill_accounts_ms]:-}") / $(fmt "${TB[backfill_transfers_ms]:-}" " ms")"
        info "  worker: index builds / FK add / validations" "$(fmt "${TB[index_builds_ms]:-}") / $(fmt "${TB[fk_add_ms]:-}") / $(fmt "${TB[validations_ms]:-}" " ms")"
        unset TB
        rebuild_lock_rows start "$lab" "${RB_START_HOLD[$lab]:-}" "${RB_START_HOLDS[$lab]:-}" "${RB_START_LOCK[$lab]:-}" \
            "${RB_START_CALL[$lab]:-}" "${RB_START_MS[$lab]:-}"
        rebuild_lock_rows complete "$lab" "${RB_COMPLETE_HOLD[$lab]:-}" "${RB_COMPLETE_HOLDS[$lab]:-}" \
            "${RB_COMPLETE_LOCK[$lab]:-}" "${RB_COMPLETE_CALL[$lab]:-}" "${RB_COMPLETE_MS[$lab]:-}"
        put "rebuild_${lab}_start_worst_client_ms" "${RB_START_WORST[$lab]:-}"
        put "rebuild_${lab}_complete_worst_client_ms" "${RB_COMPLETE_WORST[$lab]:-}"
        info "worst client latency during ec_start / ec_complete" "$(fmt "${RB_START_WORST[$lab]:-}") / $(fmt "${RB_COMPLETE_WORST[$lab]:-}" " ms")"
        put "rebuild_${lab}_idle_tps" "${RB_BASE_TPS[$lab]:-}"
        cmp "rebuild_${lab}_tps_vs_idle" "throughput during the migration (tps)" "${RB_MIG_TPS[$lab]:-}" "" "${RB_BASE_TPS[$lab]:-}" ">=" 0.8
        cmp "rebuild_${lab}_p99_vs_idle" "p99 latency during the migration" "${RB_MIG_P99[$lab]:-}" " ms" "${RB_BASE_P99[$lab]:-}" "<=" 2
        cmp "rebuild_${lab}_max_vs_idle" "worst latency during the migration" "${RB_MIG_MAX[$lab]:-}" " ms" "${RB_BASE_MAX[$lab]:-}"
        if [[ -n ${RB_MIG_MAX_NOTE[$lab]:-} ]]; then info "  the slowest transaction" "" "" "" "${RB_MIG_MAX_NOTE[$lab]}"; fi
        put "rebuild_${lab}_errors" "${RB_ERRORS[$lab]:-}"
        info "client errors (both runs)" "$(fmt "${RB_ERRORS[$lab]:-}")" "== 0" "$(meets "${RB_ERRORS[$lab]:-}" "==" 0)"
    done
    section "6. int -> bigint: ACCESS EXCLUSIVE held at $LAB_L against $LAB_S accounts (flat as the tables grow)"
    cmp "rebuild_start_hold_${LAB_L}_vs_${LAB_S}" "ec_start" "${RB_START_HOLD[$LAB_L]:-}" " ms" "${RB_START_HOLD[$LAB_S]:-}"
    cmp "rebuild_complete_hold_${LAB_L}_vs_${LAB_S}" "ec_complete" "${RB_COMPLETE_HOLD[$LAB_L]:-}" " ms" "${RB_COMPLETE_HOLD[$LAB_S]:-}"
fi

put anomalies "${#ANOMALIES[@]}"
put load_avg_end "$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo null)"
put runtime_s "$T_TOTAL"

misses=0
printf '\n  %-58s %15s %15s %7s %10s %-5s %s\n' "measurement" "value" "baseline" "ratio" "target" "" "rounds"
for line in "${TABLE[@]}"; do
    if [[ $line == \#* ]]; then
        printf '\n%s\n' "${line#\#}"
        continue
    fi
    IFS='|' read -r label value base r target verdict note <<<"$line"
    [[ $verdict == MISS ]] && misses=$((misses + 1))
    printf '  %-58s %15s %15s %7s %10s %-5s %s\n' "$label" "$value" "$base" "${r:--}" "$target" "$verdict" "$note"
done
echo
if ((${#ANOMALIES[@]})); then
    echo "anomalies:"
    printf '  - %s\n' "${ANOMALIES[@]}"
fi
echo "runtime: ${T_TOTAL}s; targets missed: $misses; anomalies: ${#ANOMALIES[@]}; load average before/after: $LOAD_START / ${JSON_VAL[load_avg_end]}"

json="{"
sep=""
for k in "${JSON_KEYS[@]}"; do
    json+="$sep\"$k\": ${JSON_VAL[$k]}"
    sep=", "
done
json+="}"
printf '%s\n' "$json" >"$work/results.json"
if [[ -n $BENCH_OUT ]]; then printf '%s\n' "$json" >"$BENCH_OUT"; fi
echo "results: $work/results.json (removed on exit unless EC_KEEP_TMP=1)${BENCH_OUT:+, copied to $BENCH_OUT}"
echo "BENCH $json"
# Missed targets are results; anomalies (failures, wrong rows, stalled or failed backfills) are errors.
((${#ANOMALIES[@]} == 0)) || exit 2
