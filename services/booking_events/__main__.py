"""`python -m services.booking_events`: the booking HTTP API and its outbox relay in one process."""
from __future__ import annotations

import sys

from services.booking_events import bootstrap
from services.booking_events.settings import BookingSettings
from shared.observability import configure_logging
from shared.process import WorkerDied, run_service, stop_on_signals


async def main(settings: BookingSettings) -> None:
    await bootstrap.run(bootstrap.build(settings), stop_on_signals())


if __name__ == "__main__":
    settings = BookingSettings()
    configure_logging(settings.common.log_level, settings.common.log_json)
    try:
        run_service(main(settings))
    except WorkerDied as died:  # logged as worker_died; exit so the supervisor restarts us
        print(f"booking_events: worker died: {died}", file=sys.stderr)
        sys.exit(1)
    except RuntimeError as error:  # the broker never answered: say so and fail
        print(f"booking_events: {error}", file=sys.stderr)
        sys.exit(1)
