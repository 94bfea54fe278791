"""Alembic's environment for Booking events: the schema to compare with is `tables.SCHEMA`."""

from services.booking_events.migrations import MIGRATIONS
from services.booking_events.tables import SCHEMA
from shared.schema_migrations import run_environment

run_environment(MIGRATIONS, SCHEMA)
