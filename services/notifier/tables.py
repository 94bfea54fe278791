"""The notifier's schema: the delivery ledger, suppressions and what it knows of each appointment."""
from __future__ import annotations

from shared.database import schema
from shared.ledger import tables as ledger_tables

SCHEMA = schema(ledger_tables.deliveries, ledger_tables.appointments, ledger_tables.sms_suppressions,
                ledger_tables.email_suppressions)
