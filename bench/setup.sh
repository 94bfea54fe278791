#!/usr/bin/env bash
# What the benchmarks need beyond the project's test setup: Debian's redis-server (the peer's broker)
# and wrk (the HTTP stack's ceiling), and the `bench` extra (Celery with Redis) in the project's venv.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v wrk >/dev/null || missing+=(wrk)
if ((${#missing[@]})); then
    ((EUID == 0)) && command -v apt-get >/dev/null || { echo "install ${missing[*]} (Debian packages)" >&2; exit 1; }
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
fi
"$REPO/.venv/bin/python" -c "import celery, redis, matplotlib" 2>/dev/null \
    || "$REPO/.venv/bin/python" -m pip install -q -e "$REPO[bench]" >&2
