"""What a run means for its job (pure): end state, the error shown, what is uploaded.

The worker does the I/O (subprocess, storage); these decisions are kept apart so each rule is
unit-tested without a process, a bucket or Redis.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from instruct_lab_bot.core.artifacts import guess_content_type
from instruct_lab_bot.core.jobs import State
from instruct_lab_bot.core.refs import PullRequestRef

#: The file the worker writes the run's output to (uploaded beside the outputs).
LOG_NAME = "ilab.log"
#: The artifacts' index page, uploaded last.
INDEX_NAME = "index.html"


def state_from_run(outcome: str, exit_code: int | None) -> State:
    """End state of an `ilab` run: its runner outcome first, then its exit code."""
    if outcome == "timed_out":
        return State.TIMED_OUT
    if outcome == "cancelled":
        return State.CANCELLED
    return State.SUCCEEDED if exit_code == 0 else State.FAILED


def run_error(state: State, exit_code: int | None, logged_error: str) -> str:
    """The error shown for a run: what ilab logged, else its exit code; none unless failed."""
    if state is not State.FAILED:
        return ""
    return logged_error or f"ilab exited with code {exit_code}"


def crash_cause(state: State, exit_code: int | None) -> str:
    """ "ilab_crashed" when a failed run ended by a signal (inside the sandbox, bubblewrap
    reports it as 128 + the signal), which no content of a pull request explains; else ""."""
    if state is State.FAILED and (exit_code is None or exit_code >= 128):
        return "ilab_crashed"
    return ""


def precheck_state(cancelled: bool, answers: Sequence[str]) -> State:
    """A precheck succeeds when the model answered at least one question."""
    if cancelled:
        return State.CANCELLED
    return State.SUCCEEDED if any(answers) else State.FAILED


def precheck_error(state: State, errors: Sequence[str]) -> str:
    """The first question's error explains a failed precheck."""
    failed = [e for e in errors if e]
    return failed[0] if state is State.FAILED and failed else ""


def exit_label(exit_code: int | None) -> str:
    """The `code` label of the exits metric, bounded: an end by signal and codes longer
    than three characters share "other"."""
    code = "" if exit_code is None else str(exit_code)
    return code if 0 < len(code) <= 3 else "other"


@dataclass(frozen=True)
class Upload:
    """One file to store: its name under the job's prefix, where it is, its content type."""

    name: str
    path: Path
    content_type: str


def plan_uploads(out_dir: Path, outputs: Sequence[Path], log_path: Path | None) -> list[Upload]:
    """The outputs (listed under `out_dir`, already without symlinks) by their relative
    names, then the run log if there is one."""
    named = [(p.relative_to(out_dir).as_posix(), p) for p in outputs]
    if log_path is not None:
        named.append((LOG_NAME, log_path))
    return [Upload(name, path, guess_content_type(name)) for name, path in named]


def index_title(pull_request: PullRequestRef, head_sha: str, command: str) -> str:
    """The heading of a job's artifacts index page."""
    return f"{pull_request.repo} #{pull_request.number} @ {head_sha[:7]}: {command}"
