# shellcheck shell=bash
# shellcheck disable=SC2034,SC2154  # sourced by scripts/bench.sh, which defines work and uses the globals
# scripts/bench_rebuild.sh: phase 6 of scripts/bench.sh, the headline migration of issue 10: integer ->
# bigint of accounts.id, the primary key, referenced by transfers.account_id, under pgbench traffic,
# against the offline ALTER TABLE; and its rows of the results.  Sourced by bench.sh.


REBUILD_MIGRATION='{"operations":[{"alter_column":{"table":"accounts","column":"id","type":"bigint","up":"id","down":"id"}},{"alter_column":{"table":"transfers","column":"account_id","type":"bigint","up":"account_id","down":"account_id"}}]}'
# pgbench scripts in this order: the per-transaction logs name them by position (0, 1, 2)
REBUILD_SCRIPTS=(pgb_rebuild_select.sql@4 pgb_rebuild_update.sql@1 pgb_rebuild_insert.sql@1)

# rebuild_load ACCOUNTS TRANSFERS: fresh tables of 6; REBUILD_MB: their size with indexes
rebuild_load() {
    local t0
    t0=$(now_ms)
    sql rebuild_load.sql -v accounts="$1" -v transfers="$2" || fatal "loading $1 accounts and $2 transfers failed"
    ROWS_CUR=$1
    REBUILD_MB=$(qv -c "SELECT round((pg_total_relation_size('public.accounts') + pg_total_relation_size('public.transfers')) / 1048576.0, 1)") || REBUILD_MB=''
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
    traffic_start "rb_base_$lab" "accounts=$n" "${REBUILD_SCRIPTS[@]}"
    from=$(epoch_now)
    sleep "$BENCH_MIXED_SECS"
    to=$(epoch_now)
    traffic_stop
    read -r tps p50 p99 max cnt failed _ <<<"$(traffic_window "rb_base_$lab" "$from" "$to")"
    RB_BASE_TPS[$lab]=$tps; RB_BASE_P99[$lab]=$p99; RB_BASE_MAX[$lab]=$max
    errors=$(traffic_errors "rb_base_$lab")
    say "without a migration: tps $tps, p50 $p50 ms, p99 $p99 ms, max $max ms, $cnt transactions, client errors $errors"
    qv -c "VACUUM (ANALYZE) public.accounts" -c "VACUUM (ANALYZE) public.transfers" -c "CHECKPOINT" >/dev/null || true
    if sql rebuild_offline.sql; then
        RB_OFFLINE_MS[$lab]=$(kv offline_ms)
        say "offline ALTER TABLE of both tables: $(kv offline_ms) ms (types now $(kv offline_types))"
        [[ $(kv offline_types) == bigint,bigint ]] || anomaly "the offline ALTER TABLE left the types $(kv offline_types) (bench bug)"
    else
        anomaly "the offline ALTER TABLE ... TYPE bigint failed at $lab accounts"
    fi
    shape_offline=$(qv -c "SELECT x FROM bench.rebuild_shape() x ORDER BY x") || shape_offline=''

    title "6b. int -> bigint, $lab accounts + $nt transfers: expand_contract under the same pgbench (ec_start, the worker's tasks, ec_complete)"
    reset_state
    rebuild_load "$n" "$nt"
    tokens FB "$(qv -c "SELECT bench.rebuild_fingerprint($nt)")"
    offline_s=$(awk -v m="${RB_OFFLINE_MS[$lab]:-0}" 'BEGIN { printf "%d\n", m / 1000 + 1 }')
    if [[ -n $BENCH_BACKFILL_TIMEOUT ]]; then tmo=$BENCH_BACKFILL_TIMEOUT
    else tmo=$(awk -v o="$offline_s" -v r="$((n + nt))" 'BEGIN { t = (o > 1 ? 20 * o : r / 5000); if (t < 300) t = 300; printf "%d\n", t }'); fi
    stall=$((3 * offline_s > BENCH_STALL_TIMEOUT ? 3 * offline_s : BENCH_STALL_TIMEOUT))
    [[ -n $BENCH_REBUILD_SETTINGS ]] && { configure=true; settings=$BENCH_REBUILD_SETTINGS; }
    traffic_start "rb_mig_$lab" "accounts=$n" "${REBUILD_SCRIPTS[@]}"
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
        shape_ec=$(qv -c "SELECT x FROM bench.rebuild_shape() x ORDER BY x") || shape_ec=''
        if [[ -z $shape_offline || $shape_ec != "$shape_offline" ]]; then
            anomaly "int -> bigint at $lab accounts: the catalog after ec_complete differs from the offline ALTER TABLE's (< offline, > expand_contract)"
            diff <(printf '%s\n' "$shape_offline") <(printf '%s\n' "$shape_ec") | sed 's/^/      /' >&2 || true
        else
            say "check: constraints, indexes, columns, relations and triggers equal the offline copy's ($(wc -l <<<"$shape_ec") lines)"
        fi
        read -r _ upd ins <<<"$(traffic_committed "rb_mig_$lab")"
        tokens FA "$(qv -c "SELECT bench.rebuild_fingerprint($nt)")"
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

# rebuild_report: the rows of 6
rebuild_report() {
    local lab k
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
}
