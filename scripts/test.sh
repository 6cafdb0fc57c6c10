#!/usr/bin/env bash
# scripts/test.sh: the one test command (`make test`).
#
#   1. install missing packages (as root; as non-root only check they are there)
#   2. copy the checkout (without .git) to a temp dir owned by the postgres OS user, build it there as
#      postgres and `make install` it (root's checkout is never written to)
#   3. run the three PGXS suites there as postgres, each on its own temporary instance:
#        regress    make installcheck ISOLATION= TAP_TESTS=      (pg_regress, REGRESS in the Makefile)
#        isolation  make installcheck REGRESS= TAP_TESTS=        (pg_isolation_regress, test/specs/*.spec)
#        tap        make installcheck REGRESS= ISOLATION=        (prove, test/t/*.pl)
#      i.e. `make installcheck` split in three so that one failing suite does not hide the others.
#      A suite with no test files is skipped.  Then "sanitize": scripts/sanitize.sh builds the extension
#      with -fsanitize=address,undefined into a private copy of PostgreSQL and runs regress and
#      isolation there; any sanitizer report fails it.
#   4. on failure print every regression.diffs, the temp instances' server logs and the TAP logs
#   5. print "N passed, N failed" as the last line; exit non-zero if anything failed
#
# Knobs: EC_SUITES="regress isolation tap sanitize" (which suites), EC_SUITE_TIMEOUT=900 (seconds per suite),
# EC_DIFF_LINES=3000 (max lines printed per diff file), EC_KEEP_TMP=1, EC_SKIP_INSTALL=1, PG_CONFIG.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ec_setup_traps

EC_SUITES=${EC_SUITES:-regress isolation tap sanitize}
EC_SUITE_TIMEOUT=${EC_SUITE_TIMEOUT:-900}
EC_DIFF_LINES=${EC_DIFF_LINES:-3000}

test_env

total_pass=0
total_fail=0
summary_lines=()
failed_suites=()

finish() {
    local s
    echo
    echo "================ summary ================"
    for s in "${summary_lines[@]}"; do echo "  $s"; done
    if ((total_fail > 0)); then
        echo "  FAILED: ${failed_suites[*]}"
    fi
    echo "${total_pass} passed, ${total_fail} failed"
    if ((total_fail > 0)); then exit 1; fi
    exit 0
}

ensure_packages
pgc=$(pg_config_cmd) || die "pg_config not found"

make_workdir test
work=$EC_WORKDIR
cd "$work"
src=$work/src
say "copying $EC_ROOT to $src"
copy_tree "$EC_ROOT" "$src" || die "could not copy the source tree"

if ! build_and_install "$src"; then
    summary_lines+=("build/install: FAILED")
    failed_suites+=(build/install)
    total_fail=$((total_fail + 1))
    finish
fi

# pg_regress / pg_isolation_regress, PostgreSQL 15 format:
#   "test api                  ... ok          12 ms"      (serial)
#   "     api                  ... FAILED      12 ms"      (inside a parallel group)
#   "test x ... failed (ignored)"
# and the TAP-like format of 16+: "ok 1  - api  12 ms" / "not ok 2  - x  30 ms".  Prints "PASS FAIL".
# shellcheck disable=SC2317  # called through run_suite's COUNTER argument
count_regress() {
    awk '
        /\.\.\. +ok( |$)/                { p++; next }
        /\.\.\. +failed \(ignored\)/     { p++; next }
        /\.\.\. +FAILED/                 { f++; next }
        /^ok +[0-9]+ +[-+] /             { p++; next }
        /^not ok +[0-9]+ +[-+] /         { f++; next }
        END { print p + 0, f + 0 }' "$1"
}

# prove: "Files=3, Tests=42, ..." and, in its "Test Summary Report", one "t/x.pl (Wstat: ...)" line per
# failing test file.  Counts test files, like pg_regress counts test files.  Prints "PASS FAIL".
# shellcheck disable=SC2317
count_prove() {
    awk '
        /^Files=[0-9]+,/            { n = $0; sub(/^Files=/, "", n); sub(/,.*/, "", n); files = n + 0 }
        /^Test Summary Report/      { report = 1; next }
        report && /^[^ ].* \(Wstat: / { f++ }
        END { f += 0; p = files - f; if (p < 0) p = 0; print p, f }' "$1"
}

# run_suite NAME COUNTER TOTAL   (TOTAL: how many tests the suite should run)
run_suite() {
    local name=$1 counter=$2 total=$3
    local log=$work/$name.log rc=0 p f
    # shellcheck disable=SC2046  # the overrides are words
    set -- $(suite_overrides "$name")
    echo
    say "suite $name: make installcheck $*"
    installcheck "$src" "$log" "$EC_SUITE_TIMEOUT" PG_CONFIG="$pgc" "$@" || rc=$?
    read -r p f < <("$counter" "$log")
    if ((rc != 0 && p + f < total)); then
        # it stopped before running every test (missing file, instance did not start, crash, timeout):
        # a test that did not pass failed
        f=$((total - p))
    fi
    if ((rc != 0 && f == 0)); then f=1; fi
    if ((rc == 0 && f > 0)); then rc=1; fi
    total_pass=$((total_pass + p))
    total_fail=$((total_fail + f))
    if ((rc != 0)); then
        summary_lines+=("$(printf '%-10s ok=%-4s failed=%-4s FAILED (exit %s)' "$name" "$p" "$f" "$rc")")
        failed_suites+=("$name")
    else
        summary_lines+=("$(printf '%-10s ok=%-4s failed=%s' "$name" "$p" "$f")")
    fi
    return 0
}

skip_suite() {
    summary_lines+=("$(printf '%-10s skipped (%s)' "$1" "$2")")
    say "suite $1: skipped ($2)"
}


# Pre-flight: pg_regress stops at the first test of REGRESS without its sql/ or expected/ file, hiding
# the results of the tests after it, so name every such test up front.
# shellcheck disable=SC2016  # $($*) is for make
make_var() {
    as_pg make -s --no-print-directory -C "$src" --eval='ec-print-%: ; @echo $($*)' "ec-print-$1" \
        PG_CONFIG="$pgc" 2>/dev/null
}
regress_tests=$(make_var REGRESS) || die "could not read REGRESS from the Makefile"
isolation_tests=$(make_var ISOLATION) || die "could not read ISOLATION from the Makefile"
tap_tests=$(make_var PROVE_TESTS) || die "could not read PROVE_TESTS from the Makefile"
count_words() { wc -w <<<"$1"; }
missing_files=()
for t in $regress_tests; do
    [[ -f $src/sql/$t.sql ]] || missing_files+=("sql/$t.sql")
    [[ -f $src/expected/$t.out ]] || missing_files+=("expected/$t.out")
done
for t in $isolation_tests; do
    [[ -f $src/test/expected/$t.out ]] || missing_files+=("test/expected/$t.out")
done
if ((${#missing_files[@]})); then
    warn "test files named in the Makefile but missing (pg_regress stops at the first one): ${missing_files[*]}"
fi

declare -A suite_tests=([regress]=$regress_tests [isolation]=$isolation_tests [tap]=$tap_tests)
declare -A suite_counter=([regress]=count_regress [isolation]=count_regress [tap]=count_prove)
declare -A suite_none=([regress]="REGRESS is empty" [isolation]="no test/specs/*.spec" [tap]="no test/t/*.pl")
for suite in $EC_SUITES; do
    case $suite in
        regress|isolation|tap)
            if [[ -n ${suite_tests[$suite]} ]]; then
                run_suite "$suite" "${suite_counter[$suite]}" "$(count_words "${suite_tests[$suite]}")"
            else
                skip_suite "$suite" "${suite_none[$suite]}"
            fi ;;
        sanitize)
            echo
            say "suite sanitize: scripts/sanitize.sh (ASan+UBSan build of the extension; regress + isolation)"
            if timeout -k 30 "$EC_SUITE_TIMEOUT" bash "$EC_ROOT/scripts/sanitize.sh" 2>&1 | tee "$work/sanitize.log"; then
                summary_lines+=("$(printf '%-10s ok (no sanitizer reports)' sanitize)")
                total_pass=$((total_pass + 1))
            else
                summary_lines+=("$(printf '%-10s FAILED (sanitizer reports or failures above)' sanitize)")
                failed_suites+=(sanitize)
                total_fail=$((total_fail + 1))
            fi ;;
        *) die "unknown suite in EC_SUITES: $suite" ;;
    esac
done

print_tail() {  # print_tail FILE LINES
    echo
    echo "-------- $1 (last $2 lines) --------"
    tail -n "$2" "$1"
}

if ((total_fail > 0)); then
    echo
    echo "================ failure details ================"
    print_diffs "$src" "$EC_DIFF_LINES" || echo "(no regression.diffs)"
    # server logs of pg_regress's temporary instances (log/ and output_iso/log/): crashes (signal 11,
    # failed assertions) show up there
    if [[ " ${failed_suites[*]} " == *" regress "* && -f $src/log/postmaster.log ]]; then
        print_tail "$src/log/postmaster.log" 60
    fi
    if [[ " ${failed_suites[*]} " == *" isolation "* && -f $src/output_iso/log/postmaster.log ]]; then
        print_tail "$src/output_iso/log/postmaster.log" 60
    fi
    # TAP: prove's per-test log and the nodes' server logs, of the failing test files only (all of them
    # if prove did not say which failed)
    if [[ -d $src/tmp_check/log ]]; then
        mapfile -t tap_failed < <(awk '/^Test Summary Report/ { r = 1; next }
                                      r && /^[^ ].* \(Wstat: / { n = $1; sub(/.*\//, "", n); sub(/\.pl$/, "", n); print n }' \
                                  "$work/tap.log" 2>/dev/null)
        for f in "$src"/tmp_check/log/*; do
            [[ -f $f ]] || continue
            b=$(basename "$f")
            show=$(( ${#tap_failed[@]} == 0 ))
            for t in "${tap_failed[@]}"; do
                if [[ $b == "regress_log_$t" || $b == "${t}_"*.log ]]; then show=1; fi
            done
            if ((show)); then print_tail "$f" 80; fi
        done
        # Last, where a CI log's tail shows it: each failed assertion with the diagnostics after it.
        echo
        echo "================ failed TAP assertions ================"
        for f in "$src"/tmp_check/log/regress_log_*; do
            [[ -f $f ]] || continue
            awk -v name="$(basename "$f")" '
                / not ok [0-9]+ / { print name ": " $0; n = 12; next }
                n > 0 && /^(\[[^]]*\]\([^)]*\) ?)?(#|$)/ { if ($0 ~ /#/) { print "    " $0; n-- }; next }
                { n = 0 }' "$f" | cut -c1-400 | head -n 60
        done
    fi
fi

finish
