#!/usr/bin/env bash
# Run a real PostgreSQL server in our own data dir on loopback, no Docker, using Debian's binaries.
#   postgres.sh install
#   postgres.sh start  [--port 55432] [--data-dir .run/postgres] [--user clinic] [--password clinic]
#                      [--database clinic_notify] [--fast]
#   postgres.sh stop   [--data-dir .run/postgres]
#   postgres.sh status [--data-dir .run/postgres]
# Results go to stdout (dsn=...); progress and errors go to stderr.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

port=55432
data_dir="$REPO/.run/postgres"
user=clinic
password=clinic
database=clinic_notify
fast=false

log() { echo "postgres.sh: $*" >&2; }
die() { log "$*"; exit 1; }

parse_args() {
    while (($#)); do
        case "$1" in
            --port) port="$2"; shift 2 ;;
            --data-dir) data_dir="$2"; shift 2 ;;
            --user) user="$2"; shift 2 ;;
            --password) password="$2"; shift 2 ;;
            --database) database="$2"; shift 2 ;;
            --fast) fast=true; shift ;;
            *) die "unknown argument: $1" ;;
        esac
    done
    data_dir="$(realpath -m "$data_dir")"
    pgdata="$data_dir/pgdata"
    socket_dir="$data_dir/socket"
}

# Newest installed major version; PG_BIN overrides.
pg_bin() {
    if [[ -n "${PG_BIN:-}" ]]; then echo "$PG_BIN"; return; fi
    local initdb
    initdb="$(ls -d /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n 1)"
    [[ -n "$initdb" ]] || die "no PostgreSQL binaries under /usr/lib/postgresql; run: postgres.sh install"
    dirname "$initdb"
}

install() {
    if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then return 0; fi
    log "installing Debian's postgresql package"
    apt-get update -qq >&2
    # The package may create and start its own cluster on 5432; we never use it.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
}

# PostgreSQL refuses to run as root, so as root everything runs as the OS user postgres.
as_owner() {
    if ((EUID == 0)); then runuser -u postgres -- "$@"; else "$@"; fi
}

# The server user must be able to reach its data dir: open (traverse only, o+x) any parent that
# blocks it, e.g. pytest's 0700 /tmp/pytest-of-root.
grant_traverse() {
    local dir
    dir="$(dirname "$data_dir")"
    while [[ "$dir" != / ]]; do
        if ! runuser -u postgres -- test -x "$dir"; then
            chmod o+x "$dir"
            log "opened $dir for traversal (o+x) so user postgres can reach $data_dir"
        fi
        dir="$(dirname "$dir")"
    done
}

prepare_dirs() {
    mkdir -p "$data_dir"
    if ((EUID == 0)); then
        id postgres >/dev/null 2>&1 || die "OS user postgres is missing; run: postgres.sh install"
        grant_traverse
        chown postgres:postgres "$data_dir"
    fi
    as_owner mkdir -p "$socket_dir"
    as_owner chmod 700 "$data_dir" "$socket_dir"
}

init_cluster() {
    [[ -f "$pgdata/PG_VERSION" ]] && return 0
    log "initdb $pgdata"
    as_owner "$bin/initdb" -D "$pgdata" -U postgres -E UTF8 --no-locale \
        --auth-local=trust --auth-host=scram-sha-256 >/dev/null
    echo "include_if_exists = 'clinic-notify.conf'" | as_owner tee -a "$pgdata/postgresql.conf" >/dev/null
}

# Rewritten on every start so --port and --fast always take effect.
write_settings() {
    {
        echo "listen_addresses = '127.0.0.1'"
        echo "port = $port"
        echo "unix_socket_directories = '$socket_dir'"
        if $fast; then
            # Test speed only: a crash can lose or corrupt data.
            echo "fsync = off"
            echo "synchronous_commit = off"
            echo "full_page_writes = off"
        fi
    } | as_owner tee "$pgdata/clinic-notify.conf" >/dev/null
}

is_running() { [[ -f "$pgdata/PG_VERSION" ]] && as_owner "$bin/pg_ctl" status -D "$pgdata" >/dev/null 2>&1; }

ensure_role_and_database() {
    as_owner "$bin/psql" -h "$socket_dir" -p "$port" -U postgres -d postgres -X -q -v ON_ERROR_STOP=1 \
        -v user="$user" -v password="$password" -v database="$database" <<'SQL'
SELECT format('CREATE ROLE %I', :'user') WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'user')
\gexec
SELECT format('ALTER ROLE %I LOGIN CREATEDB PASSWORD %L', :'user', :'password')
\gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'database', :'user')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'database')
\gexec
SQL
}

start() {
    parse_args "$@"
    local began=$EPOCHREALTIME
    bin="$(pg_bin)"
    if is_running; then die "already running (data dir $data_dir); stop it first"; fi
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && die "port $port on 127.0.0.1 is already in use"
    prepare_dirs
    init_cluster
    write_settings
    as_owner "$bin/pg_ctl" start -D "$pgdata" -l "$data_dir/postgres.log" -w -t 60 >/dev/null \
        || { tail -n 20 "$data_dir/postgres.log" >&2; die "server did not start"; }
    ensure_role_and_database
    log "started in $(awk -v a="$began" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')s (data dir $data_dir)"
    echo "dsn=postgresql://$user:$password@127.0.0.1:$port/$database"
}

stop() {
    parse_args "$@"
    bin="$(pg_bin)"
    if ! is_running; then log "not running"; return 0; fi
    as_owner "$bin/pg_ctl" stop -D "$pgdata" -m fast -w -t 30 >/dev/null
    log "stopped"
}

status() {
    parse_args "$@"
    bin="$(pg_bin)"
    if is_running; then
        echo "running $(grep '^port' "$pgdata/clinic-notify.conf")"
    else
        echo "stopped"
        return 3
    fi
}

case "${1:-}" in
    install) install ;;
    start | stop | status) cmd="$1"; shift; "$cmd" "$@" ;;
    *) die "usage: postgres.sh install | start [--port P] [--data-dir D] [--user U --password W --database N] [--fast] | stop [--data-dir D] | status [--data-dir D]" ;;
esac
