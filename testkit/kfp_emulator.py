"""A Kubeflow Pipelines v2beta1 API emulator (aiohttp) for the Kubeflow training backend.

Every request body is checked against the API's own models from `kfp-server-api` (each key
must be a field of the model, each value of the field's type or enum, then the model is built
with the package's client-side validation), an inline pipeline spec against kfp's
`PipelineSpec`/`PlatformSpec` protobuf schema, and a run's parameters against the pipeline's
inputs, as the real API server does. Every answer is checked the same way before it is sent.

Runs move through states one step per read (no timers: a test waits on states, not on time):
PENDING → RUNNING, then each task of the DAG RUNNING → SUCCEEDED in turn, then the run
SUCCEEDED. `fail_task` makes that task (and the run) FAIL; `hang_task` keeps it RUNNING until
the run is terminated (CANCELING, then CANCELED). `on_task(run, task, state)` is awaited as
each task changes state (a test writes what the pod would write there); with `pods` (e.g.
testkit/kfp_pods.py, the pipeline's own step code) a task stays RUNNING until its pod ends and
then SUCCEEDED or FAILED by its outcome. Bearer-token auth.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import kfp_server_api
from aiohttp import web
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

API = "/apis/v2beta1"
_LIST = re.compile(r"list\[(.+)\]")
_DICT = re.compile(r"dict\(str, (.+)\)")
_PRIMITIVES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "object": (object,),
    "datetime": (str,),
}


class Invalid(ValueError):
    """A body the real API would refuse (400)."""


def check_model(value: object, type_name: str, where: str = "body") -> None:
    """`value` (decoded JSON) fits kfp-server-api's model `type_name`, recursively."""
    if (found := _LIST.fullmatch(type_name)) is not None:
        if not isinstance(value, list):
            raise Invalid(f"{where}: expected a list")
        for i, item in enumerate(value):
            check_model(item, found.group(1), f"{where}[{i}]")
        return
    if (found := _DICT.fullmatch(type_name)) is not None:
        if not isinstance(value, dict):
            raise Invalid(f"{where}: expected an object")
        for key, item in value.items():
            check_model(item, found.group(1), f"{where}.{key}")
        return
    if type_name in _PRIMITIVES:
        ok = isinstance(value, _PRIMITIVES[type_name]) and not (
            type_name in ("int", "float") and isinstance(value, bool)
        )
        if not ok:
            raise Invalid(f"{where}: expected {type_name}")
        return
    _check_class(value, getattr(kfp_server_api.models, type_name), where)


def _check_class(value: object, klass: Any, where: str) -> None:
    allowed = getattr(klass, "allowable_values", None)
    if allowed is not None:  # an enum model
        if value not in allowed:
            raise Invalid(f"{where}: {value!r} is not one of {sorted(allowed)}")
        return
    if not isinstance(value, dict):
        raise Invalid(f"{where}: expected an object ({klass.__name__})")
    by_json = {json_key: attr for attr, json_key in klass.attribute_map.items()}
    for key, item in value.items():
        if key not in by_json:
            raise Invalid(f"{where}: unknown field {key!r} of {klass.__name__}")
        check_model(item, klass.openapi_types[by_json[key]], f"{where}.{key}")
    client = kfp_server_api.ApiClient()
    try:  # the package's own deserializer and setters (client-side validation on)
        client._ApiClient__deserialize(value, klass.__name__)
    except (ValueError, TypeError) as exc:
        raise Invalid(f"{where}: {exc}") from None


def check_pipeline(spec: dict[str, Any]) -> dict[str, Any]:
    """The inline spec parses as kfp's IR; the PipelineSpec part (for its inputs)."""
    pipeline = spec.get("pipeline_spec", spec) if "platform_spec" in spec else spec
    try:
        json_format.ParseDict(pipeline, pipeline_spec_pb2.PipelineSpec())
        if "platform_spec" in spec:
            json_format.ParseDict(spec["platform_spec"], pipeline_spec_pb2.PlatformSpec())
    except json_format.ParseError as exc:
        raise Invalid(f"pipeline_spec: {exc}") from None
    return dict(pipeline)


@dataclass
class EmulatedTask:
    name: str
    state: str = "PENDING"
    task_id: str = field(default_factory=lambda: uuid.uuid4().hex)


@dataclass
class EmulatedRun:
    run_id: str
    body: dict[str, Any]
    tasks: list[EmulatedTask]
    state: str = "PENDING"
    error: str = ""
    reads: int = 0

    @property
    def parameters(self) -> dict[str, Any]:
        return dict(self.body.get("runtime_config", {}).get("parameters", {}))


OnTask = Callable[[EmulatedRun, str, str], Awaitable[None]]
#: Runs one task of a run as its pod would; True when it succeeded (testkit/kfp_pods.py).
Pod = Callable[[EmulatedRun, str], Coroutine[Any, Any, bool]]
_TERMINAL = {"SUCCEEDED", "FAILED", "CANCELED"}


@dataclass
class KfpEmulator:
    """The emulated API's state; `app()` serves it."""

    token: str = "kfp-test-token"  # noqa: S105 - the emulator's own test token
    fail_task: str = ""
    hang_task: str = ""
    reject_runs: int = 0  # answer this many run submissions with 503 first
    on_task: OnTask | None = None
    pods: Pod | None = None  # when set, a task runs until its pod ends (else: one step a read)
    runs: dict[str, EmulatedRun] = field(default_factory=dict)
    _pods: dict[str, asyncio.Task[bool]] = field(default_factory=dict)
    experiments: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    _ids: Any = field(default_factory=itertools.count)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._auth])
        app.router.add_get(API + "/healthz", self._healthz)
        app.router.add_get(API + "/experiments", self._list_experiments)
        app.router.add_post(API + "/experiments", self._create_experiment)
        app.router.add_get(API + "/runs", self._list_runs)
        app.router.add_post(API + "/runs", self._create_run)
        app.router.add_get(API + "/runs/{run_id}", self._get_run)
        app.router.add_post(API + "/runs/{run_id}:terminate", self._terminate)
        return app

    @web.middleware
    async def _auth(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        self.requests.append((request.method, request.path_qs))
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return _error(401, "Unauthenticated: invalid bearer token")
        try:
            return await handler(request)
        except Invalid as exc:
            return _error(400, f"Invalid input error: {exc}")

    async def _healthz(self, _: web.Request) -> web.Response:
        return _answer({"multi_user": False}, "V2beta1GetHealthzResponse")

    async def _list_experiments(self, request: web.Request) -> web.Response:
        name = _filter_name(request)
        found = [e for e in self.experiments.values() if name in (None, e["display_name"])]
        body = {"experiments": found, "total_size": len(found)}
        return _answer(body, "V2beta1ListExperimentsResponse")

    async def _create_experiment(self, request: web.Request) -> web.Response:
        body = await _body(request, "V2beta1Experiment")
        if not body.get("display_name"):
            raise Invalid("experiment display_name is required")
        experiment = {**body, "experiment_id": uuid.uuid4().hex, "created_at": _now()}
        experiment["storage_state"] = "AVAILABLE"
        self.experiments[experiment["experiment_id"]] = experiment
        return _answer(experiment, "V2beta1Experiment")

    async def _create_run(self, request: web.Request) -> web.Response:
        body = await _body(request, "V2beta1Run")
        if self.reject_runs > 0:
            self.reject_runs -= 1
            return _error(503, "upstream connect error")
        if not body.get("display_name"):
            raise Invalid("run display_name is required")
        if "pipeline_spec" not in body and "pipeline_version_reference" not in body:
            raise Invalid("neither pipeline spec nor pipeline version reference is given")
        experiment = body.get("experiment_id", "")
        if experiment and experiment not in self.experiments:
            return _error(404, f"experiment {experiment} not found")
        tasks = _check_parameters(check_pipeline(body["pipeline_spec"]), body)
        run = EmulatedRun(f"run-{next(self._ids)}-{uuid.uuid4().hex[:8]}", body, tasks)
        run.body["created_at"] = _now()
        self.runs[run.run_id] = run
        return _answer(_run_json(run), "V2beta1Run")

    async def _list_runs(self, request: web.Request) -> web.Response:
        name = _filter_name(request)
        experiment = request.query.get("experiment_id")
        found = [
            r
            for r in reversed(self.runs.values())
            if name in (None, r.body["display_name"])
            and experiment in (None, r.body.get("experiment_id"))
        ]
        body = {"runs": [_run_json(r) for r in found], "total_size": len(found)}
        return _answer(body, "V2beta1ListRunsResponse")

    async def _get_run(self, request: web.Request) -> web.Response:
        run = self._run(request)
        run.reads += 1
        await self._advance(run)
        return _answer(_run_json(run), "V2beta1Run")

    async def _terminate(self, request: web.Request) -> web.Response:
        run = self._run(request)
        await _body(request, "object")
        if run.state not in _TERMINAL:
            run.state = "CANCELING"
        return web.json_response({})

    def _run(self, request: web.Request) -> EmulatedRun:
        run = self.runs.get(request.match_info["run_id"])
        if run is None:
            raise web.HTTPNotFound(text=json.dumps({"error": "run not found", "code": 5}))
        return run

    async def _set(self, run: EmulatedRun, task: EmulatedTask, state: str) -> None:
        task.state = state
        if self.on_task is not None:
            await self.on_task(run, task.name, state)

    async def _advance(self, run: EmulatedRun) -> None:
        """One step of the run's life per read."""
        if run.state in _TERMINAL:
            return
        if run.state == "CANCELING":
            for task in run.tasks:
                if task.state not in _TERMINAL:
                    await self._set(run, task, "CANCELED")
            run.state = "CANCELED"
            return
        run.state = "RUNNING"
        current = next((t for t in run.tasks if t.state not in _TERMINAL), None)
        if current is None:
            run.state = "SUCCEEDED"
        elif current.state == "PENDING":
            await self._set(run, current, "RUNNING")
            if self.pods is not None:
                self._pods[current.task_id] = asyncio.create_task(self.pods(run, current.name))
        elif current.task_id in self._pods:
            await self._pod_ended(run, current)
        elif current.name == self.hang_task:
            return
        elif current.name == self.fail_task:
            await self._set(run, current, "FAILED")
            run.state, run.error = "FAILED", f"task {current.name} failed: exit code 1"
        else:
            await self._set(run, current, "SUCCEEDED")

    async def _pod_ended(self, run: EmulatedRun, task: EmulatedTask) -> None:
        pod = self._pods[task.task_id]
        if not pod.done():
            return
        del self._pods[task.task_id]
        if not pod.cancelled() and pod.exception() is None and pod.result():
            await self._set(run, task, "SUCCEEDED")
        else:
            await self._set(run, task, "FAILED")
            run.state, run.error = "FAILED", f"task {task.name} failed: exit code 1"

    async def aclose(self) -> None:
        """Stop the pods still running."""
        for pod in self._pods.values():
            pod.cancel()
        await asyncio.gather(*self._pods.values(), return_exceptions=True)


def _check_parameters(pipeline: dict[str, Any], body: dict[str, Any]) -> list[EmulatedTask]:
    root = pipeline.get("root", {})
    declared = root.get("inputDefinitions", {}).get("parameters", {})
    given = body.get("runtime_config", {}).get("parameters", {})
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise Invalid(f"parameters not defined by the pipeline: {unknown}")
    missing = sorted(
        name
        for name, spec in declared.items()
        if name not in given and "defaultValue" not in spec and not spec.get("isOptional")
    )
    if missing:
        raise Invalid(f"parameters required by the pipeline are missing: {missing}")
    return [EmulatedTask(name) for name in _in_order(root.get("dag", {}).get("tasks", {}))]


def _in_order(tasks: dict[str, Any]) -> list[str]:
    """The DAG's tasks, each after those it depends on (the IR lists them by name)."""
    done: list[str] = []
    while len(done) < len(tasks):
        ready = [
            name
            for name, task in sorted(tasks.items())
            if name not in done and set(task.get("dependentTasks", [])) <= set(done)
        ]
        if not ready:
            raise Invalid("the pipeline's tasks depend on each other in a cycle")
        done.append(ready[0])
    return done


def _run_json(run: EmulatedRun) -> dict[str, Any]:
    # As KFP lists them: the root DAG too, and a finished driver beside each started step's
    # executor, under the step's name.
    tasks: list[dict[str, Any]] = [
        {"run_id": run.run_id, "task_id": "root", "display_name": "root", "state": run.state}
    ]
    for t in run.tasks:
        entry = {"run_id": run.run_id, "task_id": t.task_id, "display_name": t.name}
        if t.state == "PENDING":
            tasks.append(entry | {"state": "PENDING"})
            continue
        tasks.append(entry | {"task_id": t.task_id + "-driver", "state": "SUCCEEDED"})
        tasks.append(entry | {"state": t.state, "pod_name": f"{run.run_id}-{t.name}"})
    body = {**run.body, "run_id": run.run_id, "state": run.state}
    body["run_details"] = {"task_details": tasks}
    if run.error:
        body["error"] = {"code": 2, "message": run.error}
    if run.state in _TERMINAL:
        body["finished_at"] = _now()
    return body


async def _body(request: web.Request, model: str) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise Invalid("body is not JSON") from None
    if not isinstance(body, dict):
        raise Invalid("body is not an object")
    if model != "object":
        check_model(body, model)
    return body


def _filter_name(request: web.Request) -> str | None:
    raw = request.query.get("filter")
    if raw is None:
        return None
    try:
        body = json.loads(raw)
    except ValueError:
        raise Invalid("filter is not JSON") from None
    check_model(body, "V2beta1Filter", "filter")
    for predicate in body.get("predicates", []):
        if predicate.get("key") == "display_name" and predicate.get("operation") == "EQUALS":
            return str(predicate.get("string_value", ""))
    raise Invalid("the emulator filters on display_name EQUALS only")


def _answer(body: dict[str, Any], model: str) -> web.Response:
    check_model(body, model, "answer")  # what is sent back is API-shaped too
    return web.json_response(body)


def _error(status: int, message: str) -> web.Response:
    body = {"error": message, "code": 3, "message": message}
    return web.json_response(body, status=status)


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")
