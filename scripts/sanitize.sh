#!/usr/bin/env bash
# scripts/sanitize.sh: the test suites under AddressSanitizer + UndefinedBehaviorSanitizer (`make sanitize`).
#
#   1. install missing packages (as root; as non-root only check they are there), plus the sanitizer
#      runtimes (libasan8, libubsan1: normally there already, gcc depends on them)
#   2. make a private, relocated copy of the PostgreSQL installation (bindir, pkglibdir, sharedir and the
#      headers, keeping their layout under $work/pg/...; PostgreSQL finds its files relative to its own
#      binaries, so the copy's pg_config and postgres use the copy).  The system PostgreSQL is never
#      written to: whatever uses the extension installed there keeps working.
#   3. copy the checkout to a temp dir owned by the postgres OS user, build it there with
#      COPT="-fsanitize=address,undefined ..." (no LLVM bitcode) and `make install` it into the copy
#   4. run the suites as postgres against the copy (make installcheck PG_CONFIG=<copy>, each suite on its
#      own temporary instance, as scripts/test.sh does) with the ASan runtime in LD_PRELOAD: the postgres
#      binary is not instrumented, only the extension is, and the runtime must be loaded first
#   5. fail if a suite fails, if any sanitizer report was written (ASan: one file per reporting process
#      in $work/reports; UBSan: in the server logs, see below), or if a server process of the regress or
#      isolation instances crashed; print the reports, the diffs and the server logs
#
# What it catches: what the extension's own (instrumented) code does wrong with stack and global memory,
# with malloc'd memory and with palloc'd chunks of more than 8 kB (those get a malloc block of their own:
# a write past the end or a use after pfree is reported), plus undefined behaviour (out-of-bounds array
# indexes, misaligned or NULL accesses, bad shifts, invalid bool/enum loads, ...; signed overflow is not
# undefined under PostgreSQL's -fwrapv).  What it cannot catch: overflows and uses after free of small
# palloc'd chunks.  The stock postgres binary carves those out of bigger malloc'd blocks and keeps freed
# chunks on free lists; only a PostgreSQL built with USE_VALGRIND (under valgrind) or with memory-context
# poisoning could see them.
#
# Knobs: EC_SAN_SUITES="regress isolation" (add tap for the TAP suite; slow), EC_SUITE_TIMEOUT=1800
# (seconds per suite), EC_SAN_REPORTS=5 (distinct reports printed in full), EC_DIFF_LINES=300,
# EC_KEEP_TMP=1, PG_CONFIG (the PostgreSQL to copy), EC_SAN_COPT (compiler flags), EC_SAN_SRC (the tree
# to test instead of this checkout, e.g. a scratch copy with a planted bug).
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ec_setup_traps

EC_SAN_SUITES=${EC_SAN_SUITES:-regress isolation}
EC_SUITE_TIMEOUT=${EC_SUITE_TIMEOUT:-1800}
EC_SAN_REPORTS=${EC_SAN_REPORTS:-5}
EC_DIFF_LINES=${EC_DIFF_LINES:-300}
EC_SAN_SRC=${EC_SAN_SRC:-$EC_ROOT}
# -O1: better stack traces than -O2 and still fast; -fno-sanitize-recover=all: undefined behaviour aborts
# the process like an ASan report does, so it cannot go unnoticed
EC_SAN_COPT=${EC_SAN_COPT:--fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -O1 -g}

# same deterministic environment as scripts/test.sh
test_env
unset LD_PRELOAD ASAN_OPTIONS UBSAN_OPTIONS

started=$SECONDS
ensure_packages
if is_root; then
    san_missing=()
    for p in libasan8 libubsan1; do pkg_installed "$p" || san_missing+=("$p"); done
    if ((${#san_missing[@]})); then
        say "installing ${san_missing[*]}"
        apt_install "${san_missing[@]}"
    fi
fi
sys_pgc=$(pg_config_cmd) || die "pg_config not found"

make_workdir sanitize
work=$EC_WORKDIR
cd "$work"

# ---- 2. private relocated copy of PostgreSQL ---------------------------------------------------------------
pg=$work/pg
say "copying $("$sys_pgc" --version) ($sys_pgc) to $pg"
for opt in --bindir --pkglibdir --sharedir --pkgincludedir; do
    d=$("$sys_pgc" "$opt") || die "$sys_pgc $opt failed"
    [[ -d $d ]] || die "$sys_pgc $opt: $d is not a directory"
    [[ -e $pg$d ]] && continue          # already copied as part of another one
    mkdir -p "$(dirname "$pg$d")"
    cp -a "$d" "$pg$d" || die "could not copy $d"
done
pgc=$pg$("$sys_pgc" --bindir)/pg_config
# the copy must really be self-contained: every directory the build, the install and the servers use
for opt in --bindir --pkglibdir --sharedir --includedir-server --pgxs; do
    want=$pg$("$sys_pgc" "$opt")
    got=$("$pgc" "$opt")
    [[ $got == "$want" ]] || die "the copied PostgreSQL is not relocatable: $pgc $opt says $got, expected $want"
done
# drop whatever version of the extension the system installation had: only the sanitized build may be found
rm -rf "$("$pgc" --pkglibdir)"/expand_contract.so "$("$pgc" --sharedir)"/extension/expand_contract[.-]* \
       "$("$pgc" --pkglibdir)"/bitcode/expand_contract "$("$pgc" --pkglibdir)"/bitcode/expand_contract.index.bc

# ---- 3. sanitized build ------------------------------------------------------------------------------------
src=$work/src
say "copying $EC_SAN_SRC to $src"
copy_tree "$EC_SAN_SRC" "$src" || die "could not copy the source tree"
make_args=(PG_CONFIG="$pgc" COPT="$EC_SAN_COPT" with_llvm=no)
say "building with COPT=$EC_SAN_COPT against $pgc"
as_pg make -C "$src" -j"$(nproc 2>/dev/null || echo 2)" "${make_args[@]}" || die "sanitized build failed"
make -C "$src" "${make_args[@]}" install >/dev/null || die "make install into $pg failed"
so=$("$pgc" --pkglibdir)/expand_contract.so
asan_lib=$(ldd "$so" | awk '$1 ~ /^libasan\.so/ { print $3; exit }')
[[ -n $asan_lib && -f $asan_lib ]] || die "$so is not linked against libasan (ldd: $(ldd "$so" | tr '\n' ' '))"
say "installed $so (ASan runtime $asan_lib)"

# A small library preloaded after the ASan runtime, against a startup deadlock and lost UBSAN_OPTIONS
# of the sanitizer runtimes with an uninstrumented postgres: see scripts/sanitizer_preload.c.
preload=$work/ec_sanitizer_preload.so
gcc -shared -fPIC -O2 -Wall -o "$preload" "$EC_ROOT/scripts/sanitizer_preload.c" || die "could not build $preload"
chmod 755 "$preload"

# ---- 4. the suites -----------------------------------------------------------------------------------------
reports=$work/reports
as_pg mkdir "$reports"
# ASan: detect_leaks=0 (postgres keeps memory until exit on purpose and exits without freeing it);
# abort_on_error=1: a report kills the process with SIGABRT, so the postmaster restarts the cluster and
# the running test fails too; log_path: one file per reporting process, backends and background workers
# alike.  UBSan: same; its reports go to stderr, i.e. the server log (its log_path is taken over by the
# ASan runtime, which is loaded first), and are collected from there.
san_env=(
    LD_PRELOAD="$asan_lib $preload"
    ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:disable_coredump=1:log_path=$reports/asan"
    UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:abort_on_error=1:disable_coredump=1"
)
# gcc 12's ASan cannot map its shadow memory with more than 28 bits of mmap randomisation (kernels that
# set vm.mmap_rnd_bits=32, e.g. Ubuntu 23.10+ hosts): run the suites without address randomisation there.
no_aslr=()
if [[ $(cat /proc/sys/vm/mmap_rnd_bits 2>/dev/null || echo 28) -gt 28 ]]; then
    say "vm.mmap_rnd_bits > 28: running the suites under setarch -R (no address randomisation)"
    no_aslr=(setarch "$(uname -m)" -R)
fi
# smoke test: the server binary starts under the preloaded runtime (it hangs without the workaround)
if ! out=$(as_pg env "${san_env[@]}" "${no_aslr[@]}" timeout 60 "$("$pgc" --bindir)/postgres" -V 2>&1); then
    die "postgres -V does not run with LD_PRELOAD=$asan_lib $preload: $out"
fi

declare -A suite_rc=()
suite_list=()
EC_SUITE_WRAP=(env "${san_env[@]}" "${no_aslr[@]}")
for suite in $EC_SAN_SUITES; do
    overrides=$(suite_overrides "$suite") || die "unknown suite in EC_SAN_SUITES: $suite"
    rc=0 t0=$SECONDS
    suite_list+=("$suite")
    echo
    say "suite $suite (sanitized): make installcheck $overrides"
    # shellcheck disable=SC2086  # the overrides are words
    installcheck "$src" "$work/$suite.log" "$EC_SUITE_TIMEOUT" "${make_args[@]}" $overrides || rc=$?
    suite_rc[$suite]=$rc
    say "suite $suite: exit $rc, $((SECONDS - t0)) s"
done

# ---- 5. verdict --------------------------------------------------------------------------------------------
failed=()
for s in "${suite_list[@]}"; do
    ((suite_rc[$s] == 0)) || failed+=("suite $s (exit ${suite_rc[$s]})")
done

# ASan reports: one file per process
mapfile -t report_files < <(find "$reports" -type f | sort)
((${#report_files[@]} == 0)) || failed+=("${#report_files[@]} ASan report file(s)")

# The server logs: UBSan reports ("file:line:col: runtime error: ...") and anything a sanitizer printed to
# stderr, in every suite's logs; crashes in the regress and isolation instances (the TAP tests kill
# servers on purpose), which need not fail a test when a background worker is what crashed.
server_logs=()
crash_logs=()
for f in "$src/log/postmaster.log" "$src/output_iso/log/postmaster.log"; do
    if [[ -f $f ]]; then server_logs+=("$f"); crash_logs+=("$f"); fi
done
if [[ -d $src/tmp_check/log ]]; then
    while IFS= read -r -d '' f; do server_logs+=("$f"); done < <(find "$src/tmp_check/log" -name '*.log' -print0 | sort -z)
fi
log_reports=
crash_lines=
n_log_reports=0
if ((${#server_logs[@]})); then
    n_log_reports=$(cat "${server_logs[@]}" | grep -c -E 'runtime error: |ERROR: [A-Za-z]+Sanitizer' || true)
fi
if ((n_log_reports > 0)); then
    failed+=("$n_log_reports sanitizer report(s) in the server logs")
    # "count  report line" for each distinct report (addresses masked), then the first EC_SAN_REPORTS of
    # them in full: the report line and its stack trace
    log_reports=$(awk -v max="$EC_SAN_REPORTS" '
        function flush() {
            if (blk != "") { if (!(key in cnt)) { order[++nk] = key; first[key] = blk } cnt[key]++ }
            blk = ""; inblk = 0
        }
        /runtime error: |ERROR: [A-Za-z]+Sanitizer/ {
            flush(); key = $0; sub(/^==[0-9]+==/, "", key); gsub(/0x[0-9a-f]+/, "0x...", key)
            blk = "(" FILENAME ")\n" $0 "\n"; inblk = 1; next
        }
        inblk && /^ +#[0-9]+ |^(SUMMARY|READ|WRITE|Address|0x)/ { blk = blk $0 "\n"; next }
        inblk { flush() }
        END {
            flush()
            for (i = 1; i <= nk; i++) printf "%6d  %s\n", cnt[order[i]], order[i]
            for (i = 1; i <= nk && i <= max; i++) printf "\n%s", first[order[i]]
            if (nk > max) printf "\n[... %d more distinct reports in the server logs ...]\n", nk - max
        }' "${server_logs[@]}")
fi
if ((${#crash_logs[@]})); then
    crash_lines=$(grep -H -E 'terminated by signal|exited with exit code [^01]|terminating any other active server processes' \
                  "${crash_logs[@]}" || true)
fi
[[ -z $crash_lines ]] || failed+=("server processes crashed")

# an ASan report's one-line key: its SUMMARY line, or for a report cut short (a process killed while it
# wrote its report: the postmaster stops every server process after a crash) its first line
report_key() {
    grep -m1 '^SUMMARY:' "$1" ||
        { grep -m1 -E 'ERROR: [A-Za-z]+Sanitizer' "$1" | sed -E 's/^==[0-9]+==//; s/ on address.*//; s/$/ (report cut short)/'; } ||
        echo "(empty report file)"
}
if ((${#report_files[@]})); then
    echo
    echo "================ ASan reports: ${#report_files[@]} file(s), one per process ================"
    for f in "${report_files[@]}"; do report_key "$f"; done | sort | uniq -c | sort -rn
    declare -A seen=()
    shown=0
    for f in "${report_files[@]}"; do
        grep -q '^SUMMARY:' "$f" || continue        # complete reports only
        key=$(report_key "$f")
        [[ -n ${seen[$key]:-} ]] && continue
        seen[$key]=1
        if ((shown >= EC_SAN_REPORTS)); then
            echo "[... more distinct reports in $reports (EC_KEEP_TMP=1 keeps them) ...]"
            break
        fi
        shown=$((shown + 1))
        echo
        echo "-------- ${f#"$work"/} --------"
        cat "$f"
    done
fi
if [[ -n $log_reports ]]; then
    echo
    echo "================ sanitizer reports in the server logs: $n_log_reports ================"
    printf '%s\n' "$log_reports"
fi
if [[ -n $crash_lines ]]; then
    echo
    echo "================ crashed server processes ================"
    printf '%s\n' "$crash_lines" | head -n 100
fi
if ((${#failed[@]})); then
    print_diffs "$src" "$EC_DIFF_LINES" || true
    for f in "${crash_logs[@]}"; do
        echo
        echo "-------- ${f#"$src"/} (last 60 lines) --------"
        tail -n 60 "$f"
    done
fi

echo
echo "================ sanitize summary ================"
for s in "${suite_list[@]}"; do
    if ((suite_rc[$s] == 0)); then echo "  $s: ok"; else echo "  $s: FAILED (exit ${suite_rc[$s]})"; fi
done
echo "  ASan report files: ${#report_files[@]}"
echo "  sanitizer reports in the server logs: $n_log_reports"
echo "  time: $((SECONDS - started)) s"
if ((${#failed[@]})); then
    echo "sanitize: FAILED: $(printf '%s; ' "${failed[@]}" | sed 's/; $//')"
    exit 1
fi
echo "sanitize: passed, zero sanitizer reports"
