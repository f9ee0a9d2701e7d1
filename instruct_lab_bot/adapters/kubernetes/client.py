"""InferenceServices and their Knative revisions, as plain dicts, through `kubernetes-asyncio`.

Configuration: the pod's service account when running in a cluster (`KUBERNETES_SERVICE_HOST`
set), else a kubeconfig (`KUBECONFIG` or `~/.kube/config`, or the file given). Every failure is
a `KubeError` carrying the API server's status code, reason and message, so the serving
backend can tell a refusal the admin must fix (403 quota/RBAC) from a missing object (404).
"""

from __future__ import annotations

import os
from typing import Any

import orjson
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

ISVC = ("serving.kserve.io", "v1beta1", "inferenceservices")
REVISIONS = ("serving.knative.dev", "v1", "revisions")
ISVC_LABEL = "serving.kserve.io/inferenceservice"
Obj = dict[str, Any]


class KubeError(Exception):
    """The API server refused or could not be reached (`status` 0)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


def _error(exc: ApiException) -> KubeError:
    reason, message = str(exc.reason or ""), ""
    try:
        body = orjson.loads(exc.body or b"{}")
        reason = str(body.get("reason") or reason)
        message = str(body.get("message") or "")
    except orjson.JSONDecodeError:
        message = str(exc.body or "")[:500]
    return KubeError(int(exc.status or 0), reason, message)


async def open_kube(kubeconfig: str | None = None) -> KubeApi:
    """A client for the cluster this process runs in, or the kubeconfig's current context."""
    configuration = client.Configuration()
    if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    else:
        await config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    return KubeApi(client.ApiClient(configuration))


class KubeApi:
    """The calls the kserve backend makes (namespaced custom objects)."""

    def __init__(self, api: client.ApiClient) -> None:
        self._api = api
        self._custom = client.CustomObjectsApi(api)

    async def aclose(self) -> None:
        await self._api.close()

    async def get_isvc(self, namespace: str, name: str) -> Obj | None:
        try:
            found: Obj = await self._custom.get_namespaced_custom_object(
                *ISVC[:2], namespace, ISVC[2], name
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise _error(exc) from None
        return found

    async def create_isvc(self, namespace: str, body: Obj) -> Obj:
        try:
            created: Obj = await self._custom.create_namespaced_custom_object(
                *ISVC[:2], namespace, ISVC[2], body, field_validation="Strict"
            )
        except ApiException as exc:
            raise _error(exc) from None
        return created

    async def replace_isvc(self, namespace: str, body: Obj) -> Obj:
        """Replace (the body carries the resourceVersion read: 409 when it changed since)."""
        name = body["metadata"]["name"]
        try:
            replaced: Obj = await self._custom.replace_namespaced_custom_object(
                *ISVC[:2], namespace, ISVC[2], name, body, field_validation="Strict"
            )
        except ApiException as exc:
            raise _error(exc) from None
        return replaced

    async def delete_isvc(self, namespace: str, name: str) -> bool:
        """Delete (foreground: its revisions and pods go with it); False when not there."""
        try:
            await self._custom.delete_namespaced_custom_object(
                *ISVC[:2], namespace, ISVC[2], name, propagation_policy="Foreground"
            )
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise _error(exc) from None
        return True

    async def list_isvc(self, namespace: str, selector: str) -> list[Obj]:
        try:
            found = await self._custom.list_namespaced_custom_object(
                *ISVC[:2], namespace, ISVC[2], label_selector=selector
            )
        except ApiException as exc:
            raise _error(exc) from None
        return list(found.get("items", []))

    async def list_revisions(self, namespace: str, isvc: str = "") -> list[Obj]:
        """The Knative revisions behind an InferenceService (their `actualReplicas`), or
        behind every InferenceService of the namespace."""
        selector = f"{ISVC_LABEL}={isvc}" if isvc else ISVC_LABEL
        try:
            found = await self._custom.list_namespaced_custom_object(
                *REVISIONS[:2], namespace, REVISIONS[2], label_selector=selector
            )
        except ApiException as exc:
            raise _error(exc) from None
        return list(found.get("items", []))
