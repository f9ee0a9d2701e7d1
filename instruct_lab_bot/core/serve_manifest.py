"""A PR model's KServe InferenceService, and what its status says (pure).

One `serving.kserve.io/v1beta1` InferenceService per PR, in Knative (serverless) mode so it
scales to zero: `minReplicas: 0`, Knative's scale-to-zero retention as an annotation, the
model read from the object store by `storageUri` with the service account holding the store's
secret, on the configured ServingRuntime (vLLM by default), with GPUs. Labels select the bot's
models; annotations name the PR, the train job and the last request (the TTL sweep's clock).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from instruct_lab_bot.core import serve_names as names
from instruct_lab_bot.core.refs import PullRequestRef
from instruct_lab_bot.core.serving import ModelRef, ServedModel, ServeState

API_VERSION = "serving.kserve.io/v1beta1"
KIND = "InferenceService"
MODEL_FORMAT = "vLLM"
#: Model status transitions KServe reports when the model will not load without a change.
FAILED_TRANSITIONS = frozenset({"BlockedByFailedLoad", "InvalidSpec"})
#: Ready=False reasons that will not resolve by waiting (Knative's, as KServe propagates).
FAILED_REASONS = frozenset({"RevisionFailed", "ContainerMissing", "ProgressDeadlineExceeded"})

Obj = dict[str, Any]


@dataclass(frozen=True)
class IsvcOptions:
    """The deployment's choices (from settings)."""

    namespace: str
    runtime: str
    service_account: str
    gpus: int
    retention_seconds: int
    bot: str
    cold_start_seconds: float = 120.0


def inference_service(model: ModelRef, options: IsvcOptions, now: float) -> Obj:
    """The InferenceService serving `model` (create or replace with this body)."""
    annotations = {
        names.ANNOTATION_DEPLOYMENT_MODE: "Serverless",
        names.ANNOTATION_RETENTION: f"{options.retention_seconds}s",
        names.ANNOTATION_REPO: model.pull.repo.full_name,
        names.ANNOTATION_PULL: str(model.pull.number),
        names.ANNOTATION_TRAIN_JOB: model.train_job,
        names.ANNOTATION_CREATED: f"{now:.0f}",
        names.ANNOTATION_LAST_REQUEST: f"{now:.0f}",
    }
    if model.base_model:
        annotations[names.ANNOTATION_BASE_MODEL] = model.base_model[:253]
    if model.data_job:
        annotations[names.ANNOTATION_DATA_JOB] = model.data_job
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": names.served_name(model.pull),
            "namespace": options.namespace,
            "labels": names.pr_labels(model.pull, options.bot),
            "annotations": annotations,
        },
        "spec": {"predictor": _predictor(model, options)},
    }


def _predictor(model: ModelRef, options: IsvcOptions) -> Obj:
    resources: Obj = {"requests": {"cpu": "1", "memory": "8Gi"}, "limits": {"memory": "24Gi"}}
    if options.gpus:
        resources["requests"]["nvidia.com/gpu"] = str(options.gpus)
        resources["limits"]["nvidia.com/gpu"] = str(options.gpus)
    predictor: Obj = {
        "minReplicas": 0,
        "maxReplicas": 1,
        "model": {
            "modelFormat": {"name": MODEL_FORMAT},
            "runtime": options.runtime,
            "storageUri": model.storage_uri,
            "resources": resources,
        },
    }
    if options.service_account:
        predictor["serviceAccountName"] = options.service_account
    return predictor


def _condition(obj: Obj, kind: str) -> Mapping[str, Any]:
    for condition in obj.get("status", {}).get("conditions", []) or []:
        if condition.get("type") == kind:
            return dict(condition)
    return {}


def _failure(obj: Obj) -> str:
    """Why the model will not become ready, "" while it still may."""
    status = obj.get("status", {}) or {}
    model_status = status.get("modelStatus", {}) or {}
    ready = _condition(obj, "Ready")
    info = model_status.get("lastFailureInfo", {}) or {}
    if model_status.get("transitionStatus") in FAILED_TRANSITIONS or (
        ready.get("status") == "False" and ready.get("reason") in FAILED_REASONS
    ):
        found = info.get("message") or ready.get("message") or ready.get("reason")
        return str(found or "the model failed to load")
    return ""


def _stamp(annotations: Mapping[str, str], key: str) -> float:
    try:
        return float(annotations.get(key, "0"))
    except ValueError:
        return 0.0


def served_model(obj: Obj, revisions: Sequence[Obj], options: IsvcOptions) -> ServedModel | None:
    """What an InferenceService's status says; None when it belongs to no PR."""
    meta = obj.get("metadata", {})
    annotations = meta.get("annotations", {}) or {}
    pull = names.pull_from_annotations(annotations)
    if pull is None:
        return None
    url = str((obj.get("status", {}) or {}).get("url") or "")
    status = obj.get("status", {}) or {}
    # A new spec's status is the old one's until KServe observes it.
    current = status.get("observedGeneration", meta.get("generation")) == meta.get("generation")
    failure = _failure(obj) if current else ""
    ready = current and _condition(obj, "Ready").get("status") == "True" and bool(url)
    if failure:
        state = ServeState.FAILED
    elif not ready:
        state = ServeState.DEPLOYING
    elif revisions and all(_replicas(r) == 0 for r in revisions):
        state = ServeState.SCALED_TO_ZERO
    else:
        state = ServeState.READY
    return ServedModel(
        pull,
        str(meta.get("name", "")),
        annotations.get(names.ANNOTATION_TRAIN_JOB, ""),
        state,
        url=url if ready else "",
        message=failure,
        cold_start_seconds=options.cold_start_seconds,
        last_request_at=_stamp(annotations, names.ANNOTATION_LAST_REQUEST),
        created_at=_stamp(annotations, names.ANNOTATION_CREATED),
    )


def _replicas(revision: Obj) -> int:
    status = revision.get("status", {}) or {}
    try:
        return int(status.get("actualReplicas", 0) or 0)
    except (TypeError, ValueError):
        return 0


def belongs_to(obj: Obj, pull: PullRequestRef) -> bool:
    """True when the object's annotations name `pull` (a name collision is never trusted)."""
    annotations = obj.get("metadata", {}).get("annotations", {}) or {}
    found = names.pull_from_annotations(annotations)
    return found is not None and found.repo.key == pull.repo.key and found.number == pull.number
