# shellcheck shell=bash
# scripts/lib.sh: the helpers every script under scripts/ shares.  Source it, do not run it.
#
#   packages       ensure_packages (Debian, as root; as non-root only check), apt_install PKG...
#                  (scripts/lib_packages.sh, sourced here)
#   PostgreSQL     pg_config_cmd, pg_bindir (PG_CONFIG, default PostgreSQL 15); as_pg CMD... (run as the
#                  PostgreSQL OS user); build_and_install DIR; pg_cluster_start DIR [conf...] / pg_cluster_stop
#   clients        q / qv (psql: aligned / values), pgbench_as SEARCH_PATH APPNAME ARGS...
#   suites         test_env (deterministic environment), suite_overrides NAME, installcheck NAME LOG ARGS...,
#                  print_diffs DIR LINES
#   temp dirs      make_workdir NAME, copy_tree SRC DST, ec_setup_traps (stop the cluster, kill background
#                  jobs, remove temp dirs on exit), run_bg CMD...
#   output         say, warn, die, fatal (with the server log's tail), title, now_ms, epoch_now
#
# Environment knobs: PG_CONFIG (path or name of pg_config), EC_PG_MAJOR (15), EC_KEEP_TMP=1 (keep temp
# dirs for debugging), EC_SKIP_INSTALL=1 (do not run make install; test the copy already installed),
# EC_PSQL_TIMEOUT (seconds: a hard limit on each q/qv call).

# shellcheck disable=SC2034  # used by the scripts that source this file
EC_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
EC_PG_MAJOR=${EC_PG_MAJOR:-15}
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/$EC_PG_MAJOR/bin/pg_config}
EC_KEEP_TMP=${EC_KEEP_TMP:-0}
EC_SKIP_INSTALL=${EC_SKIP_INSTALL:-0}

# When started by `make test`/`make demo`, the outer make's flags (jobserver file descriptors, -n, ...)
# must not leak into the makes we run ourselves.
unset MAKEFLAGS MFLAGS MAKELEVEL MAKEOVERRIDES

EC_WORKDIRS=()
EC_WORKDIR=
EC_BG_PIDS=()
EC_PGDATA=
EC_PG_LOG=
EC_BINDIR=
EC_SUITE_WRAP=()

say()  { printf '==> %s\n' "$*"; }
warn() { printf 'WARNING: %s\n' "$*" >&2; }
die()  { printf 'ERROR: %s\n' "$*" >&2; exit 1; }
# fatal MESSAGE: die, after the last lines of the cluster's server log (it usually says why)
fatal() {
    if [[ -n $EC_PG_LOG && -f $EC_PG_LOG ]]; then
        echo "--- last lines of the server log ---" >&2
        tail -n 40 "$EC_PG_LOG" >&2
    fi
    die "$*"
}
title() { printf '\n=== %s  [+%ss]\n' "$*" "$SECONDS"; }
now_ms() { date +%s%3N; }
epoch_now() { date +%s.%6N; }

is_root() { [[ $(id -u) -eq 0 ]]; }

# The OS user that owns clusters and runs pg_regress: PostgreSQL refuses to run as root.
if is_root; then EC_PG_USER=postgres; else EC_PG_USER=$(id -un); fi

as_pg() { if is_root; then runuser -u "$EC_PG_USER" -- "$@"; else "$@"; fi; }

pg_config_cmd() {
    local c
    c=$(command -v "$PG_CONFIG" 2>/dev/null) || { echo "pg_config not found: PG_CONFIG=$PG_CONFIG" >&2; return 1; }
    printf '%s\n' "$c"
}

pg_bindir() { local c; c=$(pg_config_cmd) && "$c" --bindir; }

# ensure_packages and the checks it runs: scripts/lib_packages.sh.
# shellcheck source=scripts/lib_packages.sh
source "$EC_ROOT/scripts/lib_packages.sh"

# make_workdir NAME: a fresh temporary directory owned by the PostgreSQL OS user, mode 700, removed by the
# exit trap; its path is left in EC_WORKDIR (not printed: a $(...) subshell could not register it).
# As root it lives in /tmp (not $TMPDIR, which may be inside /root where postgres cannot go).
make_workdir() {
    local base
    if is_root; then base=/tmp; else base=${TMPDIR:-/tmp}; fi
    EC_WORKDIR=$(mktemp -d "$base/ec-$1.XXXXXX") || die "mktemp failed"
    EC_WORKDIRS+=("$EC_WORKDIR")
    if is_root; then chown "$EC_PG_USER:" "$EC_WORKDIR" || die "chown $EC_WORKDIR failed"; fi
    chmod 700 "$EC_WORKDIR"
}

# Copy a checkout to DST (created), leaving out .git and anything a previous build or test run left.
copy_tree() {
    local src=$1 dst=$2
    mkdir -p "$dst" || return 1
    tar -C "$src" -cf - \
        --exclude=./.git --exclude='*.o' --exclude='*.so' --exclude='*.bc' \
        --exclude=./results --exclude=./output_iso --exclude=./tmp_check --exclude=./tmp_regress \
        --exclude=./tmp_iso --exclude=./regression.diffs --exclude=./regression.out --exclude=./log \
        . | tar -C "$dst" -xf - || return 1
    if is_root; then chown -R "$EC_PG_USER:" "$dst" || return 1; fi
}

# Build DIR as its owner (the PostgreSQL OS user), then install it into the PostgreSQL of PG_CONFIG.
# Returns non-zero (does not exit) on failure, so callers can report it.
build_and_install() {
    local dir=$1 pgc jobs
    pgc=$(pg_config_cmd) || return 1
    jobs=$(nproc 2>/dev/null || echo 2)
    say "building $(basename "$dir") against $("$pgc" --version) ($pgc)"
    as_pg make -C "$dir" -j"$jobs" PG_CONFIG="$pgc" || { echo "ERROR: build failed" >&2; return 1; }
    if [[ $EC_SKIP_INSTALL == 1 ]]; then
        say "EC_SKIP_INSTALL=1: not installing; using the copy already installed in $("$pgc" --pkglibdir)"
        return 0
    fi
    if ! is_root; then
        local d
        for d in "$("$pgc" --pkglibdir)" "$("$pgc" --sharedir)/extension"; do
            [[ -w $d ]] && continue
            echo "ERROR: cannot install: $d is not writable by $(id -un).  Run this as root (it then also" \
                 "installs missing packages and runs the suites as postgres), or install first as root" \
                 "(make install) and rerun with EC_SKIP_INSTALL=1, or use a PostgreSQL you own (PG_CONFIG=...)" >&2
            return 1
        done
    fi
    say "installing into $("$pgc" --pkglibdir)"
    make -C "$dir" PG_CONFIG="$pgc" install >/dev/null || { echo "ERROR: make install failed" >&2; return 1; }
}

# A TCP port nothing listens on (the clusters listen on a unix socket only, but the port names the socket
# and must not clash with anything a client might reach by mistake).
free_port() {
    local p i
    for ((i = 0; i < 200; i++)); do
        p=$((20000 + RANDOM % 40000))
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { printf '%s\n' "$p"; return 0; }
    done
    die "no free port found"
}

C_UTF8_LOCALE=
if locale -a 2>/dev/null | grep -qixE 'c\.utf-?8'; then C_UTF8_LOCALE=C.UTF-8; fi

# pg_cluster_start DIR [postgresql.conf line...]
# initdb DIR/data (superuser "postgres", trust auth), start it on a unix socket in DIR/sock with
# listen_addresses='', and export PGHOST/PGPORT/PGUSER/PGDATABASE so that psql, pgbench etc. reach it.
pg_cluster_start() {
    local dir=$1; shift
    local bindir port sock
    bindir=$(pg_bindir) || die "pg_config not found"
    EC_PGDATA=$dir/data
    EC_PG_LOG=$dir/server.log
    sock=$dir/sock
    port=$(free_port)
    as_pg mkdir -p "$sock" || die "cannot create $sock"
    local locale_opts=(--no-locale)
    [[ -n $C_UTF8_LOCALE ]] && locale_opts=(--locale="$C_UTF8_LOCALE")
    say "initdb $EC_PGDATA"
    if ! as_pg "$bindir/initdb" -D "$EC_PGDATA" -U postgres -A trust -E UTF8 "${locale_opts[@]}" --no-sync \
            >"$dir/initdb.log" 2>&1; then
        cat "$dir/initdb.log" >&2; die "initdb failed"
    fi
    (($#)) && printf '%s\n' "$@" | as_pg tee -a "$EC_PGDATA/postgresql.conf" >/dev/null
    say "starting PostgreSQL on unix socket $sock, port $port"
    if ! as_pg "$bindir/pg_ctl" -D "$EC_PGDATA" -l "$EC_PG_LOG" -w -t 60 \
            -o "-p $port -k '$sock' -c listen_addresses=''" start >/dev/null; then
        tail -n 50 "$EC_PG_LOG" >&2 || true
        die "could not start the cluster"
    fi
    export PGHOST=$sock PGPORT=$port PGUSER=postgres PGDATABASE=postgres
    unset PGHOSTADDR PGSERVICE PGOPTIONS PGPASSWORD
    EC_BINDIR=$bindir
}

# q ARGS...: psql as the PostgreSQL OS user against the cluster, stopping at the first error (within
# EC_PSQL_TIMEOUT seconds when set); qv: the same, values only (unaligned, tuples only, fields separated
# by a space; a later -F wins).  psql does not interpolate :variables in -c commands: pass those on stdin.
q() {
    local t=()
    [[ -n ${EC_PSQL_TIMEOUT:-} ]] && t=(timeout -k 10 "$EC_PSQL_TIMEOUT")
    as_pg "${t[@]}" "${EC_BINDIR:-$(pg_bindir)}/psql" -X -q -v ON_ERROR_STOP=1 "$@"
}
qv() { q -At -F ' ' "$@"; }
# pgbench_as SEARCH_PATH APPNAME ARGS...: pgbench as the PostgreSQL OS user, sessions on SEARCH_PATH
pgbench_as() {
    local path=$1 app=$2
    shift 2
    as_pg env PGOPTIONS="-c search_path=$path" PGAPPNAME="$app" "${EC_BINDIR:-$(pg_bindir)}/pgbench" "$@"
}

# test_env: a deterministic environment for pg_regress and the TAP modules' temporary instances.  They
# drop LC_ALL and force LC_MESSAGES=C, and initdb takes the rest from LANG, so pin LANG (C.UTF-8: UTF8
# encoding, C collation, the same on every machine) and drop anything that would point clients elsewhere.
test_env() {
    unset LC_ALL LC_CTYPE LC_COLLATE LC_MONETARY LC_NUMERIC LC_TIME LANGUAGE
    export LANG=${C_UTF8_LOCALE:-C}
    unset PGHOST PGHOSTADDR PGPORT PGDATABASE PGUSER PGPASSWORD PGOPTIONS PGSERVICE PGDATA PGAPPNAME \
          PGSSLMODE PGTZ PGDATESTYLE PGCLIENTENCODING
}

# suite_overrides NAME: the make overrides that make `make installcheck` run one suite of the three
suite_overrides() {
    case $1 in regress) echo "ISOLATION= TAP_TESTS=" ;; isolation) echo "REGRESS= TAP_TESTS=" ;;
               tap) echo "REGRESS= ISOLATION=" ;; *) return 1 ;; esac
}

# installcheck SRC LOG TIMEOUT ARGS...: `make -C SRC installcheck ARGS...` as the PostgreSQL OS user,
# within TIMEOUT seconds, its output shown and kept in LOG; the command runs under EC_SUITE_WRAP (an
# array: env settings, setarch, ...) when set.  Returns make's status (124/137: timed out).
installcheck() {
    local src=$1 log=$2 secs=$3 rc=0
    shift 3
    as_pg "${EC_SUITE_WRAP[@]}" timeout -k 30 "$secs" make -C "$src" installcheck "$@" 2>&1 | tee "$log" || rc=$?
    if ((rc == 124 || rc == 137)); then echo "ERROR: make installcheck $* timed out after ${secs}s"; fi
    return "$rc"
}

# print_diffs DIR LINES: every regression.diffs under DIR, at most LINES lines of each; 1 if there is none
print_diffs() {
    local d n found=1
    while IFS= read -r -d '' d; do
        found=0
        echo
        echo "-------- ${d#"$1"/} --------"
        if [[ ! -s $d ]]; then echo "(empty: the suite stopped before comparing; see its output above)"; fi
        head -n "$2" "$d"
        n=$(wc -l <"$d")
        if ((n > $2)); then echo "[... $((n - $2)) more lines ...]"; fi
    done < <(find "$1" -name regression.diffs -type f -print0 2>/dev/null | sort -z)
    return "$found"
}

pg_cluster_stop() {
    [[ -n $EC_PGDATA && -f $EC_PGDATA/postmaster.pid ]] || return 0
    local bindir=${EC_BINDIR:-$(pg_bindir)} || return 0
    say "stopping the cluster"
    as_pg "$bindir/pg_ctl" -D "$EC_PGDATA" -m fast -w -t 30 stop >/dev/null 2>&1 ||
        as_pg "$bindir/pg_ctl" -D "$EC_PGDATA" -m immediate -w -t 30 stop >/dev/null 2>&1 ||
        warn "could not stop the cluster in $EC_PGDATA"
}

# Run a command in the background and have the exit trap kill it.  Sets EC_LAST_PID.
run_bg() { "$@" & EC_LAST_PID=$!; EC_BG_PIDS+=("$EC_LAST_PID"); }

ec_cleanup() {
    local rc=$? p d
    trap - EXIT INT TERM
    set +e
    for p in "${EC_BG_PIDS[@]}"; do kill -0 "$p" 2>/dev/null && kill "$p" 2>/dev/null; done
    pg_cluster_stop
    for p in "${EC_BG_PIDS[@]}"; do wait "$p" 2>/dev/null; done
    if [[ $EC_KEEP_TMP == 1 ]]; then
        ((${#EC_WORKDIRS[@]})) && say "EC_KEEP_TMP=1: keeping ${EC_WORKDIRS[*]}"
    else
        for d in "${EC_WORKDIRS[@]}"; do
            # only ever what make_workdir created
            [[ $d == */ec-*.* && -d $d ]] && rm -rf -- "$d"
        done
    fi
    exit "$rc"
}

ec_setup_traps() { trap ec_cleanup EXIT; trap 'exit 130' INT; trap 'exit 143' TERM; }
