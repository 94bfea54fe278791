"""A real single-node Kafka broker for integration tests, run by deploy/kafka/kafka.sh."""

from __future__ import annotations

import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

KAFKA_SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "kafka" / "kafka.sh"
# A cold start downloads the jars (~30 MB) before the broker's own 90 s startup limit.
START_TIMEOUT_S = 300


@dataclass(frozen=True)
class SaslSslListener:
    """A SASL_SSL listener (SCRAM-SHA-512): tls_dir holds server.pem (private key, then certificate chain)."""

    tls_dir: Path
    username: str
    password: str


@dataclass(frozen=True)
class KafkaServer:
    bootstrap_servers: str
    data_dir: Path
    sasl_ssl_bootstrap_servers: str | None = None

    def stop(self) -> None:
        run_script(KAFKA_SCRIPT, "stop", "--data-dir", str(self.data_dir), timeout=60)


def start_kafka(data_dir: Path, port: int | None = None, sasl_ssl: SaslSslListener | None = None) -> KafkaServer:
    broker_port = port or free_port()
    controller_port = free_port(exclude=broker_port)
    secure_args: list[str] = []
    if sasl_ssl is not None:
        secure_args = [
            "--sasl-ssl-port", str(free_port(exclude=broker_port)),
            "--tls-dir", str(sasl_ssl.tls_dir),
            "--scram-user", sasl_ssl.username,
            "--scram-password", sasl_ssl.password,
        ]
    output = run_script(
        KAFKA_SCRIPT,
        "start",
        "--port", str(broker_port),
        "--controller-port", str(controller_port),
        "--data-dir", str(data_dir),
        *secure_args,
        timeout=START_TIMEOUT_S,
    )
    return KafkaServer(
        bootstrap_servers=result_value(output, "bootstrap"),
        data_dir=data_dir,
        sasl_ssl_bootstrap_servers=result_value(output, "sasl_ssl_bootstrap") if sasl_ssl else None,
    )


def free_port(exclude: int | None = None) -> int:
    """A loopback port nobody listens on right now (another process may still take it)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port != exclude:
            return port


def run_script(script: Path, *args: str, timeout: float) -> str:
    """Run a deploy script; its stdout carries key=value results, stderr its progress."""
    command = ["bash", str(script), *args]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"{' '.join(command)} timed out after {timeout}s") from exc
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} failed with exit code {done.returncode}:\n"
            f"{done.stdout}{done.stderr}"
        )
    return done.stdout


def result_value(output: str, key: str) -> str:
    for line in output.splitlines():
        name, _, value = line.partition("=")
        if name == key:
            return value
    raise RuntimeError(f"no {key}= line in script output:\n{output}")
