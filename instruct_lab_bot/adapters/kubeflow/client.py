"""The Kubeflow Pipelines v2beta1 REST API (the Data Science Pipelines API of OpenShift AI):
the only code that talks to it.

Runs are submitted with the compiled pipeline inline (`pipeline_spec`), in an experiment found
or created by name; a run is read back whole (state, error, task details) and terminated on
cancel. Every request carries the service account's bearer token, read from its file each
time (projected tokens rotate), and is verified against the admin's CA bundle. Transient
failures (connection errors, 5xx, 429) are retried with the one retry policy.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

from instruct_lab_bot.core.retry import RetryPolicy, retry

__all__ = ["KfpClient", "KfpConfig", "KfpError", "KfpUnavailable", "RunView", "TaskView"]

API = "/apis/v2beta1"
_MAX_BODY = 8 * 1024 * 1024  # a run with every task's details stays far below this


class KfpError(Exception):
    """The API refused a request (4xx other than 429): retrying will not help."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(f"Kubeflow Pipelines API: HTTP {status}: {message[:300]}")


class KfpUnavailable(KfpError):
    """The API could not be reached or failed for the moment (connection, 5xx, 429; status
    0 when there was no answer)."""


@dataclass(frozen=True)
class KfpConfig:
    """Where the API is and how to reach it (ILAB_BOT_KFP_*)."""

    url: str
    token_file: str = ""
    ca_file: str = ""
    namespace: str = ""
    timeout: float = 30.0
    policy: RetryPolicy = field(
        default_factory=lambda: RetryPolicy(deadline=120.0, retry_on=(KfpUnavailable,))
    )


@dataclass(frozen=True)
class TaskView:
    """One task of a run, as the bot needs it."""

    name: str
    state: str
    pod_name: str = ""
    error: str = ""


@dataclass(frozen=True)
class RunView:
    """A run's state, its error if any, and its tasks (pipeline steps only)."""

    run_id: str
    state: str
    error: str = ""
    tasks: tuple[TaskView, ...] = ()
    created_at: float | None = None  # seconds since the epoch

    def task(self, name: str) -> TaskView | None:
        return next((t for t in self.tasks if t.name == name), None)


def _error_text(body: Mapping[str, Any] | None) -> str:
    error = (body or {}).get("error")
    return str(error.get("message") or "") if isinstance(error, Mapping) else ""


def run_view(body: Mapping[str, Any]) -> RunView:
    """A v2beta1 `Run` as a `RunView` (unknown fields ignored)."""
    details = body.get("run_details") or {}
    tasks = tuple(
        TaskView(
            name=str(task.get("display_name") or ""),
            state=str(task.get("state") or "RUNTIME_STATE_UNSPECIFIED"),
            pod_name=str(task.get("pod_name") or ""),
            error=_error_text(task),
        )
        for task in details.get("task_details") or ()
        if isinstance(task, Mapping)
    )
    state = str(body.get("state") or "RUNTIME_STATE_UNSPECIFIED")
    run_id = str(body.get("run_id") or "")
    return RunView(run_id, state, _error_text(body), tasks, _timestamp(body.get("created_at")))


def _timestamp(value: object) -> float | None:
    try:
        return datetime.fromisoformat(str(value)).timestamp() if value else None
    except ValueError:
        return None


class KfpClient:
    """An aiohttp session on one KFP API; `aclose` when done."""

    def __init__(self, config: KfpConfig) -> None:
        self.config = config
        self._base = config.url.rstrip("/") + API
        self._session: aiohttp.ClientSession | None = None

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            context = ssl.create_default_context(cafile=self.config.ca_file or None)
            connector = aiohttp.TCPConnector(ssl=context)
            timeout = aiohttp.ClientTimeout(total=self.config.timeout)
            self._session = aiohttp.ClientSession(connector=connector, timeout=timeout)
        return self._session

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self.config.token_file:
            token = Path(self.config.token_file).read_text(encoding="utf-8").strip()
            headers["Authorization"] = f"Bearer {token}"
        return headers

    async def _call(
        self, method: str, path: str, body: object = None, query: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        async def once() -> dict[str, Any]:
            try:
                return await self._once(method, path, body, query)
            except (aiohttp.ClientError, TimeoutError) as exc:  # includes TLS and DNS failures
                raise KfpUnavailable(0, f"{type(exc).__name__}: {exc}") from exc

        return await retry(once, self.config.policy)

    async def _once(
        self, method: str, path: str, body: object, query: Mapping[str, str] | None
    ) -> dict[str, Any]:
        session = self._open()
        async with session.request(
            method, self._base + path, json=body, params=query, headers=self._headers()
        ) as answer:
            raw = await answer.content.read(_MAX_BODY + 1)
            if answer.status == 429 or answer.status >= 500:
                raise KfpUnavailable(answer.status, raw.decode("utf-8", "replace"))
            if answer.status >= 400:
                raise KfpError(answer.status, _message(raw))
            if len(raw) > _MAX_BODY:
                raise KfpError(answer.status, "answer too large")
            return _json_object(raw, answer.status)

    def _query(self, **extra: str) -> dict[str, str]:
        query = {"namespace": self.config.namespace} if self.config.namespace else {}
        return query | {k: v for k, v in extra.items() if v}

    async def experiment_id(self, name: str) -> str:
        """The id of the experiment named `name`, created when missing."""
        listed = await self._call("GET", "/experiments", query=self._query(filter=_named(name)))
        for item in listed.get("experiments") or ():
            if item.get("display_name") == name and item.get("experiment_id"):
                return str(item["experiment_id"])
        body = {"display_name": name, "description": "instruct-lab-bot training runs"}
        if self.config.namespace:
            body["namespace"] = self.config.namespace
        created = await self._call("POST", "/experiments", body)
        return str(created["experiment_id"])

    async def create_run(
        self,
        display_name: str,
        experiment_id: str,
        pipeline_spec: Mapping[str, Any],
        parameters: Mapping[str, object],
        pipeline_root: str = "",
    ) -> RunView:
        """Submit a run of the compiled pipeline (inline) with these parameters."""
        runtime: dict[str, object] = {"parameters": dict(parameters)}
        if pipeline_root:
            runtime["pipeline_root"] = pipeline_root
        body = {
            "display_name": display_name,
            "experiment_id": experiment_id,
            "pipeline_spec": dict(pipeline_spec),
            "runtime_config": runtime,
        }
        return run_view(await self._call("POST", "/runs", body))

    async def find_run(self, experiment_id: str, display_name: str) -> RunView | None:
        """The newest run of that name in the experiment (a taken-over job's), None if none."""
        query = self._query(
            experiment_id=experiment_id, filter=_named(display_name), sort_by="created_at desc"
        )
        listed = await self._call("GET", "/runs", query=query | {"page_size": "5"})
        runs = [r for r in listed.get("runs") or () if r.get("display_name") == display_name]
        return run_view(runs[0]) if runs else None

    async def can_list_runs(self) -> int:
        """One page of runs (how many there are): proves the address, certificate and token."""
        listed = await self._call("GET", "/runs", query=self._query(page_size="1"))
        return int(listed.get("total_size") or 0)

    async def get_run(self, run_id: str) -> RunView:
        return run_view(await self._call("GET", f"/runs/{quote(run_id, safe='')}"))

    async def terminate_run(self, run_id: str) -> None:
        await self._call("POST", f"/runs/{quote(run_id, safe='')}:terminate", {})


def _named(name: str) -> str:
    predicate = {"key": "display_name", "operation": "EQUALS", "string_value": name}
    return json.dumps({"predicates": [predicate]})


def _message(raw: bytes) -> str:
    try:
        body = json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")
    if isinstance(body, Mapping):
        return str(body.get("message") or body.get("error") or body)
    return str(body)


def _json_object(raw: bytes, status: int) -> dict[str, Any]:
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise KfpError(status, "answer is not JSON") from None
    if not isinstance(body, dict):
        raise KfpError(status, "answer is not a JSON object")
    return body
