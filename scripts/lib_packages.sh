# shellcheck shell=bash
# scripts/lib_packages.sh: what the scripts need installed, installed (Debian, as root) or checked.
# Sourced by scripts/lib.sh, whose helpers (say, die, is_root, pg_config_cmd, EC_PG_MAJOR, EC_PG_USER)
# it uses; source lib.sh, not this file.
#
#   ensure_packages       install what the build and the suites need (as non-root: only check)
#   apt_install PKG...    apt-get install, updating the package lists once if needed
#   pkg_installed PKG     is the Debian package installed?
#   ensure_pg_user        create the PostgreSQL OS user if it is missing (as root)
#   ensure_tools_present  die if a tool the scripts run is missing

pkg_installed() { [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == "install ok installed" ]]; }

# apt_install PKG...: install Debian packages (as root), updating the package lists once if needed
apt_install() {
    export DEBIAN_FRONTEND=noninteractive
    local apt=(apt-get -y -q -o Dpkg::Use-Pty=0 install --no-install-recommends)
    "${apt[@]}" "$@" 2>/dev/null || { apt-get update -q && "${apt[@]}" "$@"; } || die "apt-get install $* failed"
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
    for p in "${wanted[@]}"; do pkg_installed "$p" || missing+=("$p"); done
    if ((${#missing[@]})); then
        say "installing missing packages: ${missing[*]}"
        if ! pkg_installed "postgresql-$EC_PG_MAJOR"; then
            # Install postgresql-common first and tell it not to create (and start) a "main" cluster when
            # postgresql-15 is installed: every cluster we use is a throwaway one.
            pkg_installed postgresql-common || apt_install postgresql-common
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
        (apt_install "${missing[@]}") || rc=$?
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
