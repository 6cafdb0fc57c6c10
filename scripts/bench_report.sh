# shellcheck shell=bash
# shellcheck disable=SC2034,SC2154  # sourced by scripts/bench.sh, which defines work and uses the globals
# scripts/bench_report.sh: the figures of scripts/bench.sh's phases, from the cases' values (R, see
# bench_cases.sh): every ratio, its baseline and its target.  Sourced by bench.sh.
#
# What each phase measures ("1." ... "8.", as in the output):
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

# 1, at each size X (S or L).  Targets: issue 11's at the small size, issue 10's at the large one.
backfill_report() {
    local x lab lim b
    for x in S L; do
        lab=$(lab_of "$x")
        lim=1.15
        [[ $x == S ]] && lim=1.00
        section "1. backfill, $lab rows (baseline: one UPDATE)"
        putm "backfill_${lab}_update_ms" "@$x.update.update_ms"
        cmp "backfill_${lab}_ec_vs_update" "expand_contract: ec_start commit -> backfill seen done" "@$x.ec.backfill_wall_ms" " ms" "@$x.update.update_ms" "<=" "$lim"
        cmp "backfill_${lab}_ec_worker_vs_update" "expand_contract: task started_at -> finished_at" "@$x.ec.worker_ms" " ms" "@$x.update.update_ms" "<=" "$lim"
        putm "backfill_${lab}_ec_launch_ms" "@$x.ec.launch_ms"
        if [[ $x == S ]]; then
            for b in $BENCH_EC_BATCHES; do
                cmp "backfill_${lab}_ec_batch${b}_vs_update" "expand_contract, batch_size $b (once)" "@S.batch$b.backfill_wall_ms" " ms" "@S.update.update_ms"
            done
        fi
        cmp "backfill_${lab}_pgroll_vs_update" "pgroll-style: PL/pgSQL trigger, 1,000-id batches" "@$x.pgroll.pgroll_ms" " ms" "@$x.update.update_ms"
        cmp "backfill_${lab}_ec_vs_pgroll" "expand_contract against pgroll-style" "@$x.ec.backfill_wall_ms" " ms" "@$x.pgroll.pgroll_ms" "<=" 0.8
        cmp "backfill_${lab}_ec_size_vs_update" "table size after: expand_contract" "@$x.ec.mb" " MB" "@$x.update.mb"
        cmp "backfill_${lab}_pgroll_size_vs_update" "table size after: pgroll-style" "@$x.pgroll.mb" " MB" "@$x.update.mb"
        [[ $x == S ]] || continue
        if [[ $BENCH_FAST == 1 ]]; then
            section "1. backfill, $lab rows, fast server: fsync, synchronous_commit, full_page_writes off (baseline: one UPDATE, same server)"
            backfill_rows S.fast "" ec_ _fast
            cmp "backfill_${lab}_update_fast_vs_durable" "the UPDATE itself: fast server against durable" "@S.fast.update.update_ms" " ms" "@S.update.update_ms"
        fi
        section "1. backfill of issue 11's text -> bigint, t(id bigint primary key, a text not null, b text), $lab rows (baseline: UPDATE t SET a2 = CAST(a AS bigint))"
        backfill_rows S.text text_bigint_ text_bigint_ ''
        if [[ $BENCH_FAST == 1 ]]; then
            section "1. the same text -> bigint, $lab rows, fast server (baseline: the UPDATE on the fast server)"
            backfill_rows S.text_fast text_bigint_ text_bigint_ _fast
        fi
    done
}
# backfill_rows CASES UPD EC SUFFIX: the small size's other pairs, against the UPDATE in the same
# configuration: backfill_1m_${UPD}update_ms, backfill_1m_${EC}vs_update, ..._worker_vs_update, ..._launch_ms
backfill_rows() {
    local c=$1 sfx=$4
    putm "backfill_${LAB_S}_${2}update_ms$sfx" "@$c.update.update_ms"
    cmp "backfill_${LAB_S}_${3}vs_update$sfx" "expand_contract: ec_start commit -> backfill seen done" "@$c.ec.backfill_wall_ms" " ms" "@$c.update.update_ms" "<=" 1.00
    cmp "backfill_${LAB_S}_${3}worker_vs_update$sfx" "expand_contract: task started_at -> finished_at" "@$c.ec.worker_ms" " ms" "@$c.update.update_ms" "<=" 1.00
    putm "backfill_${LAB_S}_${3}launch_ms$sfx" "@$c.ec.launch_ms"
}

# 2: KEY LABEL VARIANT BASELINE [OP LIMIT] for the bulk INSERT (ms), then the single-row INSERTs (tps)
WRITE_ROWS=(
    "insert_bulk_@_extra_column_vs_plain|INSERT..SELECT, extra column, no trigger|extra_column|plain"
    "insert_bulk_@_ec_trigger_vs_plain|INSERT..SELECT, expand_contract C trigger|ec|plain|<=|1.25"
    "insert_bulk_@_plpgsql_trigger_vs_plain|INSERT..SELECT, PL/pgSQL trigger|plpgsql|plain"
    "insert_bulk_@_ec_subquery_vs_plain|INSERT..SELECT, C trigger, up with a subquery (SPI)|ec_subquery|plain"
    "insert_bulk_@_plpgsql_subquery_vs_plain|INSERT..SELECT, PL/pgSQL trigger, up with a subquery|plpgsql_subquery|plain"
    "insert_bulk_@_ec_subquery_vs_ec|INSERT..SELECT, C trigger: subquery (SPI) against compiled|ec_subquery|ec"
    "insert_bulk_@_ec_subquery_vs_plpgsql_subquery|INSERT..SELECT, subquery up: C trigger against PL/pgSQL|ec_subquery|plpgsql_subquery"
    "insert_single_extra_column_tps_vs_plain|single-row INSERTs (tps), extra column, no trigger|extra_column|plain"
    "insert_single_ec_trigger_tps_vs_plain|single-row INSERTs (tps), expand_contract C trigger|ec|plain"
    "insert_single_plpgsql_trigger_tps_vs_plain|single-row INSERTs (tps), PL/pgSQL trigger|plpgsql|plain"
    "insert_single_ec_subquery_tps_vs_plain|single-row INSERTs (tps), C trigger, up with a subquery|ec_subquery|plain"
    "insert_single_ec_subquery_tps_vs_ec|single-row INSERTs (tps): subquery (SPI) against compiled|ec_subquery|ec"
)
writes_report() {
    local row key label v b op lim fig unit
    section "2. writes, $LAB_S rows (baseline: no trigger, no extra column)"
    putm "insert_bulk_${LAB_S}_plain_ms" "@writes.plain.insert_ms"
    for row in "${WRITE_ROWS[@]}"; do
        IFS='|' read -r key label v b op lim <<<"$row"
        fig=insert_ms unit=" ms"
        [[ $key == insert_single_* ]] && fig=tps unit=""
        [[ $key == insert_single_extra_column_* ]] && putm "insert_single_plain_tps" "@writes.plain.tps"
        # shellcheck disable=SC2086  # no target: no arguments
        cmp "${key/@/$LAB_S}" "$label" "@writes.$v.$fig" "$unit" "@writes.$b.$fig" $op $lim
    done
}

# 3 and 4
reads_locks_report() {
    local op x
    section "3. reads by pk, $LAB_S rows (baseline: public.t)"
    putm "read_pk_base_tps" "@reads.base_tps"
    cmp "read_pk_view_tps_vs_base" "select by pk through public_v1.t (tps, $BENCH_PGBENCH_MODE protocol)" "@reads.view_tps" "" "@reads.base_tps"
    if [[ $BENCH_PGBENCH_MODE != prepared ]]; then
        putm "read_pk_base_prepared_tps" "@reads.base_prepared_tps"
        cmp "read_pk_view_prepared_tps_vs_base" "the same with prepared statements" "@reads.view_prepared_tps" "" "@reads.base_prepared_tps"
    fi
    section "4. lock hold: ACCESS EXCLUSIVE for the whole call (baseline: the $LAB_S-row table)"
    for op in start complete; do
        for x in S L; do putm "lock_ec_${op}_$(lab_of $x)_ms" "@$x.ec.${op}_ms"; done
        for x in S L; do info_med "ec_$op, $(lab_of $x) rows" "@$x.ec.${op}_ms" " ms" "<=" 100; done
        cmp "lock_ec_${op}_${LAB_L}_vs_${LAB_S}" "ec_$op, $LAB_L rows against $LAB_S rows" "@L.ec.${op}_ms" " ms" "@S.ec.${op}_ms"
        for x in S L; do putm "probe_select_max_ms_ec_${op}_$(lab_of $x)" "@$x.ec.probe_${op}_ms"; done
        info "worst concurrent select, ec_$op rolled back, $LAB_S / $LAB_L" \
            "$(fmt "$(median "$(val "@S.ec.probe_${op}_ms")")" " ms") / $(fmt "$(median "$(val "@L.ec.probe_${op}_ms")")" " ms")"
    done
}

# 5: each backfill under the mix against the BENCH_MIXED_SECS before its ec_start and against 5a
mixed_report() {
    local key kp lbl op_t op_p errors
    section "5. selects+updates (4:1), $BENCH_CLIENTS clients, running for the whole of a $LAB_L-row backfill (baselines: the same mix, no migration, ${BENCH_MIXED_SECS}s: just before ec_start, and 5a)"
    putm mixed_idle_tps @mix.idle.tps
    putm mixed_idle_p99_ms @mix.idle.p99
    info "no migration: throughput / p99 latency" "$(fmt "$(val @mix.idle.tps | xargs)") / $(fmt "$(val @mix.idle.p99 | xargs)" " ms")"
    cmp "mixed_trigger_only_${LAB_L}_tps_vs_idle" "throughput, migration started, backfill paused" @mix.trigger.tps "" @mix.idle.tps
    cmp "mixed_trigger_only_${LAB_L}_p99_vs_idle" "p99 latency, migration started, backfill paused" @mix.trigger.p99 " ms" @mix.idle.p99
    errors=$(( $(median "$(val @mix.idle.errors)" | sed 's/null/0/') + $(median "$(val @mix.trigger.errors)" | sed 's/null/0/') ))
    for key in "${MIX_KEYS[@]}"; do
        # the default settings keep the historical key names (mixed_backfill_10m_tps_vs_idle, ...)
        if [[ $key == default ]]; then kp=mixed_backfill_${LAB_L}; op_t=">="; op_p="<="; lbl="DEFAULT settings"
        else kp=mixed_backfill_${LAB_L}_$key; op_t=''; op_p=''; lbl=${MIX_LABEL[$key]}; fi
        cmp "${kp}_tps_vs_before" "$lbl: throughput kept (against the ${BENCH_MIXED_SECS}s before)" "@mix.$key.tps" "" "@mix.$key.pre_tps" $op_t ${op_t:+0.8}
        cmp "${kp}_p99_vs_before" "  p99 latency" "@mix.$key.p99" " ms" "@mix.$key.pre_p99" $op_p ${op_p:+2}
        cmp "${kp}_tps_vs_idle" "  throughput kept against 5a's" "@mix.$key.tps" "" @mix.idle.tps
        cmp "${kp}_p99_vs_idle" "  p99 latency against 5a's" "@mix.$key.p99" " ms" @mix.idle.p99
        putm "${kp}_max_ms" "@mix.$key.max"
        putm "${kp}_errors" "@mix.$key.errors"
        info_med "  client errors" "@mix.$key.errors" "" "==" 0
        is_num "$(val "@mix.$key.errors" | xargs)" && errors=$((errors + $(val "@mix.$key.errors" | xargs)))
        putm "${kp}_backfill_s" "@mix.$key.backfill_s"
        putm "${kp}_batches" "@mix.$key.batches"
        if [[ $key == unthrottled ]]; then
            info "  backfill under traffic: ec_start commit -> done" "$(fmt "$(val "@mix.$key.backfill_s" | xargs)" " s")" "" "" "$(fmt "$(val "@mix.$key.batches" | xargs)") batches"
        else
            cmp "${kp}_time_vs_unthrottled" "  backfill under traffic, against unthrottled's" "@mix.$key.backfill_s" " s" "@mix.unthrottled.backfill_s" "<=" 2
            TABLE[-1]+="$(fmt "$(val "@mix.$key.batches" | xargs)") batches"
        fi
    done
    put "mixed_errors" "$errors"
}

# 7: each worker count against one UPDATE, and the speed-up against the first count
parallel_report() {
    local w w1=${BENCH_PARALLEL_WORKERS%% *}
    section "7. parallel backfill, $LAB_L rows, no traffic, nice_ratio 0 and max_load 0, $(nproc 2>/dev/null || echo '?') CPUs (baselines: one UPDATE; 1 worker)"
    putm "parallel_${LAB_L}_update_ms" @par.update.update_ms
    info_med "one UPDATE t SET amount = cents / 100.0" @par.update.update_ms " ms"
    for w in $BENCH_PARALLEL_WORKERS; do
        putm "parallel_${LAB_L}_w${w}_ms" "@par.w$w.backfill_wall_ms"
        putm "parallel_${LAB_L}_w${w}_task_ms" "@par.w$w.worker_ms"
        putm "parallel_${LAB_L}_w${w}_parts" "@par.w$w.parts"
        putm "parallel_${LAB_L}_w${w}_workers_seen" "@par.w$w.workers_seen"
        cmp "parallel_${LAB_L}_w${w}_vs_update" "$w worker(s): ec_start commit -> backfill done" "@par.w$w.backfill_wall_ms" " ms" @par.update.update_ms
        TABLE[-1]+="$(val "@par.w$w.parts" | xargs) parts, at most $(val "@par.w$w.workers_seen" | xargs) workers seen at once"
        if [[ $w != "$w1" ]]; then
            # value / baseline = the first count's time / this one's: the speed-up
            cmp "parallel_${LAB_L}_w${w}_speedup_vs_w${w1}" "  speed-up: $w1 worker(s)' time / ${w}'s" "@par.w$w1.backfill_wall_ms" " ms" "@par.w$w.backfill_wall_ms"
        fi
    done
}

# 8: heap and indexes after the migration against the offline change's (issue 12), and the time
compact_report() {
    local x lab c
    section "8. after the migration (cents int -> bigint, complete, VACUUM): the table against the offline ALTER TABLE; time with and without compaction"
    for x in S L; do
        lab=$(lab_of "$x") c=compact.$x
        cmp "compact_${lab}_heap_vs_offline" "$lab: heap, compact on" "@$c.ec_compact.heap_bytes" " B" "@$c.offline.heap_bytes" "<=" 1.2
        cmp "compact_${lab}_index_vs_offline" "$lab: indexes, compact on" "@$c.ec_compact.index_bytes" " B" "@$c.offline.index_bytes" "<=" 1.1
        cmp "compact_${lab}_plain_heap_vs_offline" "$lab: heap, compact off" "@$c.ec_plain.heap_bytes" " B" "@$c.offline.heap_bytes"
        cmp "compact_${lab}_plain_index_vs_offline" "$lab: indexes, compact off" "@$c.ec_plain.index_bytes" " B" "@$c.offline.index_bytes"
        cmp "compact_${lab}_time_vs_plain" "$lab: start -> ec_wait done, compact on vs off" "@$c.ec_compact.change_ms" " ms" "@$c.ec_plain.change_ms"
        cmp "compact_${lab}_time_vs_plain_and_vacuum" "$lab: compact on vs off plus the VACUUM it needs" "@$c.ec_compact.change_ms" " ms" \
            "$(sum "$(val "@$c.ec_plain.change_ms" | xargs)" "$(val "@$c.ec_plain.vacuum_ms" | xargs)")"
    done
}
