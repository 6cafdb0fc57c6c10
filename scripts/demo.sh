#!/usr/bin/env bash
# scripts/demo.sh (`make demo`): a live expand/contract migration under write traffic.
#
#   - installs what is missing, builds and installs the extension (from a temp copy of the checkout)
#   - starts a throwaway cluster (unix socket only) as the postgres OS user
#   - loads public.orders with DEMO_ROWS (200,000) rows
#   - starts an "old app" writing through the old version (the base tables, search_path=public),
#     runs ec_start('v2', ...) while it writes (rename customer_name -> customer, and amount_cents integer
#     -> amount numeric(12,2)), then starts a "new app" writing through the new version
#     (search_path=public_v2); both run for DEMO_SECONDS (5) with pgbench
#   - checks that both versions agree on every row written during the migration, runs ec_complete(), and
#     checks the contracted table
#   - exits non-zero if a client failed or a check did not hold; the cluster is always removed
#
# Knobs: DEMO_ROWS=200000 DEMO_SECONDS=5 EC_KEEP_TMP=1 (keep the temp dir and its server.log)
# PG_CONFIG=... (the PostgreSQL to build against, install into and run: default PostgreSQL 15's)
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ec_setup_traps

DEMO_ROWS=${DEMO_ROWS:-200000}
DEMO_SECONDS=${DEMO_SECONDS:-5}
[[ $DEMO_ROWS =~ ^[0-9]+$ && $DEMO_ROWS -gt 0 ]] || die "DEMO_ROWS must be a positive integer"
[[ $DEMO_SECONDS =~ ^[0-9]+$ && $DEMO_SECONDS -gt 0 ]] || die "DEMO_SECONDS must be a positive integer"

MIGRATION='{"operations": [
  {"rename_column": {"table": "orders", "from": "customer_name", "to": "customer"}},
  {"alter_column":  {"table": "orders", "column": "amount_cents", "name": "amount",
                     "type": "numeric(12,2)",
                     "up": "amount_cents / 100.0",
                     "down": "(amount * 100)::integer"}}
]}'

failures=0
check_failed() { failures=$((failures + 1)); }

ensure_packages
make_workdir demo
work=$EC_WORKDIR
cd "$work"
copy_tree "$EC_ROOT" "$work/src" || die "could not copy the source tree"
build_and_install "$work/src" >"$work/build.log" 2>&1 || { cat "$work/build.log"; die "build/install failed"; }
say "built and installed (log: build.log)"

# A throwaway cluster: durability is irrelevant, and the log shows every lock wait over 1s.
pg_cluster_start "$work" "fsync = off" "synchronous_commit = off" "full_page_writes = off" \
    "log_lock_waits = on" "deadlock_timeout = 1s" "log_min_messages = warning"

# show_checks FILE: FILE holds "description|expected|actual" lines (expected empty: informational).
show_checks() {
    local desc exp act mark
    while IFS='|' read -r desc exp act; do
        if [[ -z $exp ]]; then
            mark='    '
            printf '  %s %-66s %s\n' "$mark" "$desc" "$act"
        elif [[ $exp == "$act" ]]; then
            printf '  %s %-66s %s\n' ' ok ' "$desc" "$act"
        else
            printf '  %s %-66s %s (expected %s)\n' FAIL "$desc" "$act" "$exp"
            check_failed
        fi
    done <"$1"
}

title "1. extension"
q -c "CREATE EXTENSION expand_contract" || fatal "CREATE EXTENSION expand_contract failed"
qv -c "SELECT 'expand_contract ' || extversion || ' on ' || version() FROM pg_extension WHERE extname = 'expand_contract'"

title "2. public.orders: loading $DEMO_ROWS rows"
t0=$(now_ms)
q -v rows="$DEMO_ROWS" <<'SQL' || fatal "loading public.orders failed"
CREATE TABLE public.orders (
    id            bigserial PRIMARY KEY,
    customer_name text        NOT NULL,
    amount_cents  integer     NOT NULL,
    status        text        NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'paid', 'shipped', 'cancelled')),
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_customer_name_idx ON public.orders (customer_name);
CREATE INDEX orders_created_at_idx ON public.orders (created_at);
SELECT setseed(0.42) \gset
INSERT INTO public.orders (customer_name, amount_cents, status, created_at)
SELECT 'customer ' || (1 + floor(random() * 20000))::int,
       100 + floor(random() * 99900)::int,
       (ARRAY['pending', 'paid', 'shipped', 'cancelled'])[1 + floor(random() * 4)::int],
       now() - random() * interval '365 days'
  FROM generate_series(1, :rows);
ANALYZE public.orders;
SQL
rows_before=$(qv -c "SELECT count(*) FROM public.orders")
max_before=$(qv -c "SELECT max(id) FROM public.orders")
say "$rows_before rows in $(( $(now_ms) - t0 )) ms"
q -c '\d public.orders'

# pgbench scripts.  Each run is one transaction with one INSERT, so committed inserts = transactions.
# The old app sees only the old columns; the new app only the new ones.  Rows that existed before
# ec_start may show amount NULL in the new version until they are backfilled (ec_complete), so the new
# app only updates pre-existing rows it can see an amount for (and always the row it just inserted).
cat >"$work/old_app.sql" <<'SQL'
\set id random(1, :max_before)
\set cents random(100, 100000)
\set s random(1, 4)
BEGIN;
INSERT INTO orders (customer_name, amount_cents, status)
     VALUES ('old-app ' || :cents, :cents, (ARRAY['pending', 'paid', 'shipped', 'cancelled'])[:s]);
UPDATE orders SET amount_cents = amount_cents + 1 WHERE id = :id;
END;
SQL
cat >"$work/new_app.sql" <<'SQL'
\set id random(1, :max_before)
\set cents random(100, 100000)
\set s random(1, 4)
BEGIN;
INSERT INTO orders (customer, amount, status)
     VALUES ('new-app ' || :cents, :cents / 100.0, (ARRAY['pending', 'paid', 'shipped', 'cancelled'])[:s])
     RETURNING id AS new_id \gset
UPDATE orders SET amount = amount + 0.01 WHERE id = :new_id;
UPDATE orders SET amount = amount + 0.01 WHERE id = :id AND amount IS NOT NULL;
END;
SQL
chmod 644 "$work/old_app.sql" "$work/new_app.sql"

# pgbench CLIENT SEARCH_PATH SECONDS: one connection, progress every second, in the background.
start_client() {
    local name=$1 path=$2 secs=$3
    run_bg pgbench_as "$path" "$name" -n -c 1 -j 1 -T "$secs" -P 1 -D max_before="$max_before" \
        -f "$work/$name.sql" >"$work/$name.out" 2>&1
}

title "3. migration under traffic"
say "old app starts: search_path=public (the old version: the base tables), $((DEMO_SECONDS + 2))s"
start_client old_app public $((DEMO_SECONDS + 2))
old_pid=$EC_LAST_PID
sleep 1

say "ec_start('v2', ...) while the old app writes:"
printf '%s\n' "$MIGRATION" | sed 's/^/      /'
t0=$(now_ms)
v2=$(qv -v mig="$MIGRATION" <<'SQL'
SELECT ec_start('v2', :'mig');
SQL
) || fatal "ec_start failed"
start_ms=$(( $(now_ms) - t0 ))
[[ $v2 =~ ^[a-z_][a-z0-9_]*$ ]] || die "ec_start returned an unexpected version schema name: '$v2'"
# Every id above this was allocated after ec_start: ec_start's DDL waited for the writers that held ids.
max_at_start=$(qv -c "SELECT last_value FROM public.orders_id_seq")
say "ec_start returned '$v2' in ${start_ms} ms"

say "new app starts: search_path=$v2 (the new version), ${DEMO_SECONDS}s"
start_client new_app "$v2" "$DEMO_SECONDS"
new_pid=$EC_LAST_PID

old_rc=0; new_rc=0; old_app_tx=0; new_app_tx=0
wait "$old_pid" || old_rc=$?
wait "$new_pid" || new_rc=$?

# report_client NAME RC: pgbench's counts, its per-second progress and any error; sets <NAME>_tx.
report_client() {
    local name=$1 rc=$2 out=$work/$1.out tx failed tps
    tx=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$out")
    failed=$(sed -n 's/^number of failed transactions: \(.*\)/\1/p' "$out")
    tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$out")
    printf -v "${name}_tx" '%s' "${tx:-0}"
    echo
    printf '  %-8s transactions: %s   failed: %s   tps: %s   exit: %s\n' \
        "$name" "${tx:-?}" "${failed:-?}" "${tps:-?}" "$rc"
    grep '^progress:' "$out" | sed 's/^/      /' || true
    if ((rc != 0)) || grep -qiE 'error|abort' "$out"; then
        echo "  $name FAILED; its output:"
        sed 's/^/      /' "$out"
        check_failed
    fi
}
title "4. clients"
report_client old_app "$old_rc"
report_client new_app "$new_rc"

title "5. before ec_complete: the same rows through both versions"
q -c '\d public.orders' || fatal "psql failed"
q -c "\\d $v2.orders" || { echo "  (no relation $v2.orders)"; check_failed; }
q -v v2="$v2" <<'SQL' || fatal "reading public.orders next to $v2.orders failed"
\echo newest rows written by each app: old version public.orders next to new version :v2.orders
SELECT o.id, o.customer_name, o.amount_cents, n.customer, n.amount, o.status
  FROM public.orders o JOIN :"v2".orders n USING (id)
 WHERE o.id IN ((SELECT id FROM public.orders WHERE customer_name LIKE 'old-app %' ORDER BY id DESC LIMIT 3)
                UNION ALL
                (SELECT id FROM public.orders WHERE customer_name LIKE 'new-app %' ORDER BY id DESC LIMIT 3))
 ORDER BY o.id;
SQL

qv -F '|' -v v2="$v2" -v max_at_start="$max_at_start" >"$work/checks_before" <<'SQL' || fatal "the consistency checks before ec_complete failed to run"
WITH o AS (SELECT id, customer_name, amount_cents FROM public.orders),
     n AS (SELECT id, customer, amount FROM :"v2".orders),
     j AS (SELECT o.id, o.customer_name, o.amount_cents, n.customer, n.amount FROM o JOIN n USING (id))
SELECT 'rows, old version', NULL, (SELECT count(*) FROM o)
UNION ALL
SELECT 'rows, new version (same as old)', (SELECT count(*) FROM o), (SELECT count(*) FROM n)
UNION ALL
SELECT 'rows written during the migration (id > ' || :max_at_start || ')', NULL,
       (SELECT count(*) FROM j WHERE id > :max_at_start)
UNION ALL
SELECT '  of which inserted by the old app', NULL,
       (SELECT count(*) FROM j WHERE id > :max_at_start AND customer_name LIKE 'old-app %')
UNION ALL
SELECT '  of which inserted by the new app', NULL,
       (SELECT count(*) FROM j WHERE id > :max_at_start AND customer_name LIKE 'new-app %')
UNION ALL
SELECT '  amount <> amount_cents / 100.0', 0,
       (SELECT count(*) FROM j WHERE id > :max_at_start AND amount IS DISTINCT FROM amount_cents / 100.0)
UNION ALL
SELECT 'older rows with an amount: amount <> amount_cents / 100.0', 0,
       (SELECT count(*) FROM j WHERE id <= :max_at_start AND amount IS NOT NULL
                                 AND amount <> amount_cents / 100.0)
UNION ALL
SELECT 'older rows not backfilled yet (amount NULL in the new version)', NULL,
       (SELECT count(*) FROM j WHERE amount IS NULL)
UNION ALL
SELECT 'customer <> customer_name', 0,
       (SELECT count(*) FROM j WHERE customer IS DISTINCT FROM customer_name);
SQL
show_checks "$work/checks_before"

# What every row must hold after the backfill and the contract: amount = amount_cents / 100.
q -c "CREATE SCHEMA demo_check; CREATE TABLE demo_check.before AS SELECT id, customer_name, amount_cents FROM public.orders" || fatal "snapshot failed"

title "6. ec_complete()"
t0=$(now_ms)
q -c "SELECT ec_complete()" >/dev/null || fatal "ec_complete failed"
say "ec_complete() took $(( $(now_ms) - t0 )) ms"
q -c '\x on' -c "SELECT * FROM ec_status()" || fatal "ec_status() failed"

title "7. after ec_complete"
q -c '\d public.orders' || fatal "psql failed"
q <<'SQL' || fatal "reading the completed table failed"
\echo 'sample rows:'
(SELECT 'before the migration' AS written, * FROM public.orders WHERE id <= 2 ORDER BY id)
UNION ALL
(SELECT 'old app', * FROM public.orders WHERE customer LIKE 'old-app %' ORDER BY id DESC LIMIT 3)
UNION ALL
(SELECT 'new app', * FROM public.orders WHERE customer LIKE 'new-app %' ORDER BY id DESC LIMIT 3);
\echo 'schemas:'
SELECT nspname AS schema FROM pg_namespace
 WHERE nspname NOT LIKE 'pg\_%' AND nspname NOT IN ('information_schema', 'demo_check') ORDER BY 1;
SQL

expected_rows=$((rows_before + old_app_tx + new_app_tx))
qv -F '|' -v expected_rows="$expected_rows" -v rows_before="$rows_before" \
   -v old_tx="$old_app_tx" -v new_tx="$new_app_tx" >"$work/checks_after" <<'SQL' || fatal "the consistency checks after ec_complete failed to run"
SELECT 'rows = ' || :rows_before || ' + ' || :old_tx || ' (old app) + ' || :new_tx || ' (new app)',
       :'expected_rows', (SELECT count(*) FROM public.orders)::text
UNION ALL
SELECT 'columns of public.orders',
       'amount numeric(12,2), created_at timestamp with time zone, customer text, id bigint, status text',
       (SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod), ', ' ORDER BY attname)
          FROM pg_attribute WHERE attrelid = 'public.orders'::regclass AND attnum > 0 AND NOT attisdropped)
UNION ALL
SELECT 'rows with amount NULL', '0', (SELECT count(*) FROM public.orders WHERE amount IS NULL)::text
UNION ALL
SELECT 'rows with amount <> amount_cents / 100.0 (as before ec_complete)', '0',
       (SELECT count(*) FROM public.orders o JOIN demo_check.before b USING (id)
         WHERE o.amount IS DISTINCT FROM b.amount_cents / 100.0)::text
UNION ALL
SELECT 'rows with customer <> customer_name (as before ec_complete)', '0',
       (SELECT count(*) FROM public.orders o JOIN demo_check.before b USING (id)
         WHERE o.customer IS DISTINCT FROM b.customer_name)::text;
SQL
echo
show_checks "$work/checks_after"

title "result"
if ((failures > 0)); then
    echo "DEMO FAILED: $failures problem(s) above; server log: $EC_PG_LOG (kept with EC_KEEP_TMP=1)"
    if [[ -f $EC_PG_LOG ]]; then
        echo "--- last lines of the server log ---"
        tail -n 40 "$EC_PG_LOG"
    fi
    exit 1
fi
echo "DEMO OK: $((old_app_tx + new_app_tx)) transactions by the old and the new app around ec_start, no client errors, every row consistent."
