# shellcheck shell=bash
# shellcheck disable=SC2034,SC2154  # sourced by scripts/bench.sh, which defines work and uses the globals
# scripts/bench_clients.sh: the clients of scripts/bench.sh: pgbench runs and their latencies, the lock
# probe, background traffic measured by time window, the lock watcher.  Sourced by bench.sh.

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
    pgbench_as "$path" "bench_$name" "${args[@]}" >"$out" 2>&1 || rc=$?
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
    run_bg pgbench_as public "bench_$PROBE_NAME" -n -c 1 -j 1 -T 4 -R "$BENCH_PROBE_RATE" \
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

# Background traffic runs as back-to-back pgbench runs of TRAFFIC_CHUNK_SECS, so that it can be stopped
# when a migration ends, whose length is not known in advance; the few milliseconds of reconnection
# between runs cost the throughput well under 1%.  Figures come from the per-transaction logs.
TRAFFIC_CHUNK_SECS=5
# traffic_loop NAME DEFINE SCRIPT@WEIGHT...: pgbench runs through the old version (pgbench -D DEFINE),
# until the file NAME.stop exists; each run's number and exit status go to NAME.chunks
traffic_loop() {
    local name=$1 define=$2 i=0 rc f args
    shift 2
    while [[ ! -e $work/$name.stop ]]; do
        i=$((i + 1))
        rc=0
        args=(-n -c "$BENCH_CLIENTS" -j "$BENCH_CLIENTS" -T "$TRAFFIC_CHUNK_SECS" -D "$define"
              -M "$BENCH_PGBENCH_MODE" --log --log-prefix="$work/log/${name}_$i")
        for f; do args+=(-f "$work/bench/$f"); done
        pgbench_as public "bench_$name" "${args[@]}" >"$work/${name}_$i.out" 2>&1 || rc=$?
        echo "$i $rc" >>"$work/$name.chunks"
    done
}
# traffic_start NAME DEFINE SCRIPT@WEIGHT... / traffic_stop: the clients in the background, until
# stopped; returns once they run
traffic_start() {
    TRAFFIC_NAME=$1
    rm -f "$work/$1.stop" "$work/$1.chunks"
    run_bg traffic_loop "$@"
    TRAFFIC_PID=$EC_LAST_PID
    sleep 1.5
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
    what+=$(qv -v b="$begin" -v e="$at" <<'SQL' 2>/dev/null || true
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
    run_bg qv -c "CALL bench.watch_locks('$1', 60)" >"$work/watch_$1.out" 2>&1
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

# window NAME FROM TO: W_TPS W_P50 W_P99 W_MAX W_N of NAME's transactions completed between FROM and TO
# (epoch seconds), W_ERRORS over all of NAME's runs
window() {
    read -r W_TPS W_P50 W_P99 W_MAX W_N _ <<<"$(traffic_window "$1" "$2" "$3")"
    W_ERRORS=$(traffic_errors "$1")
    say "$1: tps $W_TPS, p50 $W_P50 ms, p99 $W_P99 ms, max $W_MAX ms, $W_N transactions in $(awk -v a="$2" -v b="$3" 'BEGIN { printf "%.1f", b - a }') s; client errors $W_ERRORS"
}

# worker_sampler FILE: the number of expand_contract workers connected, every 0.5 s, until FILE.stop exists
worker_sampler() {
    while [[ ! -e $1.stop ]]; do
        qv -c "SELECT bench.ec_workers()" >>"$1" 2>/dev/null || true
        sleep 0.5
    done
}
