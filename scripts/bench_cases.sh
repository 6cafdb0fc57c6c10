# shellcheck shell=bash
# shellcheck disable=SC2034,SC2154  # sourced by scripts/bench.sh, which defines work and uses the globals
# scripts/bench_cases.sh: what scripts/bench.sh measures, as a table of cases, and the one loop that
# measures a case.  Sourced by bench.sh (phase 6, the int -> bigint rebuild, is in bench_rebuild.sh).
#
# A case: a freshly loaded table, one timed step, the step's key=value figures kept as R[NAME.KEY] (one
# value per round), then the checks: every *mismatches figure must be 0 and, where the case says, the new
# column must hold EXPECT.  Its columns:
#   name    the key of its figures; ROWS: S (BENCH_ROWS_SMALL) or L (BENCH_ROWS_LARGE)
#   load    the test/bench file that makes public.t
#   step    what is timed (the step_* functions below) and its ARG (a file, the name of a migration
#           document, SQL), with SETTINGS (jsonb for ec_configure, applied in ec_start's transaction)
#   first   hooks run in the first round only, before/after the step (probe_ec_start, reads, ...)
# A step returns 1 when it failed (after recording an anomaly): its figures are not kept.

CASE_ORDER=()
declare -A CASES=() GROUP=()
CUR_GROUP=
group() { CUR_GROUP=$1; }
kase() {
    CASES[$1]=$(printf '%s\x1f' "${@:2}")
    GROUP[$CUR_GROUP]+=" $1"
    CASE_ORDER+=("$1")
}

# The backfills of 5 in run order, with their labels
MIX_KEYS=()
declare -A MIX_LABEL=()
MIXED_SCRIPTS=(pgb_mixed_select.sql@4 pgb_mixed_update.sql@1)

define_cases() {
    local b v w r d settings
    local pre_s='probe_ec_start/reads probe_ec_complete' pre_l='probe_ec_start/probe_ec_complete'
    local ec_conf='{"nice_ratio": 0, "max_load": 0}' bf=${BENCH_BACKFILL_SETTINGS:--}
    #     name                 rows load          step     arg                      settings  expect               first     what
    group backfill_durable
    kase  S.update             S    load.sql      update   backfill_update.sql      -         -                    -         "1a. backfill baseline: one UPDATE"
    kase  S.ec                 S    load.sql      ec       MIGRATION                "$bf"     'cents / 100.0'      "$pre_s"  "1b. expand_contract: ec_start, worker backfill"
    kase  S.pgroll             S    load.sql      pgroll   -                        -         -                    -         "1c. pgroll-style backfill: PL/pgSQL trigger, batches of 1,000 ids"
    kase  S.text.update        S    load_text.sql update   backfill_update_text.sql -         -                    -         "1a. text -> bigint baseline: one UPDATE"
    kase  S.text.ec            S    load_text.sql ec       MIGRATION_TEXT           "$bf"     'CAST(a AS bigint)'  -         "1b. text -> bigint: expand_contract"
    group backfill_fast
    kase  S.fast.update        S    load.sql      update   backfill_update.sql      -         -                    -         "1a. backfill baseline: one UPDATE"
    kase  S.fast.ec            S    load.sql      ec       MIGRATION                "$bf"     'cents / 100.0'      -         "1b. expand_contract: ec_start, worker backfill"
    kase  S.text_fast.update   S    load_text.sql update   backfill_update_text.sql -         -                    -         "1a. text -> bigint baseline: one UPDATE"
    kase  S.text_fast.ec       S    load_text.sql ec       MIGRATION_TEXT           "$bf"     'CAST(a AS bigint)'  -         "1b. text -> bigint: expand_contract"
    group backfill_batches
    for b in $BENCH_EC_BATCHES; do
    kase  "S.batch$b"          S    load.sql      ec       MIGRATION    "{\"batch_size\": $b}" 'cents / 100.0'     -         "1b'. expand_contract, batch_size $b (ec_configure)"
    done
    group backfill_large
    kase  L.update             L    load.sql      update   backfill_update.sql      -         -                    -         "1a. backfill baseline: one UPDATE"
    kase  L.ec                 L    load.sql      ec       MIGRATION                "$bf"     'cents / 100.0'      "$pre_l"  "1b. expand_contract: ec_start, worker backfill, ec_complete"
    kase  L.pgroll             L    load.sql      pgroll   -                        -         -                    -         "1c. pgroll-style backfill: PL/pgSQL trigger, batches of 1,000 ids"

    # 2: INSERT ... SELECT into an empty table, then single-row INSERTs, with what the variant sets up
    group writes
    declare -A setup=([plain]="SELECT 1" [extra_column]="ALTER TABLE public.t ADD COLUMN extra numeric(12,2)"
                      [ec]="SELECT ec_start('v1', '$MIGRATION')" [ec_subquery]="SELECT ec_start('v1', '$MIGRATION_SUBQUERY')"
                      [plpgsql]="CALL bench.pgroll_start()" [plpgsql_subquery]="CALL bench.pgroll_start(true)")
    for v in $BENCH_WRITE_VARIANTS; do
        [[ $v == ec* ]] && d='cents / 100.0' || d=-
    kase  "writes.$v"          S    create_empty.sql writes "${setup[$v]}"          -         "$d"                 -         "2. writes, $v: INSERT ... SELECT, then ${BENCH_PGBENCH_SECS}s of single-row INSERTs"
    done

    # 5: the 4:1 mix of selects and updates through the old version, then during backfills
    group mixed
    kase  mix.idle             L    load.sql      traffic  -                        -         -                    -         "5a. the mix, no migration, ${BENCH_MIXED_SECS}s"
    kase  mix.trigger          L    load.sql      traffic  "SELECT ec_start('v1', '$MIGRATION'); SELECT ec_pause('public')" \
                                                                                    -         -                    /paused_check "5a'. the mix, a migration started with its backfill paused (the dual-write trigger alone), ${BENCH_MIXED_SECS}s"
    mix_variant default "default settings" -
    mix_variant unthrottled "unthrottled (nice_ratio 0, max_load 0)" "$ec_conf"
    for r in $BENCH_MIXED_NICE; do mix_variant "nice${r//./_}" "nice_ratio $r" "{\"nice_ratio\": $r}"; done
    for d in $BENCH_MIXED_DELAYS; do mix_variant "delay$d" "batch_delay_ms $d" "{\"batch_delay_ms\": $d}"; done
    for v in $BENCH_MIXED_VARIANTS; do mix_variant "${v%%=*}" "${v#*=}" "${v#*=}"; done

    # 7: parallel backfill, no traffic
    group parallel
    kase  par.update           L    load.sql      update   backfill_update.sql      -         -                    -         "7a. parallel backfill baseline: one UPDATE"
    for w in $BENCH_PARALLEL_WORKERS; do
        settings="{\"max_parallel_workers\": $w, \"nice_ratio\": 0, \"max_load\": 0}"
    kase  "par.w$w"            L    load.sql      parallel MIGRATION                "$settings" 'cents / 100.0'    -         "7b. expand_contract, $w worker(s), no traffic"
    done

    # 8: cents int -> bigint offline and through expand_contract, compact on and off
    group compact
    for r in S L; do
    kase  "compact.$r.offline"    "$r" load.sql   compact  offline                  '{}'      -                    -         "8. compaction: offline ALTER TABLE, VACUUM"
    kase  "compact.$r.ec_compact" "$r" load.sql   compact  ec                       "$ec_conf" -                   -         "8. compaction: expand_contract, compact on"
    kase  "compact.$r.ec_plain"   "$r" load.sql   compact  ec '{"nice_ratio": 0, "max_load": 0, "compact": false}' - -       "8. compaction: expand_contract, compact off"
    done
}
# mix_variant KEY LABEL SETTINGS: a backfill of 5 under the mix
mix_variant() {
    MIX_KEYS+=("$1")
    MIX_LABEL[$1]=$2
    kase "mix.$1" L load.sql mixed MIGRATION "$3" - - "5. the mix while the backfill runs, $2"
}

rows_of() { if [[ $1 == S ]]; then echo "$BENCH_ROWS_SMALL"; else echo "$BENCH_ROWS_LARGE"; fi; }
lab_of() { if [[ $1 == S ]]; then echo "$LAB_S"; else echo "$LAB_L"; fi; }

# measure NAME [OF]: the case, once; OF (", round 2 of 3") goes in its heading.  FIRST=1 in the first round.
measure() {
    local c=$1 of=${2:-} rows load step arg settings expect first what n k h
    IFS=$'\x1f' read -r rows load step arg settings expect first what <<<"${CASES[$c]}"
    [[ $settings == - ]] && settings=''
    n=$(rows_of "$rows")
    title "$what, $(lab_of "$rows") rows$of ($c, $SERVER_MODE server)"
    reset_state
    load_rows "$load" "$n"
    if [[ $FIRST == 1 && $first != - && -n ${first%%/*} ]]; then
        for h in ${first%%/*}; do "$h" "$c" "$rows"; done
    fi
    KV=()
    "step_$step" "$c" "$arg" "$settings" || return 0
    for k in "${!KV[@]}"; do
        is_num "${KV[$k]}" && rec "$c" "$k" "${KV[$k]}"
        [[ $k != *mismatches || ${KV[$k]} == 0 ]] || anomaly "$c: ${KV[$k]} rows wrong ($k; a bench bug if this is a baseline)"
    done
    [[ $expect == - ]] || mismatch_check "$c" "$expect"
    if [[ $FIRST == 1 && $first == */* ]]; then
        for h in ${first#*/}; do "$h" "$c" "$rows"; done
    fi
    return 0
}
# run_group GROUP ROUND [ROUNDS]: every case of GROUP
FIRST=1
CUR_ROUND=1
run_group() {
    local c of=''
    ((${3:-1} > 1)) && of=", round $2 of $3"
    CUR_ROUND=$2
    FIRST=$(( $2 == 1 ))
    for c in ${GROUP[$1]:-}; do measure "$c" "$of"; done
}

step_update() { sql "$2" || { anomaly "the baseline UPDATE failed ($1)"; return 1; }; say "UPDATE: $(kv update_ms) ms"; KV[mb]=$(table_mb); }
step_pgroll() { sql backfill_pgroll.sql || { anomaly "the pgroll-style backfill failed ($1)"; return 1; }; say "pgroll-style backfill: $(kv pgroll_ms) ms"; KV[mb]=$(table_mb); }
step_ec() {
    ec_backfill "$1" "${!2}" "$3" "${R[${1%.*}.update.update_ms]:-}" && [[ $BF_OK == 1 ]] || return 1
    KV[mb]=$(table_mb)
}
step_parallel() {
    local samp=$work/workers_$1 pid
    rm -f "$samp" "$samp.stop"
    run_bg worker_sampler "$samp"
    pid=$EC_LAST_PID
    ec_backfill "$1" "${!2}" "$3" "${R[${1%.*}.update.update_ms]:-}" || true
    touch "$samp.stop"
    wait "$pid" || true
    KV[workers_seen]=$(sort -n "$samp" 2>/dev/null | tail -n1)
    KV[parts]=$(backfill_parts) || KV[parts]=''
    say "backfill: $(kv backfill_status) $(kv backfill_wall_ms) ms after the commit (first start to last finish of its $(kv parts) part(s): $(kv worker_ms) ms, $(kv batches) batches); at most $(kv workers_seen) workers seen at once"
    [[ $BF_OK == 1 ]]
}
step_compact() {
    sql compact_run.sql -v mode="$2" -v settings="$3" || { anomaly "compaction phase: $1 failed"; return 1; }
    say "$1: change $(kv change_ms) ms, vacuum $(kv vacuum_ms) ms, heap $(kv heap_bytes) B, indexes $(kv index_bytes) B"
}
step_writes() {
    local c=$1 st
    qv -c "$2" >/dev/null || { anomaly "setting up the write variant $c failed"; return 1; }
    if [[ $2 == *ec_start* ]]; then
        st=$(qv -c "CALL bench.wait_tasks('v1', '{backfill,sql}', 60, $BENCH_STALL_TIMEOUT, NULL, NULL, NULL)" | awk '{ print $1 }') || st=error
        [[ $st == "done" ]] || { anomaly "the tasks of a migration of an empty table are '$st' after 60s"; task_diag v1; }
    fi
    ROWS_CUR=$BENCH_ROWS_SMALL
    sql insert_bulk.sql -v rows="$ROWS_CUR" || { anomaly "the bulk INSERT failed ($c)"; return 1; }
    say "INSERT ... SELECT of $ROWS_CUR rows: $(kv insert_ms) ms"
    pgb "insert_${c#writes.}_$CUR_ROUND" public "$BENCH_PGBENCH_SECS" "$BENCH_CLIENTS" pgb_insert_one.sql
    KV[tps]=$PGB_TPS
    ((PGB_RC == 0 && ${PGB_FAILED:-0} == 0)) || anomaly "pgbench inserts ($c): exit $PGB_RC, failed ${PGB_FAILED:-?}"
}
# traffic: the mix for BENCH_MIXED_SECS after ARG (SQL, "-": none)
step_traffic() {
    local from to
    [[ $2 == - ]] || qv -c "$2" >/dev/null || { anomaly "$1: $2 failed"; return 1; }
    traffic_start "mx_${1#mix.}" "rows=$ROWS_CUR" "${MIXED_SCRIPTS[@]}"
    from=$(epoch_now); sleep "$BENCH_MIXED_SECS"; to=$(epoch_now)
    traffic_stop
    window "mx_${1#mix.}" "$from" "$to"
    KV+=([tps]=$W_TPS [p99]=$W_P99 [errors]=$W_ERRORS)
    ((W_ERRORS == 0)) || anomaly "client errors ($1): $W_ERRORS"
}
# mixed: the mix running from BENCH_MIXED_SECS before ec_start (the baseline next to the backfill in
# time) until the backfill task is done; the figures are those of the transactions completed between
# ec_start's commit and the task's finished_at, and the backfill's time is that span.
step_mixed() {
    local c=$1 name=mx_${1#mix.} configure=false settings=${3:-'{}'} from to t_commit t_done tmo st line batches
    [[ -n $3 ]] && configure=true
    traffic_start "$name" "rows=$ROWS_CUR" "${MIXED_SCRIPTS[@]}"
    from=$(epoch_now); sleep "$BENCH_MIXED_SECS"; to=$(epoch_now)
    read -r 'KV[pre_tps]' _ 'KV[pre_p99]' _ <<<"$(traffic_window "$name" "$from" "$to")"
    say "before ec_start (${BENCH_MIXED_SECS}s): tps $(kv pre_tps), p99 $(kv pre_p99) ms"
    if ! t_commit=$(qv -v doc="${!2}" -v configure="$configure" -v settings="$settings" <<'SQL'
BEGIN;
SELECT ec_start('v1', :'doc') IS NOT NULL AS started \gset
\if :configure
SELECT ec_configure('public', :'settings'::jsonb) IS NOT NULL AS configured \gset
\endif
COMMIT;
SELECT extract(epoch FROM clock_timestamp());
SQL
    ); then
        anomaly "ec_start ($c) failed under traffic"
        traffic_stop
        return 1
    fi
    tmo=$(( 3 * $(backfill_timeout "${R[L.update.update_ms]:-}") ))
    st=$(qv -c "CALL bench.wait_tasks('v1', '{backfill}', $tmo, $BENCH_STALL_TIMEOUT, NULL, NULL, NULL)" | awk '{ print $1 }') || st=error
    line=$(qv -c "SELECT extract(epoch FROM max(k.finished_at)), sum(k.batches), sum(k.rows_done), count(*) FROM expand_contract.tasks k JOIN expand_contract.migrations m ON m.id = k.migration_id WHERE m.schema_name = 'public' AND m.name = 'v1' AND k.kind = 'backfill'") || line=''
    read -r t_done batches _ _ <<<"$line"
    is_num "$t_done" || t_done=$(epoch_now)
    traffic_stop
    if [[ $st == "done" ]]; then
        KV[backfill_s]=$(awk -v a="$t_commit" -v b="$t_done" 'BEGIN { printf "%.1f\n", b - a }')
        say "backfill done $(kv backfill_s) s after ec_start's commit ($line: finished_at, batches, rows, parts)"
    else
        anomaly "the backfill under traffic ($c) ended as '$st'"
        task_diag v1
    fi
    window "$name" "$t_commit" "$t_done"
    KV+=([batches]=$batches [tps]=$W_TPS [p99]=$W_P99 [max]=$W_MAX [errors]=$W_ERRORS)
    ((W_ERRORS == 0)) || anomaly "client errors during the traffic of the backfill ($c): $W_ERRORS"
    [[ $st == "done" ]] && mismatch_check "backfill under traffic ($c)"
    return 0
}

# First-round hooks.  4: how long ec_start and ec_complete hold their lock, a client selecting meanwhile
probe_ec_start() {
    say "lock probe: ec_start in a transaction rolled back, while a client selects by pk"
    probe_start "start_$2"
    sql ec_start_dry.sql -v doc="$MIGRATION" || anomaly "ec_start (rolled back) failed ($1)"
    probe_end
    rec "$1" probe_start_ms "$PROBE_MAX"
    say "ec_start (rolled back): $(kv start_dry_ms) ms"
}
probe_ec_complete() {
    title "4. ec_complete, $(lab_of "$2") rows"
    # The compaction's REINDEX may still run after the backfill: complete would skip it, and stopping
    # it would be in the figure.
    qv -c "CALL ec_wait()" >/dev/null || anomaly "CALL ec_wait() before ec_complete failed ($1)"
    say "lock probe: ec_complete in a transaction rolled back, while a client selects by pk"
    probe_start "complete_$2"
    sql ec_complete.sql -v dry=true -v wait=false || anomaly "ec_complete (rolled back) failed ($1)"
    probe_end
    rec "$1" probe_complete_ms "$PROBE_MAX"
    say "ec_complete (rolled back): $(kv complete_dry_ms) ms"
    if sql ec_complete.sql -v dry=false -v wait=false; then
        rec "$1" complete_ms "$(kv complete_ms)"
        say "ec_complete: $(kv complete_ms) ms"
    else
        anomaly "ec_complete(wait => false) failed ($1) although every task was done"
    fi
}
# 3: pgbench select by pk, public.t and public_v1.t alternated BENCH_ROUNDS times, in the query mode of
# the run and with prepared statements (execution without parsing, rewriting and planning: what the view
# costs at run time)
reads() {
    local i m v
    title "3. reads by pk: public_v1.t (view) against public.t, $(lab_of "$2") rows, $BENCH_ROUNDS rounds of ${BENCH_PGBENCH_SECS}s runs"
    qv -c "VACUUM (ANALYZE) public.t" -c "CHECKPOINT" >/dev/null || true
    for ((i = 1; i <= BENCH_ROUNDS; i++)); do
        for m in "" prepared; do
            [[ -n $m && $BENCH_PGBENCH_MODE == prepared ]] && continue
            for v in base view; do
                PGB_MODE=${m:-$BENCH_PGBENCH_MODE} pgb "read_$v${m:+_$m}_$i" "$([[ $v == view ]] && echo public_v1 || echo public)" \
                    "$BENCH_PGBENCH_SECS" "$BENCH_CLIENTS" "pgb_read_$v.sql"
                rec reads "$v${m:+_$m}_tps" "$PGB_TPS"
                [[ $v == base || $PGB_RC == 0 ]] || anomaly "select through public_v1.t failed"
            done
        done
    done
}
# 5a': the paused migration's backfill filled nothing
paused_check() {
    local n
    n=$(qv -c "SELECT coalesce(sum(k.rows_done), 0) FROM expand_contract.tasks k JOIN expand_contract.migrations m ON m.id = k.migration_id WHERE m.name = 'v1' AND k.kind = 'backfill'") || n='?'
    [[ $n == 0 ]] || anomaly "the backfill of a migration paused in ec_start's transaction filled $n rows"
    qv -c "SELECT ec_rollback('public')" >/dev/null || anomaly "ec_rollback of the paused migration failed"
    wait_no_workers
}
