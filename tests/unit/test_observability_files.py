"""Alert rules and the dashboard watch metrics the services really export, under their real labels.

The exported metrics are read from prometheus_client itself, after importing the code that defines
them: a rule or a panel over a misspelt or not-yet-existing metric fails here, not at 3 a.m.
"""
from __future__ import annotations

import importlib
import json
import pkgutil
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY, CollectorRegistry

REPO = Path(__file__).resolve().parents[2]
OBSERVABILITY = REPO / "deploy" / "observability"
RULES_FILE = OBSERVABILITY / "alerts.yml"
DASHBOARD_FILE = OBSERVABILITY / "grafana" / "clinic-notify.json"
PROMETHEUS_FILE = OBSERVABILITY / "prometheus.yml"
DATASOURCES_DIR = OBSERVABILITY / "grafana" / "provisioning" / "datasources"

# Series Prometheus makes itself for every scrape target, and the labels it attaches to every series.
SYNTHESISED_BY_PROMETHEUS = {"up": frozenset({"job", "instance"})}
TARGET_LABELS = frozenset({"job", "instance"})
SEVERITIES = {"critical", "warning"}

_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "gaugehistogram": ("_bucket", "_gcount", "_gsum"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
}


# --- what the services export ---------------------------------------------------------------------


def _import_everything_under(package_name: str) -> Iterator[Any]:
    """Every module of the package that imports; modules move, so one that fails is passed over."""
    try:
        package = importlib.import_module(package_name)
    except Exception:  # pragma: no cover - depends on work in progress elsewhere
        return
    yield package
    for info in pkgutil.walk_packages(package.__path__, prefix=f"{package_name}."):
        if info.name.rsplit(".", 1)[-1] == "__main__":
            continue  # an entry point, not a definition
        try:
            yield importlib.import_module(info.name)
        except Exception:  # pragma: no cover - depends on work in progress elsewhere
            continue


def _registries_of(module: Any) -> Iterator[CollectorRegistry]:
    """Registries a module holds, or that its `*Metrics` classes build per instance."""
    for name, value in vars(module).items():
        if isinstance(value, CollectorRegistry):
            yield value
        elif isinstance(value, type) and name.endswith("Metrics") and value.__module__ == module.__name__:
            try:
                instance = value()
            except Exception:  # pragma: no cover - a class that needs arguments
                continue
            yield from (v for v in vars(instance).values() if isinstance(v, CollectorRegistry))


@pytest.fixture(scope="module")
def exported() -> dict[str, frozenset[str]]:
    """Every series name the services can expose, with the label names it carries."""
    registries: list[CollectorRegistry] = [REGISTRY]
    for package in ("shared", "services"):
        for module in _import_everything_under(package):
            registries.extend(r for r in _registries_of(module) if r is not REGISTRY)
    series: dict[str, frozenset[str]] = {}
    for registry in registries:
        for collector in list(registry._collector_to_names):  # private: label names of childless metrics
            labels = frozenset(getattr(collector, "_labelnames", ()))
            for family in collector.collect():
                names = {family.name + suffix for suffix in _SUFFIXES.get(family.type, ("",))}
                names |= {sample.name for sample in family.samples}
                for name in names:
                    series[name] = labels | ({"le"} if name.endswith("_bucket") else set())
    return series


# --- what the rules and the dashboard use ---------------------------------------------------------

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_SELECTOR = re.compile(r"(?<![\w.$])([a-zA-Z_:][\w:]*)?\s*\{([^}]*)\}")
_MATCHER_LABEL = re.compile(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_RANGE = re.compile(r"\[[^\]]*\]")
_VARIABLE = re.compile(r"\$\{[^}]*\}|\$\w+")
_IDENTIFIER = re.compile(r"(?<![\w.:$])([a-zA-Z_:][\w:]*)(?![\w:]|\s*\()")
_NAME_PATTERN = re.compile(r'__name__\s*=~\s*"((?:[^"\\]|\\.)*)"')
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "start", "end", "inf", "nan"}


@dataclass(frozen=True)
class Use:
    """A metric named in an expression (or a pattern over names), and the label names matched on it."""

    metric: str
    labels: frozenset[str]
    pattern: bool = False


def metrics_used(expr: str) -> list[Use]:
    """The metric names in a PromQL expression (Grafana's $variables allowed) and their matchers."""
    uses: list[Use] = []
    bare = _VARIABLE.sub("0", expr)
    # Matchers first, while their quoted values are still there to be skipped over.
    for name, matchers in _SELECTOR.findall(bare):
        labels = frozenset(_MATCHER_LABEL.findall(_STRING.sub('""', matchers))) - {"__name__"}
        if name:
            uses.append(Use(name, labels))
        elif pattern := _NAME_PATTERN.search(matchers):
            uses.append(Use(pattern.group(1), labels, pattern=True))
    bare = _STRING.sub('""', bare)
    bare = re.sub(r"\{[^}]*\}", " ", bare)
    bare = _GROUPING.sub(" ", bare)
    bare = _RANGE.sub(" ", bare)
    named = {use.metric for use in uses}
    for name in _IDENTIFIER.findall(bare):
        if name.lower() not in _KEYWORDS and name not in named:
            uses.append(Use(name, frozenset()))
            named.add(name)
    return uses


def unknown_uses(expr: str, exported: dict[str, frozenset[str]]) -> list[str]:
    problems = []
    for use in metrics_used(expr):
        if use.pattern:
            matching = [name for name in exported if re.fullmatch(use.metric, name)]
            if not matching:
                problems.append(f"{use.metric}: matches no exported metric")
            elif unknown := sorted(use.labels - set().union(*(exported[n] for n in matching)) - TARGET_LABELS):
                problems.append(f"{use.metric}: no label {unknown}")
            continue
        labels = exported.get(use.metric, SYNTHESISED_BY_PROMETHEUS.get(use.metric))
        if labels is None:
            problems.append(f"{use.metric}: no such metric is exported")
        elif unknown := sorted(use.labels - labels - TARGET_LABELS):
            problems.append(f"{use.metric}: no label {unknown}")
    return problems


def _rules() -> list[dict[str, Any]]:
    loaded = yaml.safe_load(RULES_FILE.read_text())
    return [rule for group in loaded["groups"] for rule in group["rules"]]


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def _dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD_FILE.read_text())
    return loaded


def _dashboard_expressions() -> list[tuple[str, str]]:
    dashboard = _dashboard()
    found = [
        (panel["title"], target["expr"])
        for panel in _panels(dashboard["panels"])
        for target in panel.get("targets", [])
    ]
    for variable in dashboard["templating"]["list"]:
        query = variable.get("query")
        query = query.get("query") if isinstance(query, dict) else query
        if variable["type"] == "query" and query:
            inner = re.fullmatch(r"\s*label_values\((.*?)(?:,\s*\w+)?\)\s*", query)
            found.append((f"${variable['name']}", inner.group(1) if inner else query))
    return found


# --- the extraction itself ------------------------------------------------------------------------


def test_the_extraction_finds_metric_names_not_functions_labels_or_durations() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, service) (rate(clinic_notify_x_bucket{service=~"$service",'
        ' template="a{b}"}[$__rate_interval]))) > 1e3 unless on (service) clinic_notify_y offset 5m'
        ' and bool up{job="n"}'
    )
    assert {(u.metric, u.labels) for u in metrics_used(expr)} == {
        ("clinic_notify_x_bucket", frozenset({"service", "template"})),
        ("clinic_notify_y", frozenset()),
        ("up", frozenset({"job"})),
    }


def test_a_made_up_metric_or_label_is_reported(exported: dict[str, frozenset[str]]) -> None:
    assert unknown_uses("rate(clinic_notify_made_up_total[5m]) > 0", exported) == [
        "clinic_notify_made_up_total: no such metric is exported"
    ]
    assert unknown_uses('clinic_notify_worker_up{status="x"} == 0', exported) == [
        "clinic_notify_worker_up: no label ['status']"
    ]


def test_counters_and_histograms_are_known_by_the_names_prometheus_scrapes(
    exported: dict[str, frozenset[str]],
) -> None:
    assert {"clinic_notify_deliveries_total", "clinic_notify_dispatch_delay_seconds_bucket",
            "clinic_notify_worker_up"} <= set(exported)
    assert "clinic_notify_deliveries" not in exported  # a counter is never scraped without _total


# --- the files ------------------------------------------------------------------------------------


@pytest.mark.parametrize("rule", _rules(), ids=lambda rule: rule["alert"])
def test_every_alert_watches_exported_metrics(rule: dict[str, Any], exported: dict[str, frozenset[str]]) -> None:
    assert metrics_used(rule["expr"]), "an alert over no metric"
    assert unknown_uses(rule["expr"], exported) == []


@pytest.mark.parametrize("panel_and_expr", _dashboard_expressions(), ids=lambda item: item[0])
def test_every_dashboard_query_uses_exported_metrics(
    panel_and_expr: tuple[str, str], exported: dict[str, frozenset[str]]
) -> None:
    _, expr = panel_and_expr
    assert metrics_used(expr)
    assert unknown_uses(expr, exported) == []


def test_every_alert_says_how_bad_and_what_happened() -> None:
    rules = _rules()
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names))
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert rule["labels"]["severity"] in SEVERITIES, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        if "for" in rule:
            assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["alert"]


def test_staff_alerts_name_the_staff_templates_that_exist() -> None:
    required = pytest.importorskip("shared.templates.required")
    staff_templates: frozenset[str] = required.STAFF_TEMPLATES
    named = {
        name
        for rule in _rules()
        for name in re.findall(r'template=~?"([^"]+)"', rule["expr"])
        for name in name.split("|")
    }
    assert named and named <= staff_templates


def test_the_dashboard_reads_the_provisioned_prometheus() -> None:
    dashboard = _dashboard()
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    provisioned = [
        source
        for path in DATASOURCES_DIR.glob("*.yml")
        for source in yaml.safe_load(path.read_text())["datasources"]
    ]
    assert [s["uid"] for s in provisioned if s["type"] == "prometheus"] == [
        variables["DS_PROMETHEUS"]["current"]["value"]
    ]
    panels = [p for p in _panels(dashboard["panels"]) if p["type"] != "row"]
    assert all(p["datasource"]["uid"] == "${DS_PROMETHEUS}" for p in panels)
    ids = [p["id"] for p in _panels(dashboard["panels"])]
    assert len(ids) == len(set(ids))


def test_prometheus_loads_the_alert_rules_from_where_compose_mounts_them() -> None:
    config = yaml.safe_load(PROMETHEUS_FILE.read_text())
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
    assert {job["job_name"] for job in config["scrape_configs"]} == {"booking-events", "notifier", "aftercare"}
