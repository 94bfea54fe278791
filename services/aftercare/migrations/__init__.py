"""Aftercare's schema migrations (Alembic): revisions in versions/, run by `bootstrap.run` before it serves
and by `clinic-notify db upgrade --service aftercare`."""

from __future__ import annotations

from pathlib import Path

from shared.schema_migrations import Migrations

MIGRATIONS = Migrations(
    service="aftercare",
    script_location=Path(__file__).parent,
    baseline="0001",
    # What `create_all` made before migrations: a database holding these and no version table is stamped at 0001.
    baseline_tables=frozenset(
        {
            "aftercare_check_ins",
            "aftercare_replies",
            "aftercare_consent_audit",
            "aftercare_outbox",
            "deliveries",
            "sms_suppressions",
            "email_suppressions",
        }
    ),
)
