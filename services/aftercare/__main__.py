"""`python -m services.aftercare`: aftercare advice, soreness check-ins, replies and escalations."""
from __future__ import annotations

import sys

from services.aftercare import bootstrap
from services.aftercare.settings import AftercareSettings
from shared.observability import configure_logging
from shared.process import WorkerDied, run_service, stop_on_signals


async def main(settings: AftercareSettings) -> None:
    await bootstrap.run(bootstrap.build(settings), stop_on_signals())


if __name__ == "__main__":
    settings = AftercareSettings()
    configure_logging(settings.common.log_level, settings.common.log_json)
    try:
        run_service(main(settings))
    except WorkerDied as died:  # logged as worker_died; exit so the supervisor restarts us
        print(f"aftercare: worker died: {died}", file=sys.stderr)
        sys.exit(1)
    except RuntimeError as error:  # the broker never answered: say so and fail
        print(f"aftercare: {error}", file=sys.stderr)
        sys.exit(1)
