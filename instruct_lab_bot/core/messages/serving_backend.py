"""What the serving backends say when a model cannot be served (pure): each refusal names
what an admin must fix, so a contributor reads "not your fault" and whom to ask."""

from __future__ import annotations

from instruct_lab_bot.core.messages.format import cut, format_duration

RBAC_FILE = "k8s/components/serving/rbac.yaml"


def cluster_refused(status: int, reason: str, detail: str, namespace: str) -> str:
    """A Kubernetes API refusal, in words a contributor understands."""
    detail = cut(detail.strip(), 300)
    if status == 403 and "quota" in detail.lower():
        return (
            f"The cluster has no room for this model: the quota of namespace `{namespace}` is "
            f"used up ({detail}). This is not your fault: an admin must raise the namespace's "
            "ResourceQuota or free GPUs, then run `serve` again."
        )
    if status in (401, 403):
        return (
            f"The bot may not create models in namespace `{namespace}` ({detail}). This is not "
            f"your fault: an admin must apply `{RBAC_FILE}` to that namespace."
        )
    if status == 404:
        return (
            f"The cluster has no KServe InferenceService API in namespace `{namespace}` "
            f"({detail}). This is not your fault: an admin must install KServe (OpenShift AI "
            "single-model serving) and create the namespace."
        )
    if status == 422:
        return (
            f"The cluster refused the model's InferenceService ({detail}). This is not your "
            "fault: an admin must check the bot's serving settings."
        )
    return (
        f"The cluster did not answer ({status} {reason}: {detail}). This is not your fault: "
        "try again later; an admin can check the bot's access to the cluster."
    )


def never_ready(seconds: float, detail: str = "") -> str:
    why = f": {cut(detail, 300)}" if detail else ""
    return (
        f"The model did not become ready within {format_duration(seconds)}{why}. It was "
        "removed; an admin can check the serving runtime and GPU capacity."
    )


def still_starting(seconds: float) -> str:
    return (
        f"The model did not answer within {format_duration(seconds)}; it is still starting. "
        "Try again in a few minutes (one that never becomes ready is removed, and the pull "
        "request told why)."
    )


def failed_to_start(detail: str) -> str:
    return (
        f"The model could not start ({cut(detail, 300)}). This is not your fault: an admin "
        "must check the serving runtime's image and the model's files."
    )


def not_served() -> str:
    return "No model is served for this pull request: run `serve` after a successful `train`."


def name_taken(name: str) -> str:
    return (
        f"A model named `{name}` already exists for another pull request; this is not your "
        "fault: an admin must remove it."
    )


def too_many_models(limit: int) -> str:
    return (
        f"{limit} models are already being served and all are busy. Try again in a few "
        "minutes; an admin can raise ILAB_BOT_SERVE_MAX_MODELS."
    )


def removed_notice(why: str, detail: str, seconds: float) -> str:
    """The PR comment when the sweep removed its model for a reason the PR should know (its
    closing needs no comment): `why` is the sweep's reason."""
    if why == "never_ready":
        return never_ready(seconds, detail)
    if why == "failed":
        return failed_to_start(detail) + " It was removed; `serve` tries again."
    return (
        f"The model served for chat was removed after {format_duration(seconds)} without a "
        "request. `serve` deploys it again."
    )
