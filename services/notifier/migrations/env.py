"""Alembic's environment for The notifier: the schema to compare with is `tables.SCHEMA`."""

from services.notifier.migrations import MIGRATIONS
from services.notifier.tables import SCHEMA
from shared.schema_migrations import run_environment

run_environment(MIGRATIONS, SCHEMA)
