"""A Kubernetes API emulator (aiohttp) for the `kserve` serving backend's tests.

The real client (`kubernetes-asyncio`, configured from a kubeconfig this module writes) talks
to it over HTTP. Every object written is checked against the real schemas: KServe's
InferenceService and ServingRuntime from the pinned `kserve` SDK's models
(`testkit/kserve_schema.py`, unknown fields refused), core objects with `kubernetes-validate`,
and names as the API server checks them (DNS-1035 for InferenceServices). A refused object
answers 422 with the schema's complaint, as the API server does, so a test that writes a bad
object fails.

It also plays KServe's controller and Knative: an InferenceService becomes Ready with a
`status.url` after `ready_after` reads (reconcile steps counted in reads, not time, so tests
wait on conditions), each has a Knative revision whose `actualReplicas` drops to 0 when a test
calls `scale_to_zero` or, with a `clock`, when the last request is older than the model's
scale-to-zero retention annotation (a newer request wakes it), and faults can be switched on:
a refused create (quota or RBAC, 403), an image that cannot be pulled (Ready False with the
reason), or never ready.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import yaml
from aiohttp import web
from jsonschema import Draft202012Validator

Obj = dict[str, Any]
ISVC_PATH = "/apis/serving.kserve.io/v1beta1/namespaces/{ns}/inferenceservices"
RUNTIME_PATH = "/apis/serving.kserve.io/v1alpha1/namespaces/{ns}/servingruntimes"
REVISION_PATH = "/apis/serving.knative.dev/v1/namespaces/{ns}/revisions"
CORE_PATH = "/api/v1/namespaces/{ns}/{plural}"
QUOTA_MESSAGE = (
    'inferenceservices.serving.kserve.io "{name}" is forbidden: exceeded quota: gpu-quota, '
    "requested: requests.nvidia.com/gpu=1, used: requests.nvidia.com/gpu=4, limited: "
    "requests.nvidia.com/gpu=4"
)
RBAC_MESSAGE = (
    'inferenceservices.serving.kserve.io is forbidden: User "system:serviceaccount:bot:bot" '
    'cannot create resource "inferenceservices" in API group "serving.kserve.io"'
)
PULL_MESSAGE = 'Back-off pulling image "quay.io/example/vllm:missing": ErrImagePull'
RETENTION = "autoscaling.knative.dev/scale-to-zero-pod-retention-period"
_DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_CORE_KINDS = {"serviceaccounts": "ServiceAccount", "secrets": "Secret", "services": "Service"}


@functools.cache
def _validators(schema_path: str) -> dict[str, Draft202012Validator]:
    defs = json.loads(Path(schema_path).read_text(encoding="utf-8"))["$defs"]
    return {
        kind: Draft202012Validator({"$ref": f"#/$defs/kserve.{model}", "$defs": defs})
        for kind, model in (
            ("InferenceService", "V1beta1InferenceService"),
            ("ServingRuntime", "V1alpha1ServingRuntime"),
        )
    }


def schema_problems(schema_path: Path, obj: Obj) -> list[str]:
    """Why the API server would refuse a KServe object ([] when it is valid)."""
    validator = _validators(str(schema_path)).get(str(obj.get("kind")))
    if validator is None:
        return [f"unknown kind {obj.get('kind')!r}"]
    found = [
        f"{'.'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message[:300]}"
        for e in validator.iter_errors(obj)
    ]
    name = str(obj.get("metadata", {}).get("name", ""))
    if obj.get("kind") == "InferenceService" and not (_DNS_1035.match(name) and len(name) <= 63):
        found.append(f"metadata.name: {name!r} is not a DNS-1035 label")
    return found


def _status(code: int, reason: str, message: str) -> web.Response:
    body: Obj = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure"}
    body |= {"message": message, "reason": reason, "code": code}
    return web.json_response(body, status=code)


def _matches(labels: dict[str, str], selector: str) -> bool:
    for term in filter(None, selector.split(",")):
        key, equals, value = term.partition("=")
        if (labels.get(key) != value) if equals else (key not in labels):
            return False
    return True


@dataclass
class Faults:
    """What goes wrong on the next writes and reconciles."""

    refuse_create: str = ""  # "quota" | "rbac": the next creates answer 403
    image_pull_error: bool = False  # revisions written now fail: Ready False, RevisionFailed
    never_ready: bool = False  # revisions written now stay Ready Unknown forever


@dataclass
class _Served:
    obj: Obj
    reads: int = 0
    replicas: int = 0
    revision: int = 1
    never_ready: bool = False  # the faults in force when this revision was written
    pull_error: bool = False


@dataclass
class K8sEmulator:
    """Namespaced KServe objects and their simulated controller; `start()` serves them."""

    schema_path: Path
    token: str = "emulator-token"  # noqa: S105 - a test credential
    ready_after: int = 2  # reads of an InferenceService before its controller marks it Ready
    model_url: str = ""  # status.url of every ready model ("" = a made-up host)
    #: Knative's clock: a ready model whose last request (the bot's annotation) is older than
    #: its retention annotation scales to zero; a newer request wakes it. None: only
    #: `scale_to_zero`/`wake` change replicas.
    clock: Callable[[], float] | None = None
    faults: Faults = field(default_factory=Faults)
    isvcs: dict[tuple[str, str], _Served] = field(default_factory=dict)
    objects: dict[tuple[str, str, str], Obj] = field(default_factory=dict)
    deleted: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    _version: int = 0
    _runner: web.AppRunner | None = None
    url: str = ""

    async def start(self) -> str:
        app = web.Application(middlewares=[self._auth])
        app.router.add_route("*", ISVC_PATH, self._isvcs)
        app.router.add_route("*", ISVC_PATH + "/{name}", self._isvc)
        app.router.add_post(RUNTIME_PATH, self._create_runtime)
        app.router.add_get(REVISION_PATH, self._revisions)
        app.router.add_post(CORE_PATH, self._create_core)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def kubeconfig(self, path: Path, namespace: str = "default") -> Path:
        """A kubeconfig for the real client: this server, a bearer token."""
        doc = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "emulator", "cluster": {"server": self.url}}],
            "users": [{"name": "bot", "user": {"token": self.token}}],
            "contexts": [
                {
                    "name": "emulator",
                    "context": {"cluster": "emulator", "user": "bot", "namespace": namespace},
                }
            ],
            "current-context": "emulator",
        }
        path.write_text(yaml.safe_dump(doc), encoding="utf-8")
        return path

    # -- controller -------------------------------------------------------------------------

    def scale_to_zero(self, name: str, namespace: str) -> None:
        """Knative after the retention window with no request: no pod left."""
        self.isvcs[(namespace, name)].replicas = 0

    def wake(self, name: str, namespace: str) -> None:
        """A request reached the activator: a pod again."""
        self.isvcs[(namespace, name)].replicas = 1

    def _reconcile(self, served: _Served) -> None:
        served.reads += 1
        obj, name = served.obj, served.obj["metadata"]["name"]
        generation = obj["metadata"]["generation"]
        status: Obj = {"observedGeneration": generation}
        if served.never_ready or served.reads < self.ready_after:
            status["conditions"] = [_condition("Ready", "Unknown", "RevisionMissing", "")]
        elif served.pull_error:
            status["conditions"] = [_condition("Ready", "False", "RevisionFailed", PULL_MESSAGE)]
            status["modelStatus"] = {
                "transitionStatus": "BlockedByFailedLoad",
                "lastFailureInfo": {"reason": "ModelLoadFailed", "message": PULL_MESSAGE},
            }
        else:
            ns = obj["metadata"]["namespace"]
            url = self.model_url or f"https://{name}-{ns}.apps.example.com"
            status["url"] = url
            status["conditions"] = [
                _condition(kind, "True", "", "")
                for kind in ("IngressReady", "PredictorReady", "Ready")
            ]
            status["modelStatus"] = {"transitionStatus": "UpToDate"}
            if served.reads == self.ready_after:
                served.replicas = 1
            self._idle(served)
        obj["status"] = status
        problems = schema_problems(self.schema_path, obj)
        assert not problems, problems

    def _idle(self, served: _Served) -> None:
        if self.clock is None:
            return
        annotations = served.obj["metadata"].get("annotations", {})
        last = float(annotations.get("instruct-lab-bot/last-request-at", "0"))
        retention = annotations.get(RETENTION, "0s").removesuffix("s")
        served.replicas = 0 if self.clock() - last > float(retention) else 1

    # -- HTTP -------------------------------------------------------------------------------

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return _status(401, "Unauthorized", "Unauthorized")
        response: web.StreamResponse = await handler(request)
        return response

    def _next_version(self) -> str:
        self._version += 1
        return str(self._version)

    async def _body(self, request: web.Request, kind: str) -> Obj | web.Response:
        try:
            obj = await request.json()
        except ValueError:
            return _status(400, "BadRequest", "the body is not JSON")
        if not isinstance(obj, dict) or obj.get("kind") != kind:
            return _status(400, "BadRequest", f"expected a {kind}")
        if (
            obj.get("metadata", {}).get("namespace", request.match_info["ns"])
            != (request.match_info["ns"])
        ):
            return _status(400, "BadRequest", "the namespace of the body does not match")
        problems = schema_problems(self.schema_path, obj)
        if problems:
            self.refused.extend(problems)
            return _status(422, "Invalid", f"{kind} is invalid: " + "; ".join(problems))
        return obj

    async def _isvcs(self, request: web.Request) -> web.Response:
        ns = request.match_info["ns"]
        if request.method == "GET":
            selector = request.query.get("labelSelector", "")
            items = []
            for (space, _), served in sorted(self.isvcs.items()):
                labels = served.obj["metadata"].get("labels", {})
                if space == ns and _matches(labels, selector):
                    self._reconcile(served)
                    items.append(copy.deepcopy(served.obj))
            kind = {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceServiceList"}
            return web.json_response(kind | {"metadata": {}, "items": items})
        if request.method != "POST":
            return _status(405, "MethodNotAllowed", request.method)
        body = await self._body(request, "InferenceService")
        if isinstance(body, web.Response):
            return body
        name = body["metadata"]["name"]
        if self.faults.refuse_create:
            template = QUOTA_MESSAGE if self.faults.refuse_create == "quota" else RBAC_MESSAGE
            return _status(403, "Forbidden", template.format(name=name))
        if (ns, name) in self.isvcs:
            return _status(409, "AlreadyExists", f'inferenceservices "{name}" already exists')
        body["metadata"] |= {"namespace": ns, "generation": 1, "uid": f"uid-{name}"}
        body["metadata"]["resourceVersion"] = self._next_version()
        body.pop("status", None)
        self.isvcs[(ns, name)] = _Served(
            body, never_ready=self.faults.never_ready, pull_error=self.faults.image_pull_error
        )
        return web.json_response(copy.deepcopy(body), status=201)

    async def _isvc(self, request: web.Request) -> web.Response:
        ns, name = request.match_info["ns"], request.match_info["name"]
        served = self.isvcs.get((ns, name))
        if served is None:
            return _status(404, "NotFound", f'inferenceservices "{name}" not found')
        if request.method == "GET":
            self._reconcile(served)
            return web.json_response(copy.deepcopy(served.obj))
        if request.method == "DELETE":
            del self.isvcs[(ns, name)]
            self.deleted.append(name)
            return web.json_response({"kind": "Status", "apiVersion": "v1", "status": "Success"})
        if request.method != "PUT":
            return _status(405, "MethodNotAllowed", request.method)
        return self._replace(served, await self._body(request, "InferenceService"))

    def _replace(self, served: _Served, body: Obj | web.Response) -> web.Response:
        if isinstance(body, web.Response):
            return body
        meta = served.obj["metadata"]
        if body["metadata"].get("resourceVersion") != meta["resourceVersion"]:
            return _status(409, "Conflict", "the object has been modified; read it again")
        if body.get("spec") != served.obj.get("spec"):  # a new model: a new revision
            meta["generation"] += 1
            served.revision += 1
            served.reads = 0
            served.replicas = 0
            served.never_ready = self.faults.never_ready
            served.pull_error = self.faults.image_pull_error
        body["metadata"] |= {k: meta[k] for k in ("generation", "uid", "namespace")}
        body["metadata"]["resourceVersion"] = self._next_version()
        body["status"] = served.obj.get("status", {})
        served.obj = body
        return web.json_response(copy.deepcopy(body))

    async def _revisions(self, request: web.Request) -> web.Response:
        ns = request.match_info["ns"]
        selector = request.query.get("labelSelector", "")
        items = []
        for (space, name), served in sorted(self.isvcs.items()):
            labels = {"serving.kserve.io/inferenceservice": name}
            if space == ns and _matches(labels, selector) and served.reads >= self.ready_after:
                revision = f"{name}-predictor-{served.revision:05d}"
                meta = {"name": revision, "namespace": ns, "labels": labels}
                status = {"actualReplicas": served.replicas, "desiredReplicas": served.replicas}
                items.append({"metadata": meta, "status": status})
        return web.json_response({"kind": "RevisionList", "metadata": {}, "items": items})

    async def _create_runtime(self, request: web.Request) -> web.Response:
        body = await self._body(request, "ServingRuntime")
        if isinstance(body, web.Response):
            return body
        self.objects[("ServingRuntime", request.match_info["ns"], body["metadata"]["name"])] = body
        return web.json_response(body, status=201)

    async def _create_core(self, request: web.Request) -> web.Response:
        plural = request.match_info["plural"]
        obj = await request.json()
        if _CORE_KINDS.get(plural) != obj.get("kind"):
            return _status(404, "NotFound", f"no {plural} here")
        try:
            kubernetes_validate.validate(obj, "1.33", strict=True)
        except kubernetes_validate.ValidationError as exc:
            return _status(422, "Invalid", str(exc)[:500])
        self.objects[(obj["kind"], request.match_info["ns"], obj["metadata"]["name"])] = obj
        return web.json_response(obj, status=201)


def _condition(kind: str, status: str, reason: str, message: str) -> Obj:
    found: Obj = {"type": kind, "status": status, "lastTransitionTime": "2026-01-01T00:00:00Z"}
    if reason:
        found["reason"] = reason
    if message:
        found["message"] = message
    return found
