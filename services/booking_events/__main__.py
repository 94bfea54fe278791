"""`python -m services.booking_events`: the booking HTTP API and its outbox relay in one process."""
from __future__ import annotations

import asyncio
import sys

from services.booking_events.service import run_booking_events
from services.booking_events.settings import BookingSettings

if __name__ == "__main__":
    try:
        asyncio.run(run_booking_events(BookingSettings()))
    except RuntimeError as error:  # the broker never answered: say so and fail
        print(f"booking_events: {error}", file=sys.stderr)
        sys.exit(1)
