"""Alembic's environment for Aftercare: the schema to compare with is `tables.SCHEMA`."""

from services.aftercare.migrations import MIGRATIONS
from services.aftercare.tables import SCHEMA
from shared.schema_migrations import run_environment

run_environment(MIGRATIONS, SCHEMA)
