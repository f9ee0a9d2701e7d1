"""The pure parts of `train`: the dispatcher's gate, the data and model folders it picks, how a
run ends, the progress it reads, checksums, the model manifest and the job lookups."""

from __future__ import annotations

import hashlib
import io
import json
import math

import pytest

from instruct_lab_bot.core.checksums import (
    Checksum,
    ChecksumError,
    file_checksum,
    parse_checksums,
    render_checksums,
    verify,
)
from instruct_lab_bot.core.job_lookup import latest_succeeded, named_job
from instruct_lab_bot.core.jobs import Job, State
from instruct_lab_bot.core.messages.train import (
    ModelLink,
    TrainSummary,
    check_run_training,
    fetch_command,
    train_details,
    train_progress_title,
    train_refused,
)
from instruct_lab_bot.core.model_manifest import (
    ManifestError,
    ModelFile,
    ModelManifest,
    safe_file_name,
)
from instruct_lab_bot.core.refs import RepoRef
from instruct_lab_bot.core.train_progress import TrainProgress
from instruct_lab_bot.core.training import (
    Hyperparameters,
    TrainDecision,
    TrainRefusal,
    checkpoint_dirs,
    checkpoint_epochs,
    final_model_dir,
    from_job_id,
    live_trainings,
    pick_training_file,
    train_decision,
    train_verdict,
    training_files,
)
from tests.fixtures.bot import BOT_NAME

HEAD, OLD = "a" * 40, "c" * 40


def job(job_id: str, command: str = "generate", **fields: object) -> Job:
    base: dict[str, object] = {
        "installation_id": 1,
        "owner": "o",
        "repo": "r",
        "pr_number": 3,
        "requester": "alice",
        "head_sha": HEAD,
        "state": State.SUCCEEDED,
        "created_at": 1000.0,
    }
    return Job(id=job_id, command=command, **{**base, **fields})  # type: ignore[arg-type]


# -- job lookups (core/job_lookup.py) --------------------------------------------------------


def test_latest_succeeded_picks_the_newest_success_of_the_command_and_head() -> None:
    jobs = [
        job("g1", created_at=1.0),
        job("g2", created_at=2.0),
        job("g3", created_at=3.0, state=State.FAILED),
        job("g4", created_at=4.0, head_sha=OLD),
        job("p1", "precheck", created_at=5.0),
    ]
    assert latest_succeeded(jobs, "generate", head_sha=HEAD) == jobs[1]
    assert latest_succeeded(jobs, "generate") == jobs[3]
    assert latest_succeeded(jobs, "train") is None
    tie = [job("b", created_at=7.0), job("a", created_at=7.0)]
    assert latest_succeeded(tie, "generate") == tie[0]  # same time: the larger id


def test_named_job_needs_a_successful_job_of_the_command_among_the_prs() -> None:
    jobs = [job("g1"), job("g2", state=State.RUNNING), job("t1", "train")]
    assert named_job(jobs, "g1", "generate") == jobs[0]
    assert named_job(jobs, "g2", "generate") is None  # unfinished
    assert named_job(jobs, "t1", "generate") is None  # another command
    assert named_job(jobs, "other-pr-job", "generate") is None


# -- the gate --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((), ""),
        (("--from", "abc123"), "abc123"),
        (("from", "abc123"), "abc123"),
        (("--from=abc123",), "abc123"),
        (("--from",), None),
        (("--from", "../x"), None),
        (("now",), None),
        (("--from", "a", "b"), None),
    ],
)
def test_from_job_id(args: tuple[str, ...], expected: str | None) -> None:
    assert from_job_id(args) == expected


def decide(args: tuple[str, ...], jobs: list[Job], live: int = 0) -> TrainDecision:
    return train_decision(args, jobs, live, head_sha=HEAD, max_per_repo=2)


def test_train_decision_order_of_gates() -> None:
    gen_old = job("g-old", head_sha=OLD, created_at=1.0)
    gen = job("g-new", created_at=2.0)
    assert decide((), [gen_old, gen]).source == gen
    assert decide(("--from", "g-old"), [gen_old, gen]).source == gen_old
    assert decide((), [gen_old]).refusal is TrainRefusal.NO_GENERATE  # not on the head
    assert decide(("--from", "g-elsewhere"), [gen]).refusal is TrainRefusal.NOT_THIS_PR
    assert decide(("bogus",), [gen]).refusal is TrainRefusal.BAD_ARGS
    live = job("t1", "train", state=State.RUNNING)
    busy = decide((), [gen, live])
    assert (busy.refusal, busy.busy) == (TrainRefusal.PR_BUSY, live)
    done = job("t0", "train", state=State.SUCCEEDED)
    assert decide((), [gen, done]).source == gen  # a finished training does not block
    assert decide((), [gen], live=2).refusal is TrainRefusal.REPO_BUSY
    assert decide((), [gen], live=1).source == gen


def test_live_trainings_counts_queued_and_running_trainings_of_the_repo() -> None:
    jobs = [
        job("t1", "train", state=State.QUEUED),
        job("t2", "train", state=State.RUNNING, pr_number=9),
        job("t3", "train", state=State.FAILED),
        job("t4", "train", state=State.RUNNING, repo="other"),
        job("g1", state=State.RUNNING),
    ]
    assert live_trainings(jobs, RepoRef("o", "r")) == 2


@pytest.mark.parametrize("refusal", list(TrainRefusal))
def test_every_refusal_has_a_reply_that_says_what_to_do(refusal: TrainRefusal) -> None:
    busy = job("t1", "train", state=State.RUNNING) if refusal is TrainRefusal.PR_BUSY else None
    text = train_refused(TrainDecision(refusal=refusal, busy=busy), BOT_NAME, 2)
    assert f"@{BOT_NAME}" in text or "ILAB_BOT_TRAIN_MAX_PER_REPO" in text
    if refusal is TrainRefusal.NO_GENERATE:
        assert f"`@{BOT_NAME} generate` first" in text


# -- data, checkpoints and the model folder --------------------------------------------------


def test_pick_training_file_prefers_the_mixed_sets_then_the_newest() -> None:
    names = [
        "d1/train_2026-01-01T00_00_00.jsonl",
        "d1/messages_2026-01-01T00_00_00.jsonl",
        "d1/skills_train_msgs_2026-01-01T00_00_00.jsonl",
        "d2/skills_train_msgs_2026-02-01T00_00_00.jsonl",
        "ilab.log",
    ]
    assert pick_training_file(names) == "d2/skills_train_msgs_2026-02-01T00_00_00.jsonl"
    assert pick_training_file(names[:2]) == "d1/train_2026-01-01T00_00_00.jsonl"
    assert pick_training_file(["test_x.jsonl", "ilab.log"]) is None
    with_tests = [*names, "d1/test_2026-01-01T00_00_00.jsonl"]
    assert training_files(with_tests) == [
        "d2/skills_train_msgs_2026-02-01T00_00_00.jsonl",
        "d1/train_2026-01-01T00_00_00.jsonl",
        "d1/test_2026-01-01T00_00_00.jsonl",
    ]
    assert training_files(["d1/test_x.jsonl"]) == []


def test_final_model_dir_and_checkpoints() -> None:
    names = [
        "checkpoints/hf_format/samples_8/config.json",
        "checkpoints/hf_format/samples_8/model.safetensors",
        "checkpoints/hf_format/samples_16/config.json",
        "checkpoints/hf_format/samples_16/pytorch_model.bin",
        "checkpoints/hf_format/samples_24/config.json",  # no weights (yet)
        "checkpoints/full_state/epoch_1/optimizer.bin",
    ]
    samples = "checkpoints/hf_format/samples_*"
    assert final_model_dir(names, samples) == "checkpoints/hf_format/samples_16"
    assert checkpoint_dirs(names, (samples, "checkpoints/full_state/epoch_*")) == [
        "checkpoints/hf_format/samples_8",
        "checkpoints/hf_format/samples_16",
        "checkpoints/hf_format/samples_24",
        "checkpoints/full_state/epoch_1",
    ]
    assert final_model_dir(["checkpoints/full_state/epoch_1/x.bin"], samples) is None
    final = "training_results/final"
    assert final_model_dir([f"{final}/model.safetensors"], final) == final
    assert final_model_dir([f"{final}/config.json"], final) is None  # no weights


def test_train_verdict() -> None:
    def verdict(state: State = State.SUCCEEDED, **facts: object) -> tuple[State, str]:
        base: dict[str, object] = {
            "exit_code": 0,
            "logged_error": "",
            "saw_nan": False,
            "disk_full": False,
            "model_found": True,
        }
        return train_verdict(state, **{**base, **facts})  # type: ignore[arg-type]

    assert verdict() == (State.SUCCEEDED, "")
    assert verdict(model_found=False)[0] is State.FAILED
    assert "NaN" in verdict(saw_nan=True)[1]
    assert "disk" in verdict(disk_full=True, saw_nan=True)[1]
    assert verdict(State.FAILED, exit_code=2)[1] == "`ilab model train` exited with code 2"
    assert verdict(State.FAILED, logged_error="CUDA out of memory")[1] == "CUDA out of memory"
    assert verdict(State.CANCELLED, model_found=False) == (State.CANCELLED, "")
    assert verdict(State.TIMED_OUT, saw_nan=True) == (State.TIMED_OUT, "")


def test_hyperparameters() -> None:
    assert Hyperparameters().as_dict() == {}
    set_ = Hyperparameters(2, 64, 2e-5, "cuda", "accelerated").as_dict()
    assert set_ == {
        "epochs": "2",
        "effective_batch_size": "64",
        "learning_rate": "2e-05",
        "device": "cuda",
        "pipeline": "accelerated",
    }
    for bad in ({"epochs": 0}, {"effective_batch_size": -1}, {"learning_rate": math.nan}):
        with pytest.raises(ValueError):
            Hyperparameters(**bad)


# -- checksums and the manifest --------------------------------------------------------------


def test_checksums_round_trip_and_verify() -> None:
    data = b"x" * (3 * 1024 * 1024 + 5)
    found = file_checksum(io.BytesIO(data))
    assert found == Checksum(len(data), hashlib.sha256(data).hexdigest())
    text = render_checksums({"a/b.jsonl": found})
    assert parse_checksums(text) == {"a/b.jsonl": found}
    verify("a/b.jsonl", found, found)
    with pytest.raises(ChecksumError, match="does not match"):
        verify("a/b.jsonl", found, Checksum(len(data), "0" * 64))
    with pytest.raises(ChecksumError, match="not listed"):
        verify("c", None, found)
    for bad in ("[]", "{}", '{"files": {"x": {"size": -1, "sha256": ""}}}', "not json"):
        with pytest.raises(ChecksumError):
            parse_checksums(bad)


def manifest(**changes: object) -> ModelManifest:
    files = (
        ModelFile("model.safetensors", 10, "a" * 64),
        ModelFile("cfg/config.json", 2, "b" * 64),
    )
    base: dict[str, object] = {
        "train_job": "t1",
        "data_job": "g1",
        "base_model": "granite",
        "ilab_version": "0.26.1",
        "files": files,
        "hyperparameters": {"epochs": "2"},
        "final_loss": 0.5,
        "created_at": 12.0,
    }
    return ModelManifest(**{**base, **changes})  # type: ignore[arg-type]


def test_manifest_round_trips_and_finds_files() -> None:
    original = manifest()
    parsed = ModelManifest.from_json(original.to_json())
    assert parsed == original
    assert parsed.total_bytes == 12
    assert parsed.file("cfg/config.json") == original.files[1]
    assert parsed.file("missing") is None
    assert ModelManifest.from_json(manifest(final_loss=None).to_json()).final_loss is None


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.update(files=[]),
        lambda d: d.update(files=[{"name": "../x", "size": 1, "sha256": "a" * 64}]),
        lambda d: d.update(files=[{"name": "/abs", "size": 1, "sha256": "a" * 64}]),
        lambda d: d.update(files=[{"name": "x", "size": -1, "sha256": "a" * 64}]),
        lambda d: d.update(files=[{"name": "x", "size": True, "sha256": "a" * 64}]),
        lambda d: d.update(files=[{"name": "x", "size": 1, "sha256": "A" * 64}]),
        lambda d: d.update(files=[{"name": "x", "size": 1, "sha256": "a" * 64}] * 2),
        lambda d: d.update(
            files=[{"name": f"f{i}", "size": 1, "sha256": "a" * 64} for i in range(1001)]
        ),
        lambda d: d.update(final_loss="low"),
        lambda d: d.update(base_model=3),
        lambda d: d.update(hyperparameters=[1]),
    ],
)
def test_manifest_refuses_what_it_cannot_trust(mutate: object) -> None:
    data = json.loads(manifest().to_json())
    mutate(data)  # type: ignore[operator]
    with pytest.raises(ManifestError):
        ModelManifest.from_json(json.dumps(data))


def test_manifest_refuses_non_json_and_treats_nan_loss_as_unknown() -> None:
    for text in ("nope", "[]", b"\xff"):
        with pytest.raises(ManifestError):
            ModelManifest.from_json(text)
    data = json.loads(manifest().to_json())
    data["final_loss"] = float("nan")
    assert ModelManifest.from_json(json.dumps(data)).final_loss is None


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("a/b.bin", True),
        ("a", True),
        ("", False),
        ("a//b", False),
        ("./a", False),
        ("a\\b", False),
        ("a\nb", False),
        ("x" * 513, False),
    ],
)
def test_safe_file_name(name: str, ok: bool) -> None:
    assert safe_file_name(name) is ok


# -- the reply -------------------------------------------------------------------------------


def test_the_reply_says_how_to_download_and_run_the_model() -> None:
    files = [ModelLink("model.safetensors", "https://h/a?sig=1&x=2", 2048)]
    summary = TrainSummary("g1", "granite", files, "https://h/m", 0.25, bot=BOT_NAME)
    assert fetch_command(summary) == (
        "mkdir -p model && cd model && curl -fSL -o model.safetensors 'https://h/a?sig=1&x=2'"
    )
    s3 = TrainSummary("g1", "", files, "https://h/m", None, s3_uri="s3://b/p/model/")
    assert fetch_command(s3) == "aws s3 cp --recursive s3://b/p/model/ ./model"
    text = "\n".join(train_details(summary))
    assert "[model.safetensors](https://h/a?sig=1&x=2) | 2.0 KB" in text
    assert "ilab model chat --model ./model" in text
    assert "final loss **0.25**" in text
    assert f"`@{BOT_NAME} test`" in text and f"`@{BOT_NAME} serve`" in text


def test_the_check_run_shows_epoch_step_loss_throughput_eta_and_the_picture() -> None:
    progress = TrainProgress(
        epoch=1, epochs=2, step=3, total_steps=8, loss=1.25, samples_per_second=12.5,
        eta_seconds=90.0,
    )  # fmt: skip
    assert train_progress_title(progress) == "Epoch 1/2, step 3/8, loss 1.25, ETA 1m 30s"
    trainer = job("t1", "train", source_job="g1", state=State.RUNNING)
    payload = check_run_training(
        trainer, progress, ["line <b>"], image_url="https://h/loss.png", resumed="ckpt_8"
    )
    output = payload["output"]
    assert isinstance(output, dict)
    assert output["images"] == [{"alt": "Training loss", "image_url": "https://h/loss.png"}]
    summary = output["summary"]
    for row in ("**Epoch:** 1 of 2", "**Step:** 3 of 8", "**Loss:** 1.25",
                "**Throughput:** 12.5 samples/s", "**ETA:** 1m 30s", "Resumed from"):  # fmt: skip
        assert row in summary, row
    assert train_progress_title(TrainProgress()) == "Training"


def test_a_checkpoints_epochs_come_from_its_folder_not_the_console() -> None:
    folders = ["ckpt/hf_format/samples_24", "ckpt/hf_format/samples_8", "ckpt/hf_format/samples_16"]
    assert [checkpoint_epochs(f, folders) for f in folders] == [3, 1, 2]
    assert checkpoint_epochs("ckpt/full_state/epoch_0", []) == 1
    assert checkpoint_epochs("ckpt/full_state/epoch_2", []) == 3
    assert checkpoint_epochs("training_results/checkpoint-6", folders) == 0
