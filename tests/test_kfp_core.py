"""The Kubeflow backend's pure part: the progress document, the pod's slots, KFP's states,
and the ILAB_BOT_KFP_* settings."""

from __future__ import annotations

import pytest

from instruct_lab_bot.core.kubeflow import (
    MAX_PROGRESS_LINES,
    data_job_of,
    fill_slots,
    parse_progress,
    progress_document,
    run_phase,
    step_states,
)
from instruct_lab_bot.core.settings import SettingsError, parse_settings


def test_the_progress_document_keeps_the_last_lines_with_their_numbers() -> None:
    lines = [("stdout", f"line {i}") for i in range(MAX_PROGRESS_LINES + 50)]
    progress = parse_progress(progress_document(0, lines, done=False))
    assert progress is not None and not progress.done
    assert progress.first == 50 and progress.end == MAX_PROGRESS_LINES + 50
    assert progress.lines[0] == ("stdout", "line 50")
    assert progress.after(MAX_PROGRESS_LINES + 48) == [
        ("stdout", f"line {MAX_PROGRESS_LINES + 48}"),
        ("stdout", f"line {MAX_PROGRESS_LINES + 49}"),
    ]
    assert progress.after(0)[0] == ("stdout", "line 50")  # older ones are gone


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[]",
        b'{"first": -1, "lines": []}',
        b'{"first": true, "lines": []}',
        b'{"first": 0, "lines": [["stdout"]]}',
        b'{"first": 0, "lines": [["stdout", 5]]}',
        b'{"first": 0, "lines": "x"}',
    ],
)
def test_a_progress_document_that_is_not_one_is_ignored(raw: bytes) -> None:
    assert parse_progress(raw) is None


def test_a_long_line_is_cut_both_when_written_and_when_read() -> None:
    raw = progress_document(0, [("stderr", "x" * 100_000)], done=True)
    assert len(raw) < 10_000
    forged = b'{"first": 0, "lines": [["stdout", "' + b"y" * 100_000 + b'"]]}'
    progress = parse_progress(forged)
    assert progress is not None and len(progress.lines[0][1]) == 4096


def test_slots_become_the_pods_folders() -> None:
    argv = ["ilab", "--data-path", "{data}/train.jsonl", "--ckpt-output-dir", "{work}/ckpt"]
    assert fill_slots(argv, "/s3/data", "/tmp/w") == [
        "ilab",
        "--data-path",
        "/s3/data/train.jsonl",
        "--ckpt-output-dir",
        "/tmp/w/ckpt",
    ]


def test_run_states() -> None:
    assert [run_phase(s) for s in ("PENDING", "RUNNING", "SUCCEEDED", "FAILED", "CANCELED")] == [
        "waiting",
        "running",
        "succeeded",
        "failed",
        "canceled",
    ]
    assert run_phase("SOMETHING_NEW") == "running"


def test_step_states_ignore_other_tasks_and_read_duplicates_as_the_worst() -> None:
    tasks = [
        ("root", "RUNNING"),
        ("train-model", "SUCCEEDED"),  # its driver
        ("train-model", "FAILED"),
        ("fetch-data", "SUCCEEDED"),
    ]
    assert step_states(tasks) == {"fetch-data": "SUCCEEDED", "train-model": "FAILED"}


def test_the_data_job_is_read_from_the_data_key() -> None:
    assert data_job_of("octo/tax/pr-7/abc/gen-9/2026-01-01_000000/train.jsonl") == "gen-9"
    assert data_job_of("train.jsonl") == ""


BASE = {"ILAB_BOT_GITHUB_APP_ID": "1", "ILAB_BOT_WEBHOOK_SECRET": "s" * 40}


def test_the_kubeflow_backend_needs_its_api_image_and_an_s3_store() -> None:
    with pytest.raises(SettingsError) as caught:
        parse_settings(BASE | {"ILAB_BOT_TRAIN_BACKEND": "kubeflow"}, require_github=False)
    text = str(caught.value)
    for name in ("ILAB_BOT_KFP_URL", "ILAB_BOT_KFP_IMAGE", "ILAB_BOT_ARTIFACTS_URL"):
        assert name in text
    settings = parse_settings(
        BASE
        | {
            "ILAB_BOT_TRAIN_BACKEND": "kubeflow",
            "ILAB_BOT_KFP_URL": "https://ds-pipeline-dspa.ilab.svc:8443",
            "ILAB_BOT_KFP_IMAGE": "quay.io/example/train:1",
            "ILAB_BOT_ARTIFACTS_URL": "s3://bucket/bot",
            "ILAB_BOT_KFP_NODE_SELECTOR": "nvidia.com/gpu.present=true",
            "ILAB_BOT_KFP_S3_SECRET": "aws-connection-ilab",
            "ILAB_BOT_KFP_GPUS": "4",
            "ILAB_BOT_KFP_MEMORY": "64Gi",
        },
        require_github=False,
    )
    assert settings.kfp_node_selector == ("nvidia.com/gpu.present", "true")
    assert (settings.kfp_gpus, settings.kfp_memory) == (4, "64Gi")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ILAB_BOT_KFP_NODE_SELECTOR", "no-equals-sign"),
        ("ILAB_BOT_KFP_NODE_SELECTOR", "bad key=x"),
        ("ILAB_BOT_KFP_S3_SECRET", "Not_A_Name"),
        ("ILAB_BOT_KFP_NAMESPACE", "-x"),
        ("ILAB_BOT_KFP_URL", "ftp://x"),
        ("ILAB_BOT_KFP_TOKEN_FILE", "relative/token"),
        ("ILAB_BOT_KFP_IMAGE", "two words"),
        ("ILAB_BOT_KFP_MEMORY", "lots"),
    ],
)
def test_bad_kubeflow_settings_are_named(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        parse_settings(BASE | {name: value}, require_github=False)
