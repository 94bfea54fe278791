#!/usr/bin/env bash
# The test command: prepare the machine, then run pytest with any extra arguments passed through.
#   deploy/test.sh                        everything
#   deploy/test.sh tests/unit -x -q       a subset
# The tests start their own Kafka and PostgreSQL through fixtures; nothing is started here.
# Exits with pytest's exit code; "no tests collected" (5) counts as a failure.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
cd "$REPO"

bash "$HERE/setup.sh" --with-postgres --with-browser || exit $?

"$REPO/.venv/bin/python" -m pytest "$@"
status=$?
if ((status == 5)); then
    echo "test.sh: pytest collected no tests; that is a failure" >&2
fi
exit "$status"
