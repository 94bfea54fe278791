"""`python -m services.notifier`: consume appointment events and send what they call for."""
from __future__ import annotations

import asyncio

from services.notifier.service import run_notifier
from services.notifier.settings import NotifierSettings

if __name__ == "__main__":
    asyncio.run(run_notifier(NotifierSettings()))
