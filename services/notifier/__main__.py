"""`python -m services.notifier`: consume appointment events and send what they call for."""
from __future__ import annotations

import sys

from services.notifier import bootstrap
from services.notifier.settings import NotifierSettings
from shared.observability import configure_logging
from shared.process import WorkerDied, run_service, stop_on_signals


async def main() -> None:
    settings = NotifierSettings()
    configure_logging(settings.common.log_level, settings.common.log_json)
    parts = bootstrap.build(settings)
    await bootstrap.run(parts, stop_on_signals())


if __name__ == "__main__":
    try:
        run_service(main())
    except WorkerDied:  # already logged as worker_died: exit so a supervisor restarts the notifier
        sys.exit(1)
