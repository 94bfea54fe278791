"""The deploy files hold together: compose runs the seven parts on loopback, the scripts parse."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
SERVICES = {"kafka", "postgres", "mailpit", "twilio-sandbox", "booking-events", "notifier", "aftercare"}
OBSERVABILITY = {"prometheus", "grafana"}
OPERATIONS = {"console"}
# What each of our services cannot start without; any one of the names satisfies a requirement.
REQUIRED_ENV = {
    "booking-events": [
        ("LINK_SECRET",),
        ("KAFKA_BOOTSTRAP_SERVERS",),
        ("BOOKING_DATABASE_URL",),
    ],
    "notifier": [("LINK_SECRET",), ("KAFKA_BOOTSTRAP_SERVERS",), ("NOTIFIER_DATABASE_URL",)],
    "aftercare": [("LINK_SECRET",), ("KAFKA_BOOTSTRAP_SERVERS",), ("AFTERCARE_DATABASE_URL",)],
}
SCRIPTS = [*sorted(REPO.glob("deploy/**/*.sh")), REPO / ".ci" / "run"]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return loaded


def environment_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # the "NAME=value" form
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {name: "" if value is None else str(value) for name, value in env.items()}


def test_compose_runs_the_seven_parts_of_the_system_and_their_monitoring(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == SERVICES | OBSERVABILITY | OPERATIONS


def test_every_published_port_listens_on_loopback_only(compose: dict[str, Any]) -> None:
    published = [
        (name, str(port))
        for name, service in compose["services"].items()
        for port in service.get("ports", [])
    ]
    assert published, "compose publishes no port at all"
    exposed = [(name, port) for name, port in published if not port.startswith("127.0.0.1:")]
    assert exposed == []


@pytest.mark.parametrize("service", sorted(REQUIRED_ENV))
def test_our_services_get_every_setting_they_cannot_start_without(
    compose: dict[str, Any], service: str
) -> None:
    env = environment_of(compose["services"][service])
    missing = [names for names in REQUIRED_ENV[service] if not any(env.get(n) for n in names)]
    assert missing == []


@pytest.mark.parametrize("service", sorted(REQUIRED_ENV))
def test_our_services_use_postgres_and_the_brokers_on_the_compose_network(
    compose: dict[str, Any], service: str
) -> None:
    env = environment_of(compose["services"][service])
    database_urls = [value for name, value in env.items() if name.endswith("DATABASE_URL")]
    assert database_urls and all(url.startswith("postgresql+asyncpg://") for url in database_urls)
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert env["TWILIO_API_BASE_URL"] == "http://twilio-sandbox:8030"
    assert "${LINK_SECRET:?" in env["LINK_SECRET"], "the link secret must come from the operator"


def test_postgres_creates_one_database_per_service(compose: dict[str, Any]) -> None:
    init_sql = (REPO / "deploy" / "postgres" / "init-databases.sql").read_text()
    mounts = compose["services"]["postgres"]["volumes"]
    assert any("init-databases.sql:/docker-entrypoint-initdb.d/" in m for m in mounts)
    for database in ("booking", "notifier", "aftercare"):
        assert f"CREATE DATABASE {database};" in init_sql


@pytest.mark.parametrize("service", sorted(OBSERVABILITY))
def test_monitoring_reads_its_configuration_from_the_repository_read_only(
    compose: dict[str, Any], service: str
) -> None:
    binds = [m for m in compose["services"][service]["volumes"] if str(m).startswith("./")]
    assert binds
    for mount in binds:
        source, _target, mode = mount.split(":")
        assert (REPO / source).exists(), source
        assert mode == "ro", mount
    assert "networks" not in compose["services"][service], "on the services' default network"


def test_prometheus_scrapes_each_service_where_it_serves_metrics(compose: dict[str, Any]) -> None:
    config = yaml.safe_load((REPO / "deploy" / "observability" / "prometheus.yml").read_text())
    targets = {
        target
        for job in config["scrape_configs"]
        for static in job["static_configs"]
        for target in static["targets"]
    }
    listening = {
        f"{name}:{value}"
        for name in REQUIRED_ENV
        for key, value in environment_of(compose["services"][name]).items()
        if key.endswith(("_HTTP_PORT", "_METRICS_PORT"))
    }
    assert {target.split(":")[0] for target in targets} == set(REQUIRED_ENV)
    assert targets <= listening


def test_prometheus_and_grafana_find_their_files_where_compose_mounts_them(compose: dict[str, Any]) -> None:
    def targets(service: str) -> set[str]:
        return {str(m).split(":")[1] for m in compose["services"][service]["volumes"]}

    config = yaml.safe_load((REPO / "deploy" / "observability" / "prometheus.yml").read_text())
    assert set(config["rule_files"]) <= targets("prometheus")
    assert "--config.file=/etc/prometheus/prometheus.yml" in compose["services"]["prometheus"]["command"]
    provisioning = REPO / "deploy" / "observability" / "grafana" / "provisioning"
    provider = yaml.safe_load((provisioning / "dashboards" / "clinic-notify.yml").read_text())
    folder = provider["providers"][0]["options"]["path"]
    assert any(t.startswith(folder + "/") and t.endswith(".json") for t in targets("grafana"))
    assert "/etc/grafana/provisioning" in targets("grafana")


def test_docker_compose_accepts_the_file() -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker CLI")
    has_compose = subprocess.run(
        [docker, "compose", "version"], capture_output=True, text=True, timeout=30
    )
    if has_compose.returncode != 0:
        pytest.skip("the docker CLI has no compose plugin")
    result = subprocess.run(
        [docker, "compose", "-f", str(COMPOSE_FILE), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "LINK_SECRET": "compose-test-link-secret-32-bytes-long",
             "CONSOLE_TOKEN": "compose-test-console-token-32-bytes-long"},
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: str(path.relative_to(REPO)))
def test_script_parses(script: Path) -> None:
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
