"""What a finished job must tell GitHub, as one record the outbox keeps until it is posted
(pure): the check run's completion and the result comment, whose hidden marker lets a retry
see that an earlier attempt's comment went out."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from instruct_lab_bot.core.jobs import Job
from instruct_lab_bot.core.messages.generate import (
    JobResult,
    check_run_completed,
    result_comment,
    result_marker,
)
from instruct_lab_bot.core.refs import PullRequestRef, RepoRef


@dataclass(frozen=True)
class FinalResult:
    job_id: str
    installation_id: int
    owner: str
    repo: str
    pr_number: int
    check_run_id: int  # 0: the job has no check run to complete
    check_run: dict[str, Any]
    comment: str
    round: int = 0  # the job's requeue round (its comment's marker)
    #: The job had run before (a takeover): its result may have been recorded and posted by an
    #: earlier run whose record a Redis failover lost, so even a first post looks for it.
    recheck: bool = False

    @property
    def pull(self) -> PullRequestRef:
        return PullRequestRef(RepoRef(self.owner, self.repo), self.pr_number)

    @property
    def marker(self) -> str:
        return result_marker(self.job_id, self.round)

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> FinalResult:
        data = json.loads(text)
        return cls(
            job_id=str(data["job_id"]),
            installation_id=int(data["installation_id"]),
            owner=str(data["owner"]),
            repo=str(data["repo"]),
            pr_number=int(data["pr_number"]),
            check_run_id=int(data["check_run_id"]),
            check_run=dict(data["check_run"]),
            comment=str(data["comment"]),
            round=int(data.get("round", 0)),
            recheck=bool(data.get("recheck", False)),
        )


def final_result(job: Job, result: JobResult) -> FinalResult:
    return FinalResult(
        job_id=job.id,
        installation_id=job.installation_id,
        owner=job.owner,
        repo=job.repo,
        pr_number=job.pr_number,
        check_run_id=job.check_run_id,
        check_run=check_run_completed(job, result),
        comment=result_comment(job, result),
        round=job.requeued,
        recheck=job.attempts > 1,
    )
