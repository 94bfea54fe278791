#!/usr/bin/env bash
# The test command: prepare the machine, then run pytest with any extra arguments passed through.
#   deploy/test.sh                        everything
#   deploy/test.sh tests/unit -x -q       a subset
# The tests start their own Kafka and PostgreSQL through fixtures; nothing is started here.
# They run in TEST_WORKERS processes (default 2; 0 runs them in this one), each file's tests in one
# process, each process with its own broker and database server.
# Exits with pytest's exit code; "no tests collected" (5) counts as a failure.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
cd "$REPO"

bash "$HERE/setup.sh" --with-postgres --with-browser || exit $?

"$REPO/.venv/bin/python" -m pytest -n "${TEST_WORKERS:-2}" --dist loadfile "$@"
status=$?
if ((status == 5)); then
    echo "test.sh: pytest collected no tests; that is a failure" >&2
fi
exit "$status"
