"""Names, labels and annotations of a PR's served model on Kubernetes (pure).

An InferenceService name must be a DNS-1035 label, and KServe's serverless mode adds
`-predictor` and the namespace to it in the Knative route's host name (each host label at
most 63 characters), so the bot keeps names to `MAX_NAME` characters. The name is
`pr<number>-<repo slug>-<hash>`: readable in `oc get isvc`, and the hash of the case-folded
`owner/repo#number` keeps two PRs apart even when their slugs are cut or fold to the same text
(`a.b/c` and `a-b/c`). The PR it belongs to is read back from annotations, never the name.
"""

from __future__ import annotations

import hashlib
import re

from instruct_lab_bot.core.refs import PullRequestRef, RepoRef

MAX_NAME = 45
HASH_CHARS = 8
MANAGED_BY = "app.kubernetes.io/managed-by"
PART_OF = "app.kubernetes.io/part-of"
LABEL_PR = "instruct-lab-bot/pull"
LABEL_ROLE = "instruct-lab-bot/role"
ROLE_PR_MODEL = "pr-model"
ANNOTATION_REPO = "instruct-lab-bot/repository"
ANNOTATION_PULL = "instruct-lab-bot/pull-request"
ANNOTATION_TRAIN_JOB = "instruct-lab-bot/train-job"
ANNOTATION_BASE_MODEL = "instruct-lab-bot/base-model"
ANNOTATION_DATA_JOB = "instruct-lab-bot/data-job"
ANNOTATION_CREATED = "instruct-lab-bot/created-at"
ANNOTATION_LAST_REQUEST = "instruct-lab-bot/last-request-at"
#: Knative's per-revision scale-to-zero retention (how long the last pod stays after traffic).
ANNOTATION_RETENTION = "autoscaling.knative.dev/scale-to-zero-pod-retention-period"
ANNOTATION_DEPLOYMENT_MODE = "serving.kserve.io/deploymentMode"

_DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")


def served_name(pull: PullRequestRef, max_len: int = MAX_NAME) -> str:
    """The InferenceService name of `pull`: DNS-1035, at most `max_len` characters, and the
    same for every spelling of the repository's case."""
    identity = f"{pull.repo.key}#{pull.number}"
    digest = hashlib.sha256(identity.encode()).hexdigest()[:HASH_CHARS]
    head = f"pr{pull.number}"
    room = max_len - len(head) - len(digest) - 2  # two dashes
    slug = re.sub(r"[^a-z0-9]+", "-", pull.repo.name.lower()).strip("-")[: max(room, 0)]
    slug = slug.strip("-")
    name = f"{head}-{slug}-{digest}" if slug else f"{head}-{digest}"
    if len(name) > max_len:  # a PR number too long to leave room for the slug
        name = f"pr-{digest}"
    return name


def is_dns_label(text: str, max_len: int = 63) -> bool:
    return len(text) <= max_len and bool(_DNS_LABEL.match(text))


def is_label_value(text: str) -> bool:
    return len(text) <= 63 and bool(_LABEL_VALUE.match(text))


def pr_labels(pull: PullRequestRef, bot: str) -> dict[str, str]:
    """Labels to select every model the bot serves (and one PR's); label values are bounded,
    so the repository goes in an annotation."""
    return {
        MANAGED_BY: label_value(bot),
        PART_OF: "instruct-lab-bot",
        LABEL_ROLE: ROLE_PR_MODEL,
        LABEL_PR: str(pull.number),
    }


def label_value(text: str) -> str:
    """`text` cut to a valid label value (the bot's name is a GitHub login: always valid)."""
    cut = re.sub(r"[^A-Za-z0-9_.-]+", "-", text)[:63].strip("-_.")
    return cut or "unknown"


def selector(bot: str) -> str:
    """The label selector of every PR model this bot manages."""
    return f"{MANAGED_BY}={label_value(bot)},{LABEL_ROLE}={ROLE_PR_MODEL}"


def pull_from_annotations(annotations: dict[str, str]) -> PullRequestRef | None:
    """The PR a served model belongs to, None when the annotations do not name one."""
    try:
        repo = RepoRef.parse(annotations.get(ANNOTATION_REPO, ""))
        number = int(annotations.get(ANNOTATION_PULL, ""))
    except ValueError:
        return None
    return repo.pull(number) if number > 0 else None
