"""`python -m services.aftercare`: aftercare advice, soreness check-ins, replies and escalations."""
from __future__ import annotations

import asyncio

from services.aftercare.service import run_aftercare
from services.aftercare.settings import AftercareSettings

if __name__ == "__main__":
    asyncio.run(run_aftercare(AftercareSettings()))
