"""The aftercare service's outbox: records, alerts and consent changes, published after commit."""
from __future__ import annotations

from shared.outbox.store import Outbox, outbox_table

AFTERCARE_OUTBOX = Outbox(outbox_table("aftercare_outbox"))
