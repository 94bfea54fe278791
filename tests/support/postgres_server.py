"""A real PostgreSQL server for integration tests, run by deploy/postgres/postgres.sh."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tests.support.kafka_server import free_port, result_value, run_script

POSTGRES_SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "postgres" / "postgres.sh"
# A fresh machine installs Debian's postgresql package first.
INSTALL_TIMEOUT_S = 600


@dataclass(frozen=True)
class PostgresServer:
    dsn: str
    data_dir: Path

    @property
    def async_url(self) -> str:
        """The same database as a SQLAlchemy URL for the asyncpg driver."""
        return self.dsn.replace("postgresql://", "postgresql+asyncpg://", 1)

    def stop(self) -> None:
        run_script(POSTGRES_SCRIPT, "stop", "--data-dir", str(self.data_dir), timeout=60)


def start_postgres(data_dir: Path, port: int | None = None) -> PostgresServer:
    run_script(POSTGRES_SCRIPT, "install", timeout=INSTALL_TIMEOUT_S)
    output = run_script(
        POSTGRES_SCRIPT,
        "start",
        "--fast",
        "--port", str(port or free_port()),
        "--data-dir", str(data_dir),
        timeout=120,
    )
    return PostgresServer(dsn=result_value(output, "dsn"), data_dir=data_dir)
