"""A generate run next to the previous one on the same PR (pure): what a reviewer reads as
"compared with the previous run on this PR: +N/−M samples"."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from instruct_lab_bot.core.jobs import Job, State
from instruct_lab_bot.core.output_preview import Count


@dataclass(frozen=True)
class SampleChange:
    """Samples gained (+) and lost (−) per leaf since `previous_id`'s run."""

    previous_id: str
    previous_sha: str
    added: int
    removed: int


def leaf_counts_json(counts: Sequence[Count]) -> str:
    return json.dumps({c.name: c.samples for c in counts}, separators=(",", ":"))


def parse_leaf_counts(text: str) -> dict[str, int]:
    """The stored per-leaf counts; {} for none or for a value that is not such a mapping."""
    try:
        data = json.loads(text) if text else {}
    except json.JSONDecodeError:
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(k): v for k, v in data.items() if isinstance(v, int) and v >= 0}


def previous_generate(jobs: Sequence[Job], current: Job) -> Job | None:
    """The latest successful `generate` of the same PR created before `current`."""
    earlier = [
        job
        for job in jobs
        if job.id != current.id
        and job.command == "generate"
        and job.state is State.SUCCEEDED
        and job.pull_request == current.pull_request
        and job.created_at <= current.created_at
        and job.generated >= 0
    ]
    return max(earlier, key=lambda job: (job.created_at, job.id), default=None)


def sample_change(previous: Job, counts: Sequence[Count], generated: int) -> SampleChange:
    """Per leaf: samples more than before add to +N, fewer add to −M. Without the previous
    run's per-leaf counts, the totals are compared."""
    before: Mapping[str, int] = parse_leaf_counts(previous.leaf_counts)
    if not before or not counts:
        delta = generated - previous.generated
        return SampleChange(previous.id, previous.head_sha, max(delta, 0), max(-delta, 0))
    now = {c.name: c.samples for c in counts}
    added = sum(max(now.get(leaf, 0) - before.get(leaf, 0), 0) for leaf in now.keys() | before)
    removed = sum(max(before.get(leaf, 0) - now.get(leaf, 0), 0) for leaf in now.keys() | before)
    return SampleChange(previous.id, previous.head_sha, added, removed)
