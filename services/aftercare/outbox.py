"""The aftercare service's outbox: records, alerts and consent changes, published after commit."""
from __future__ import annotations

from services.aftercare.tables import outbox
from shared.outbox.store import Outbox

AFTERCARE_OUTBOX = Outbox(outbox)
