"""The worker's pure decisions: end state from a run, the error shown, what is uploaded, the
`ilab` argv. No process, store or Redis."""

from __future__ import annotations

from pathlib import Path

import pytest

from instruct_lab_bot.core.job_outcome import (
    LOG_NAME,
    Upload,
    exit_label,
    index_title,
    plan_uploads,
    precheck_error,
    precheck_state,
    run_error,
    state_from_run,
)
from instruct_lab_bot.core.jobs import State
from instruct_lab_bot.core.refs import RepoRef


@pytest.mark.parametrize(
    ("outcome", "exit_code", "state"),
    [
        ("exited", 0, State.SUCCEEDED),
        ("exited", 1, State.FAILED),
        ("exited", None, State.FAILED),  # killed by a signal nobody sent on purpose
        ("timed_out", None, State.TIMED_OUT),
        ("timed_out", 0, State.TIMED_OUT),  # the limit passed: whatever it printed last
        ("cancelled", None, State.CANCELLED),
        ("cancelled", 0, State.CANCELLED),
    ],
)
def test_state_from_run(outcome: str, exit_code: int | None, state: State) -> None:
    assert state_from_run(outcome, exit_code) is state


def test_run_error_prefers_what_ilab_logged() -> None:
    assert run_error(State.FAILED, 2, "model gone") == "model gone"
    assert run_error(State.FAILED, 2, "") == "ilab exited with code 2"
    assert run_error(State.SUCCEEDED, 0, "a logged error that did not end the run") == ""
    assert run_error(State.TIMED_OUT, None, "") == ""


def test_precheck_succeeds_with_one_answer() -> None:
    assert precheck_state(False, ["", "yes"]) is State.SUCCEEDED
    assert precheck_state(False, ["", ""]) is State.FAILED
    assert precheck_state(False, []) is State.FAILED
    assert precheck_state(True, ["yes"]) is State.CANCELLED
    assert precheck_error(State.FAILED, ["", "timed out", "refused"]) == "timed out"
    assert precheck_error(State.SUCCEEDED, ["timed out"]) == ""
    assert precheck_error(State.FAILED, ["", ""]) == ""


def test_exit_label_is_bounded() -> None:
    assert [exit_label(c) for c in (0, 1, 137, None, 1000, -15)] == [
        "0",
        "1",
        "137",
        "other",
        "other",
        "-15",
    ]


def test_uploads_are_named_under_the_output_folder_then_the_log(tmp_path: Path) -> None:
    out = tmp_path / "out"
    outputs = [out / "generated_x.json", out / "sub" / "train_x.jsonl"]
    log = tmp_path / LOG_NAME
    assert plan_uploads(out, outputs, log) == [
        Upload("generated_x.json", outputs[0], "application/json"),
        Upload("sub/train_x.jsonl", outputs[1], "application/x-ndjson"),
        Upload(LOG_NAME, log, "text/plain; charset=utf-8"),
    ]
    assert [u.name for u in plan_uploads(out, outputs, None)] == [
        "generated_x.json",
        "sub/train_x.jsonl",
    ]


def test_index_title() -> None:
    pr = RepoRef("o", "r").pull(3)
    assert index_title(pr, "abcdef0123", "generate") == "o/r #3 @ abcdef0: generate"
