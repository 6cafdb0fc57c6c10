# shellcheck shell=bash
# scripts/lib.sh: helpers shared by scripts/test.sh and scripts/demo.sh.  Source it, do not run it.
#
#   ensure_packages          install what is missing (Debian, as root); as non-root only check
#   pg_config_cmd, pg_bindir the PostgreSQL to build against (PG_CONFIG, default PostgreSQL 15)
#   as_pg CMD...             run CMD as the PostgreSQL OS user (postgres when we are root, else ourselves)
#   make_workdir NAME        a fresh temp dir (EC_WORKDIR) owned by that user, removed on exit
#   copy_tree SRC DST        copy a checkout without .git and build products, owned by that user
#   build_and_install DIR    make (as the owner of DIR) && make install (as root)
#   pg_cluster_start DIR ... / pg_cluster_stop   a throwaway cluster in DIR, unix socket only
#   ec_setup_traps           EXIT/INT/TERM trap: stop the cluster, kill background jobs, remove temp dirs
#
# Environment knobs: PG_CONFIG (path or name of pg_config), EC_PG_MAJOR (15), EC_KEEP_TMP=1 (keep temp
# dirs for debugging), EC_SKIP_INSTALL=1 (do not run make install; test the copy already installed).

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

say()  { printf '==> %s\n' "$*"; }
warn() { printf 'WARNING: %s\n' "$*" >&2; }
die()  { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

is_root() { [[ $(id -u) -eq 0 ]]; }

# The OS user that owns clusters and runs pg_regress: PostgreSQL refuses to run as root.
if is_root; then EC_PG_USER=postgres; else EC_PG_USER=$(id -un); fi

as_pg() {
    if is_root; then
        runuser -u "$EC_PG_USER" -- "$@"
    else
        "$@"
    fi
}

pg_config_cmd() {
    local c
    c=$(command -v "$PG_CONFIG" 2>/dev/null) || { echo "pg_config not found: PG_CONFIG=$PG_CONFIG" >&2; return 1; }
    printf '%s\n' "$c"
}

pg_bindir() {
    local c
    c=$(pg_config_cmd) || return 1
    "$c" --bindir
}

pkg_installed() {
    [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == "install ok installed" ]]
}

# Install what the build and the suites need.  postgresql-contrib-15 does not exist in bookworm (contrib is
# part of postgresql-15; postgresql-contrib is a virtual/metapackage), and the extension needs no contrib
# module, so it is not listed.  postgresql-server-dev-15 pulls in clang/llvm (PGXS builds bitcode too).
ensure_packages() {
    if ! is_root; then
        ensure_tools_present
        return
    fi
    if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
        die "ensure_packages: this needs Debian/Ubuntu (dpkg, apt-get); install PostgreSQL $EC_PG_MAJOR and its server dev files by hand"
    fi
    # postgresql-15-repack: test/t/014_compact.pl runs pg_repack on a migrated table.
    # pgbouncer: test/t/020_pgbouncer.pl runs clients through it in transaction pooling mode (it starts
    # its own pgbouncer; the package's service is not used).
    local wanted=(postgresql-common "postgresql-$EC_PG_MAJOR" "postgresql-server-dev-$EC_PG_MAJOR"
                  "postgresql-$EC_PG_MAJOR-repack" pgbouncer libipc-run-perl make gcc libc6-dev)
    local missing=() p
    for p in "${wanted[@]}"; do
        pkg_installed "$p" || missing+=("$p")
    done
    if ((${#missing[@]})); then
        say "installing missing packages: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        local apt=(apt-get -y -q -o Dpkg::Use-Pty=0 install --no-install-recommends)
        apt-get update -q || die "apt-get update failed"
        if ! pkg_installed "postgresql-$EC_PG_MAJOR"; then
            # Install postgresql-common first and tell it not to create (and start) a "main" cluster when
            # postgresql-15 is installed: every cluster we use is a throwaway one.
            pkg_installed postgresql-common || "${apt[@]}" postgresql-common ||
                die "apt-get install postgresql-common failed"
            local conf=/etc/postgresql-common/createcluster.conf
            if [[ -f $conf ]]; then
                if grep -qE '^[#[:space:]]*create_main_cluster' "$conf"; then
                    sed -i -E 's/^[#[:space:]]*create_main_cluster.*/create_main_cluster = false/' "$conf"
                else
                    echo 'create_main_cluster = false' >>"$conf"
                fi
            fi
        fi
        # Packages with a service (pgbouncer) must not start it: every server we run is a throwaway
        # one on its own port.  policy-rc.d answering 101 ("action forbidden") is how Debian says so.
        local policy=/usr/sbin/policy-rc.d policy_ours=0
        if [[ ! -e $policy ]]; then
            printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && policy_ours=1
        fi
        local rc=0
        "${apt[@]}" "${missing[@]}" || rc=$?
        ((policy_ours)) && rm -f "$policy"
        ((rc == 0)) || die "apt-get install ${missing[*]} failed"
    fi
    ensure_pg_user
    ensure_tools_present
}

# postgresql-common creates the postgres user; create it ourselves if it is somehow missing.
ensure_pg_user() {
    is_root || return 0
    id -u "$EC_PG_USER" >/dev/null 2>&1 && return 0
    say "creating OS user $EC_PG_USER"
    useradd --system --user-group --home-dir /var/lib/postgresql --create-home --shell /bin/bash "$EC_PG_USER" ||
        die "could not create user $EC_PG_USER"
}

ensure_tools_present() {
    local missing=() c
    pg_config_cmd >/dev/null 2>&1 || missing+=("pg_config ($PG_CONFIG; package postgresql-server-dev-$EC_PG_MAJOR)")
    for c in make gcc perl prove runuser timeout tar; do
        [[ $c == runuser ]] && ! is_root && continue
        command -v "$c" >/dev/null 2>&1 || missing+=("$c")
    done
    perl -MIPC::Run -e 1 >/dev/null 2>&1 || missing+=("perl module IPC::Run (libipc-run-perl)")
    if ((${#missing[@]})); then
        local m
        printf 'ERROR: missing: %s\n' "${missing[@]}" >&2
        if is_root; then m="even after apt-get install"; else m="run as root to have them installed"; fi
        die "required tools are missing ($m)"
    fi
    return 0
}

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
            if [[ ! -w $d ]]; then
                echo "ERROR: cannot install: $d is not writable by $(id -un)." >&2
                echo "       Run this as root (it then also installs missing packages and runs the suites" >&2
                echo "       as the postgres user), or install first as root (make install) and rerun" >&2
                echo "       with EC_SKIP_INSTALL=1, or use a PostgreSQL you own via PG_CONFIG=..." >&2
                return 1
            fi
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
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            printf '%s\n' "$p"
            return 0
        fi
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
    local bindir port sock line
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
        cat "$dir/initdb.log" >&2
        die "initdb failed"
    fi
    for line in "$@"; do
        printf '%s\n' "$line" | as_pg tee -a "$EC_PGDATA/postgresql.conf" >/dev/null
    done
    say "starting PostgreSQL on unix socket $sock, port $port"
    if ! as_pg "$bindir/pg_ctl" -D "$EC_PGDATA" -l "$EC_PG_LOG" -w -t 60 \
            -o "-p $port -k '$sock' -c listen_addresses=''" start >/dev/null; then
        tail -n 50 "$EC_PG_LOG" >&2 || true
        die "could not start the cluster"
    fi
    export PGHOST=$sock PGPORT=$port PGUSER=postgres PGDATABASE=postgres
    unset PGHOSTADDR PGSERVICE PGOPTIONS PGPASSWORD
}

pg_cluster_stop() {
    [[ -n $EC_PGDATA && -f $EC_PGDATA/postmaster.pid ]] || return 0
    local bindir
    bindir=$(pg_bindir) || return 0
    say "stopping the cluster"
    as_pg "$bindir/pg_ctl" -D "$EC_PGDATA" -m fast -w -t 30 stop >/dev/null 2>&1 ||
        as_pg "$bindir/pg_ctl" -D "$EC_PGDATA" -m immediate -w -t 30 stop >/dev/null 2>&1 ||
        warn "could not stop the cluster in $EC_PGDATA"
}

# Run a command in the background and have the exit trap kill it.  Sets EC_LAST_PID.
run_bg() {
    "$@" &
    EC_LAST_PID=$!
    EC_BG_PIDS+=("$EC_LAST_PID")
}

ec_cleanup() {
    local rc=$? p d
    trap - EXIT INT TERM
    set +e
    for p in "${EC_BG_PIDS[@]}"; do
        kill -0 "$p" 2>/dev/null && kill "$p" 2>/dev/null
    done
    pg_cluster_stop
    for p in "${EC_BG_PIDS[@]}"; do
        wait "$p" 2>/dev/null
    done
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

ec_setup_traps() {
    trap ec_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}
