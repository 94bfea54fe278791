"""The Kubernetes manifests render, are valid for Kubernetes 1.30, and set what the services read.

The overlay is rendered here by a small loader that understands exactly the kustomization fields
used (resources, namespace, images, strategic-merge patches of named objects); a kustomization using
anything else fails the first test, so the loader never renders something kustomize would not.
"""
from __future__ import annotations

import copy
import importlib
import inspect
import re
from pathlib import Path
from typing import Any, cast

import kubernetes_validate  # type: ignore[import-untyped]  # ships no type information
import pytest
import yaml
from pydantic import AliasChoices, BaseModel, ValidationError
from pydantic_settings import BaseSettings

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
BASE = K8S / "base"
PRODUCTION = K8S / "overlays" / "production"
SECRET_EXAMPLE = K8S / "secret.example.env"
KUBERNETES_VERSION = "1.30.0"
KUSTOMIZATION_FIELDS = {"apiVersion", "kind", "resources", "namespace", "images", "patches"}
REPLICAS = {"booking-events": 2, "notifier": 2, "aftercare": 2}

Doc = dict[str, Any]


# --- rendering ------------------------------------------------------------------------------------


def _merge(target: Any, patch: Any) -> Any:
    """Strategic merge as kustomize does it for what we patch: maps merge, named lists merge by name."""
    if isinstance(target, dict) and isinstance(patch, dict):
        for key, value in patch.items():
            target[key] = _merge(target[key], value) if key in target else copy.deepcopy(value)
        return target
    if isinstance(target, list) and isinstance(patch, list) and all(isinstance(i, dict) and "name" in i for i in patch):
        by_name = {item["name"]: item for item in target if isinstance(item, dict)}
        for item in patch:
            if item["name"] in by_name:
                _merge(by_name[item["name"]], item)
            else:
                target.append(copy.deepcopy(item))
        return target
    return copy.deepcopy(patch)


def render(directory: Path) -> list[Doc]:
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unsupported = set(kustomization) - KUSTOMIZATION_FIELDS
    assert not unsupported, f"{directory}: the test's loader does not render {sorted(unsupported)}"
    docs: list[Doc] = []
    for resource in kustomization.get("resources", []):
        path = directory / resource
        docs += render(path) if path.is_dir() else [d for d in yaml.safe_load_all(path.read_text()) if d]
    for patch in kustomization.get("patches", []):
        assert set(patch) == {"path"}, f"{directory}: only patches by file, targeted by kind and name"
        for change in yaml.safe_load_all((directory / patch["path"]).read_text()):
            targets = [
                d for d in docs
                if (d["kind"], d["metadata"]["name"]) == (change["kind"], change["metadata"]["name"])
            ]
            assert len(targets) == 1, f"{patch['path']}: {change['kind']}/{change['metadata']['name']}"
            _merge(targets[0], change)
    for image in kustomization.get("images", []):
        for container in _containers(docs):
            if container["image"].split(":")[0] == image["name"]:
                container["image"] = f"{image.get('newName', image['name'])}:{image['newTag']}"
    if "namespace" in kustomization:
        for doc in docs:
            doc["metadata"]["namespace"] = kustomization["namespace"]
    return docs


def _containers(docs: list[Doc]) -> list[Doc]:
    return [c for d in docs if d["kind"] == "Deployment" for c in d["spec"]["template"]["spec"]["containers"]]


def _of_kind(docs: list[Doc], kind: str) -> dict[str, Doc]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


RENDERED = {"base": render(BASE), "production": render(PRODUCTION)}
ALL_DOCS = [(layer, doc) for layer, docs in RENDERED.items() for doc in docs]


def _doc_id(item: tuple[str, Doc]) -> str:
    layer, doc = item
    return f"{layer}:{doc['kind']}/{doc['metadata']['name']}"


# --- what the services read -----------------------------------------------------------------------


def settings_class(service_module: str) -> type[BaseSettings]:
    """The settings class of `services.<name>` (services/<name>/settings.py stays where it is)."""
    module = importlib.import_module(f"{service_module}.settings")
    own = [
        value for value in vars(module).values()
        if inspect.isclass(value) and issubclass(value, BaseSettings) and value.__module__ == module.__name__
    ]
    assert len(own) == 1, f"{module.__name__}: expected one settings class, found {own}"
    return own[0]


def env_names(cls: type[BaseModel], path: tuple[str, ...] = ()) -> dict[str, tuple[tuple[str, ...], Any]]:
    """Environment names pydantic-settings reads into `cls`, each with its field path and type.

    A field reads PREFIX+NAME, or its validation alias(es) as they are; a nested settings group
    built by default_factory reads the environment again under its own prefix; with
    env_nested_delimiter set, a nested group is also read as PREFIX+NAME+DELIMITER+FIELD.
    """
    config = cls.model_config
    prefix = str(config.get("env_prefix", "")) if issubclass(cls, BaseSettings) else ""
    delimiter = config.get("env_nested_delimiter") if issubclass(cls, BaseSettings) else None
    names: dict[str, tuple[tuple[str, ...], Any]] = {}
    for field_name, field in cls.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            own = [choice for choice in alias.choices if isinstance(choice, str)]
        elif isinstance(alias, str):
            own = [alias]
        else:
            own = [prefix + (field.alias or field_name)]
        for name in own:
            names[name.upper()] = ((*path, field_name), field.annotation)
        nested: Any = field.annotation
        if inspect.isclass(nested) and issubclass(nested, BaseModel):
            if issubclass(nested, BaseSettings) and nested is cast(Any, field.default_factory):
                names.update(env_names(nested, (*path, field_name)))
            if delimiter:
                for sub, (sub_path, annotation) in env_names_plain(nested).items():
                    names[f"{own[0]}{delimiter}{sub}".upper()] = ((*path, field_name, *sub_path), annotation)
    return names


def env_names_plain(cls: type[BaseModel]) -> dict[str, tuple[tuple[str, ...], Any]]:
    return {name.upper(): ((name,), field.annotation) for name, field in cls.model_fields.items()}


def required_env(cls: type[BaseModel]) -> list[set[str]]:
    """For each setting without a default, the names any one of which provides it."""
    names = env_names(cls)
    needed = []
    for name_path in {path for path, _ in names.values()}:
        owner: type[BaseModel] = cls
        for part in name_path[:-1]:
            owner = owner.model_fields[part].annotation  # type: ignore[assignment]  # a nested settings model
        if owner.model_fields[name_path[-1]].is_required():
            needed.append({name for name, (path, _) in names.items() if path == name_path})
    return needed


def _service_module(container: Doc) -> str:
    command = container["command"]
    return command[command.index("-m") + 1]


def _env(container: Doc) -> dict[str, Doc]:
    return {item["name"]: item for item in container.get("env", [])}


def _secret_example() -> dict[str, str]:
    lines = [line for line in SECRET_EXAMPLE.read_text().splitlines() if line and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


# --- tests ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("item", ALL_DOCS, ids=_doc_id)
def test_every_document_is_valid_for_kubernetes_1_30(item: tuple[str, Doc]) -> None:
    _, doc = item
    problem = None
    try:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        problem = f"{error.message} at {'/'.join(map(str, error.absolute_path))}"
    assert problem is None


def test_production_runs_two_of_each_service_in_its_namespace_from_a_released_image() -> None:
    docs = RENDERED["production"]
    deployments = _of_kind(docs, "Deployment")
    assert {name: d["spec"]["replicas"] for name, d in deployments.items()} == REPLICAS
    assert {d["metadata"]["namespace"] for d in docs} == {"clinic-notify"}
    images = {c["image"] for c in _containers(docs)}
    assert len(images) == 1 and not images.pop().endswith(":latest")


@pytest.mark.parametrize("layer", sorted(RENDERED))
def test_every_deployment_is_probed_bounded_and_unprivileged(layer: str) -> None:
    docs = RENDERED[layer]
    accounts = _of_kind(docs, "ServiceAccount")
    for name, deployment in _of_kind(docs, "Deployment").items():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] in accounts, name
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        for container in pod["containers"]:
            ports = {p["name"] for p in container["ports"]} | {p["containerPort"] for p in container["ports"]}
            for kind in ("readinessProbe", "livenessProbe"):
                probe = container[kind]
                handler = probe.get("httpGet") or probe.get("tcpSocket")
                assert handler and handler["port"] in ports, f"{name}: {kind}"
            for bound in ("requests", "limits"):
                assert set(container["resources"][bound]) >= {"cpu", "memory"}, f"{name}: {bound}"
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True and security["allowPrivilegeEscalation"] is False


@pytest.mark.parametrize("layer", sorted(RENDERED))
def test_each_service_has_a_disruption_budget_and_a_service_that_reach_its_pods(layer: str) -> None:
    docs = RENDERED[layer]
    deployments = _of_kind(docs, "Deployment")
    budgets, services = _of_kind(docs, "PodDisruptionBudget"), _of_kind(docs, "Service")
    assert set(budgets) == set(deployments) == set(services)
    for name, deployment in deployments.items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert budgets[name]["spec"]["minAvailable"] == 1
        assert budgets[name]["spec"]["selector"]["matchLabels"].items() <= labels.items()
        assert services[name]["spec"]["selector"].items() <= labels.items()
        ports = {p["name"] for c in deployment["spec"]["template"]["spec"]["containers"] for p in c["ports"]}
        assert {p["targetPort"] for p in services[name]["spec"]["ports"]} <= ports


def test_the_ingress_publishes_only_the_aftercare_webhook_and_patient_pages() -> None:
    docs = RENDERED["production"]
    services = _of_kind(docs, "Service")
    (ingress,) = _of_kind(docs, "Ingress").values()
    paths = [p for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]]
    assert {p["path"] for p in paths} == {"/twilio/inbound", "/check-in", "/unsubscribe"}
    for path in paths:
        backend = path["backend"]["service"]
        assert backend["name"] == "aftercare"
        assert backend["port"]["name"] in {p["name"] for p in services["aftercare"]["spec"]["ports"]}
    config = _of_kind(docs, "ConfigMap")["clinic-notify-config"]["data"]
    host = ingress["spec"]["rules"][0]["host"]
    assert config["AFTERCARE_PUBLIC_WEBHOOK_URL"] == f"https://{host}/twilio/inbound"


@pytest.mark.parametrize("layer", sorted(RENDERED))
def test_every_environment_variable_is_one_the_service_reads(layer: str) -> None:
    for container in _containers(RENDERED[layer]):
        accepted = env_names(settings_class(_service_module(container)))
        unknown = sorted(set(_env(container)) - set(accepted))
        assert unknown == [], f"{container['name']} sets names its settings do not read"
        assert "envFrom" not in container, "every name is listed, so this test can check it"


@pytest.mark.parametrize("layer", sorted(RENDERED))
def test_every_setting_without_a_default_is_given(layer: str) -> None:
    for container in _containers(RENDERED[layer]):
        given = set(_env(container))
        missing = [names for names in required_env(settings_class(_service_module(container))) if not names & given]
        assert missing == [], container["name"]


@pytest.mark.parametrize("layer", sorted(RENDERED))
def test_ports_the_services_listen_on_are_the_container_ports(layer: str) -> None:
    for container in _containers(RENDERED[layer]):
        listening = {int(v["value"]) for n, v in _env(container).items() if n.endswith("_PORT") and "value" in v}
        assert listening == {p["containerPort"] for p in container["ports"]}, container["name"]


@pytest.mark.parametrize("layer", sorted(RENDERED))
def test_secrets_come_from_the_secret_and_config_from_the_config_map(layer: str) -> None:
    docs = RENDERED[layer]
    secret_keys = set(_secret_example())
    config_maps = {name: set(d.get("data", {})) for name, d in _of_kind(docs, "ConfigMap").items()}
    used_secrets = set()
    for container in _containers(docs):
        for name, item in _env(container).items():
            source = item.get("valueFrom", {})
            if "secretKeyRef" in source:
                ref = source["secretKeyRef"]
                assert ref["name"] == "clinic-notify-secrets" and ref["key"] in secret_keys, name
                used_secrets.add(ref["key"])
            elif "configMapKeyRef" in source:
                ref = source["configMapKeyRef"]
                assert ref["key"] in config_maps[ref["name"]], name
            assert name not in secret_keys or "secretKeyRef" in source, f"{name} is a secret"
    assert used_secrets == secret_keys
    assert "Secret" not in {d["kind"] for d in docs}, "the Secret is created beforehand, never committed"


def test_the_secret_example_holds_placeholders_only() -> None:
    for name, value in _secret_example().items():
        assert re.fullmatch(r"[A-Z][A-Z0-9_]*", name)
        assert "REPLACE_ME" in value or "USER:PASSWORD@HOST" in value, name


@pytest.mark.parametrize("service_module", ["services.booking_events", "services.notifier", "services.aftercare"])
def test_the_names_derived_here_are_the_ones_pydantic_settings_reads(
    service_module: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cls = settings_class(service_module)
    text_settings = {
        name: path for name, (path, annotation) in env_names(cls).items() if annotation in (str, str | None)
    }
    assert text_settings
    monkeypatch.setenv("LINK_SECRET", "a-link-secret-of-at-least-32-bytes-for-the-check")
    monkeypatch.setenv("TWILIO_API_BASE_URL", "http://127.0.0.1:9")  # the sandbox: no real credentials needed
    cls()
    for name, path in text_settings.items():  # one at a time: settings may check combinations
        with monkeypatch.context() as env:
            env.setenv(name, f"from-{name}")
            try:
                value: Any = cls()
            except ValidationError as refused:  # read, and refused on its own: that is reading it too
                assert name.lower() in str(refused).lower(), name
                continue
        for part in path:
            value = getattr(value, part)
        assert value == f"from-{name}", name
