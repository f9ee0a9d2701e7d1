"""KServe's own object definitions, as a JSON schema the Kubernetes emulator validates against.

The `kserve` Python SDK on PyPI (pinned below) ships the OpenAPI-generated model classes of
every KServe type (`kserve/models/v1beta1_inference_service.py`, ...): their `openapi_types`
(attribute -> type), `attribute_map` (attribute -> JSON key) and required attributes are the
CRDs' structure. `make testdata` downloads the wheel with pip (no dependencies, nothing
imported or installed) and this module turns those classes into one draft 2020-12 schema whose
core types (`V1Container`, `V1ObjectMeta`, ...) point into `kubernetes-validate`'s strict
definitions. Unknown fields are refused at every level, as the API server's structural schema
(with field validation Strict) does. Three Knative/meta types (`STRING_TYPES`) marshal to
strings though the generator describes them as objects: they are strings here.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import kubernetes_validate.utils  # type: ignore[import-untyped]

KSERVE_SDK = "kserve==0.21.0"
SCHEMA_FILE = "kserve-sdk/schema.json"
PREFIX = "kserve."
_REQUIRED = re.compile(r"Invalid value for `(\w+)`, must not be `None`")
#: Go types that marshal to JSON strings, which the generator described as objects.
STRING_TYPES = frozenset({"KnativeURL", "KnativeVolatileTime", "V1Time"})
MARKER = f"{KSERVE_SDK} (schema format 2)"
_K8S_GROUPS = ("core.v1", "apimachinery.pkg.apis.meta.v1", "apps.v1", "autoscaling.v2")


class SchemaError(RuntimeError):
    pass


def _k8s_definitions() -> dict[str, Any]:
    version = kubernetes_validate.utils.latest_version()
    base = Path(kubernetes_validate.utils.__file__).parent / "kubernetes-json-schema"
    folder = base / f"v{version}-local-strict"
    doc = json.loads((folder / "_definitions.json").read_text(encoding="utf-8"))
    defs: dict[str, Any] = doc["$defs"]
    return defs


def _class_info(tree: ast.Module, source: str) -> tuple[str, dict[str, str], dict[str, str]]:
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            found: dict[str, dict[str, str]] = {}
            for stmt in node.body:
                if (
                    isinstance(stmt, ast.Assign)
                    and isinstance(stmt.targets[0], ast.Name)
                    and stmt.targets[0].id in ("openapi_types", "attribute_map")
                ):
                    found[stmt.targets[0].id] = ast.literal_eval(stmt.value)
            return node.name, found.get("openapi_types", {}), found.get("attribute_map", {})
    raise SchemaError("no class in a model file")


def _k8s_ref(name: str, k8s: dict[str, Any]) -> str | None:
    short = name.removeprefix("K8sIoApiAppsV1") if name.startswith("K8sIoApiAppsV1") else None
    if short is None and name.startswith("V1"):
        short = name[2:]
    if short is None:
        return None
    for group in _K8S_GROUPS:
        for head in ("io.k8s.api.", "io.k8s."):
            key = f"{head}{group}.{short}"
            if key in k8s:
                return key
    return None


def _type(spec: str, known: set[str], k8s: dict[str, Any]) -> dict[str, Any]:
    """The JSON schema of one openapi-generator type string."""
    spec = spec.strip()
    if spec.startswith("list[") and spec.endswith("]"):
        return {"type": "array", "items": _type(spec[5:-1], known, k8s)}
    if spec.startswith("dict(") and spec.endswith(")"):
        value = spec[5:-1].split(",", 1)[1]
        return {"type": "object", "additionalProperties": _type(value, known, k8s)}
    simple: dict[str, dict[str, Any]] = {
        "str": {"type": "string"},
        "int": {"type": "integer"},
        "float": {"type": "number"},
        "bool": {"type": "boolean"},
        "datetime": {"type": "string"},
        "date": {"type": "string"},
        "object": {},
        "ResourceQuantity": {"type": ["string", "number"]},
    }
    if spec in STRING_TYPES:
        return {"type": "string"}
    if spec in simple:
        return simple[spec]
    if spec in known:
        return {"$ref": f"#/$defs/{PREFIX}{spec}"}
    ref = _k8s_ref(spec, k8s)
    if ref is not None:
        return {"$ref": f"#/$defs/{ref}"}
    # A few LLMInferenceService types are named but not shipped by the SDK: left unchecked.
    return {"description": f"{spec}: not in the kserve SDK models, unchecked"}


def build_schema(models: dict[str, str]) -> dict[str, Any]:
    """One schema document from the model files' sources (file name -> text)."""
    k8s = _k8s_definitions()
    parsed = []
    for source in models.values():
        name, types, keys = _class_info(ast.parse(source), source)
        parsed.append((name, types, keys, set(_REQUIRED.findall(source))))
    known = {name for name, *_ in parsed}
    defs: dict[str, Any] = dict(k8s)
    for name, types, keys, required in parsed:
        defs[PREFIX + name] = {
            "type": "object",
            "properties": {keys[a]: _type(t, known, k8s) for a, t in types.items()},
            "required": sorted(keys[a] for a in required if a in keys),
            "additionalProperties": False,
        }
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$defs": defs}


def _download_models(workdir: Path) -> dict[str, str]:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "-q",
            "--no-deps",
            "-d",
            str(workdir),
            "--only-binary=:all:",
            KSERVE_SDK,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    wheels = sorted(workdir.glob("kserve-*.whl"))
    if proc.returncode != 0 or len(wheels) != 1:
        raise SchemaError(f"pip download {KSERVE_SDK} failed: {proc.stderr.strip()[-500:]}")
    with zipfile.ZipFile(wheels[0]) as wheel:
        return {
            name: wheel.read(name).decode("utf-8")
            for name in wheel.namelist()
            if name.startswith("kserve/models/") and not name.endswith("__init__.py")
        }


def is_built(cache: Path) -> bool:
    """True when `cache` holds the schema built from the pinned SDK."""
    target = cache / SCHEMA_FILE
    marker = target.with_name("schema.version")
    return target.is_file() and marker.is_file() and marker.read_text().strip() == MARKER


def ensure_kserve_schema(cache: Path) -> Path:
    """The schema file in `cache`, built from the pinned SDK unless already there."""
    target = cache / SCHEMA_FILE
    marker = target.with_name("schema.version")
    if is_built(cache):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache, prefix=".pip-download-") as workdir:
        schema = build_schema(_download_models(Path(workdir)))
    target.write_text(json.dumps(schema), encoding="utf-8")
    marker.write_text(MARKER + "\n", encoding="utf-8")
    return target
