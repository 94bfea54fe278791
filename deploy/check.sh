#!/usr/bin/env bash
# The static checks CI runs before the tests: lint and import order (ruff), types (mypy), and the
# import contracts that keep the shape (import-linter: shared/ imports no service, no service
# imports another, a service's domain/ imports no I/O library). Configuration: pyproject.toml.
#   deploy/check.sh
# Runs every check even after one fails, then exits non-zero if any failed.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
BIN="$REPO/.venv/bin"
cd "$REPO"

bash "$HERE/setup.sh" || exit $?

failed=()
run() {
    local name="$1"
    shift
    echo "check.sh: $name" >&2
    "$@" || failed+=("$name")
}

run ruff "$BIN/ruff" check .
run mypy "$BIN/mypy"
run import-linter "$BIN/lint-imports" --no-cache

if ((${#failed[@]})); then
    echo "check.sh: failed: ${failed[*]}" >&2
    exit 1
fi
echo "check.sh: all checks passed" >&2
