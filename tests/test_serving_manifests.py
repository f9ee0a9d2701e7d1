"""The serving manifests (k8s/components/serving, teacher, serving-access): every object valid
against the real schemas (KServe's from the pinned SDK, core objects with kubernetes-validate),
the names the settings default to, and RBAC no wider than the calls the adapter makes."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from instruct_lab_bot.core.serve_names import ANNOTATION_RETENTION
from instruct_lab_bot.core.settings import Settings
from testkit.k8s_emulator import schema_problems
from testkit.kserve_schema import ensure_kserve_schema

REPO_ROOT = Path(__file__).resolve().parent.parent
COMPONENTS = REPO_ROOT / "k8s" / "components"
KUBECTL = Path(sys.executable).parent / "kubectl"
Obj = dict[str, Any]


def kustomize(directory: Path) -> list[Obj]:
    result = subprocess.run(
        [str(KUBECTL), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module")
def schema() -> Path:
    return ensure_kserve_schema(REPO_ROOT / ".cache")


@pytest.mark.parametrize("folder", ["serving", "teacher"])
def test_every_object_is_valid(folder: str, schema: Path) -> None:
    objects = kustomize(COMPONENTS / folder)
    assert objects
    for obj in objects:
        if obj["apiVersion"].startswith("serving.kserve.io/"):
            assert schema_problems(schema, obj) == [], obj["metadata"]["name"]
        else:
            kubernetes_validate.validate(obj, kubernetes_validate.utils.latest_version(), True)
    template = yaml.safe_load((COMPONENTS / "serving" / "secret.template.yaml").read_text())
    kubernetes_validate.validate(template, kubernetes_validate.utils.latest_version(), True)


def test_names_match_the_settings_defaults() -> None:
    settings = Settings()
    objects = {(o["kind"], o["metadata"]["name"]): o for o in kustomize(COMPONENTS / "serving")}
    assert ("Namespace", settings.serve_namespace) in objects
    runtime = objects[("ServingRuntime", settings.serve_runtime)]
    assert runtime["metadata"]["namespace"] == settings.serve_namespace
    assert [f["name"] for f in runtime["spec"]["supportedModelFormats"]] == ["vLLM"]
    account = objects[("ServiceAccount", settings.serve_storage_account)]
    secret = yaml.safe_load((COMPONENTS / "serving" / "secret.template.yaml").read_text())
    assert account["secrets"] == [{"name": secret["metadata"]["name"]}]
    binding = objects[("RoleBinding", "instruct-lab-bot-serving")]
    base = yaml.safe_load((REPO_ROOT / "k8s" / "base" / "serviceaccount.yaml").read_text())
    assert binding["subjects"][0]["name"] == base["metadata"]["name"]


def _adapter_calls() -> set[str]:
    """The CustomObjectsApi methods adapters/kubernetes/client.py calls."""
    source = (REPO_ROOT / "instruct_lab_bot" / "adapters" / "kubernetes" / "client.py").read_text()
    return {
        node.attr
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Attribute) and node.attr.endswith("_namespaced_custom_object")
    }


def test_rbac_is_the_least_the_adapter_needs() -> None:
    verb_of = {"get": "get", "list": "list", "create": "create", "replace": "update"}
    verb_of["delete"] = "delete"
    needed = {verb_of[call.split("_", 1)[0]] for call in _adapter_calls()}
    [role] = [o for o in kustomize(COMPONENTS / "serving") if o["kind"] == "Role"]
    rules = {(r["apiGroups"][0], r["resources"][0]): set(r["verbs"]) for r in role["rules"]}
    assert all(len(r["apiGroups"]) == 1 and len(r["resources"]) == 1 for r in role["rules"])
    assert rules[("serving.kserve.io", "inferenceservices")] == needed
    assert rules[("serving.knative.dev", "revisions")] == {"list"}
    assert set(rules) == {
        ("serving.kserve.io", "inferenceservices"),
        ("serving.knative.dev", "revisions"),
    }


def test_teacher_scales_to_zero() -> None:
    [teacher] = kustomize(COMPONENTS / "teacher")
    assert teacher["spec"]["predictor"]["minReplicas"] == 0
    assert ANNOTATION_RETENTION in teacher["metadata"]["annotations"]
    assert teacher["spec"]["predictor"]["model"]["runtime"] == Settings().serve_runtime


def test_serving_access_gives_only_the_server_a_token() -> None:
    component = yaml.safe_load((COMPONENTS / "serving-access" / "kustomization.yaml").read_text())
    [patch] = component["patches"]
    assert patch["target"] == {"kind": "Deployment", "name": "instruct-lab-bot-server"}
    assert yaml.safe_load(patch["patch"]) == [
        {"op": "replace", "path": "/spec/template/spec/automountServiceAccountToken", "value": True}
    ]
