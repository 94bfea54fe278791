"""The notifier's schema migrations (Alembic): revisions in versions/, run by `bootstrap.run` before it serves
and by `clinic-notify db upgrade --service notifier`."""

from __future__ import annotations

from pathlib import Path

from shared.schema_migrations import Migrations

MIGRATIONS = Migrations(
    service="notifier",
    script_location=Path(__file__).parent,
    baseline="0001",
    # What `create_all` made before migrations: a database holding these and no version table is stamped at 0001.
    baseline_tables=frozenset({"deliveries", "appointments", "sms_suppressions", "email_suppressions"}),
)
