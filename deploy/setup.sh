#!/usr/bin/env bash
# Prepare this checkout to run or test clinic-notify on a fresh Debian machine (python3 >= 3.11,
# Java 17, Maven). Safe to run again: each step is skipped when already done.
#   deploy/setup.sh                  venv + package (with test and lint tools), Kafka jars
#   deploy/setup.sh --with-postgres  also Debian's PostgreSQL binaries (the tests need them)
#   deploy/setup.sh --with-browser   also Debian's chromium and chromium-driver (the browser tests)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
VENV="$REPO/.venv"
# The install is redone only when what it was made from changes.
STAMP="$VENV/.clinic-notify-install"

with_postgres=false
with_browser=false

log() { echo "setup.sh: $*" >&2; }
die() { log "$*"; exit 1; }

while (($#)); do
    case "$1" in
        --with-postgres) with_postgres=true; shift ;;
        --with-browser) with_browser=true; shift ;;
        -h | --help) sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument: $1 (usage: setup.sh [--with-postgres] [--with-browser])" ;;
    esac
done

find_python() {
    local candidate
    for candidate in "${PYTHON:-}" python3.11 python3; do
        [[ -n "$candidate" ]] && command -v "$candidate" >/dev/null || continue
        if "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
            echo "$candidate"
            return 0
        fi
    done
    die "no Python >= 3.11 found (set PYTHON=/path/to/python3.11)"
}

create_venv() {
    [[ -x "$VENV/bin/python" ]] && return 0
    local python
    python="$(find_python)"
    log "creating $VENV with $python"
    if ! "$python" -m venv "$VENV" 2>/dev/null; then
        # Debian splits venv/ensurepip into its own package.
        rm -rf "$VENV"
        ((EUID == 0)) && command -v apt-get >/dev/null \
            || die "'$python -m venv' failed; install python3-venv"
        log "installing Debian's python3-venv"
        apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >&2
        "$python" -m venv "$VENV"
    fi
}

install_package() {
    local wanted
    wanted="$(cat "$REPO/pyproject.toml" <("$VENV/bin/python" -VV) | sha256sum | cut -d' ' -f1)"
    if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$wanted" ]]; then
        return 0
    fi
    log "installing clinic-notify with its test and lint dependencies into $VENV"
    export PIP_DISABLE_PIP_VERSION_CHECK=1
    "$VENV/bin/python" -m pip install -q -e "$REPO[test,lint]" >&2
    echo "$wanted" >"$STAMP"
}

install_browser() {
    [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]] && return 0
    ((EUID == 0)) && command -v apt-get >/dev/null || die "install Debian's chromium and chromium-driver"
    log "installing Debian's chromium and chromium-driver"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >&2
}

create_venv
install_package
bash "$HERE/kafka/kafka.sh" fetch
if $with_postgres; then
    bash "$HERE/postgres/postgres.sh" install
fi
if $with_browser; then
    install_browser
fi
log "ready"
