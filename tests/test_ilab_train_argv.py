"""`ilab model train`'s command line per release and pipeline (core.ilab.train_run); the real
releases' click commands parse them in `make ilab-contract`."""

from __future__ import annotations

from pathlib import Path

import pytest

from instruct_lab_bot.core.ilab import (
    SIMPLE_GGUF,
    TrainInput,
    TrainParams,
    TrainUnsupported,
    profile_for,
    train_run,
)
from instruct_lab_bot.core.ilab.versions import IlabVersion

V0_18 = profile_for(IlabVersion(0, 18))
V0_26 = profile_for(IlabVersion(0, 26))
JOB = Path("/jobs/j1")
DATA = TrainInput(JOB / "gen" / "skills_train_msgs_x.jsonl", JOB / "gen", JOB)
ILAB = ("ilab", "--config", "DEFAULT")


def test_0_26_accelerated_passes_the_jsonl_file_and_resumes_from_full_state() -> None:
    assert V0_26 is not None
    params = TrainParams("/models/granite", "accelerated", "cuda", 3, 32, 1e-5)
    run = train_run(V0_26, ILAB, params, DATA)
    assert run.argv == [
        *ILAB, "model", "train",
        "--model-path", "/models/granite", "--num-epochs", "3",
        "--ckpt-output-dir", "/jobs/j1/checkpoints", "--data-output-dir", "/jobs/j1/train-data",
        "--data-path", "/jobs/j1/gen/skills_train_msgs_x.jsonl",
        "--effective-batch-size", "32", "--learning-rate", "1e-05",
        "--pipeline", "accelerated", "--device", "cuda",
    ]  # fmt: skip
    assert run.checkpoint_globs == (
        "checkpoints/hf_format/samples_*",
        "checkpoints/full_state/epoch_*",
    )
    assert run.model_glob == "checkpoints/hf_format/samples_*"
    assert (run.resume, run.exit_code_trusted, run.cwd) == ("full-state", True, JOB)


def test_0_26_simple_reads_the_generate_folder_and_writes_a_gguf() -> None:
    assert V0_26 is not None
    run = train_run(V0_26, ILAB, TrainParams("/models/tiny", epochs=2), DATA)
    assert run.argv[-8:] == [
        "--data-output-dir", "/jobs/j1/train-data", "--input-dir", "/jobs/j1/gen",
        "--pipeline", "simple", "--device", "cpu",
    ]  # fmt: skip
    assert "--data-path" not in run.argv and "--learning-rate" not in run.argv
    assert run.checkpoint_globs == ("training_results/checkpoint-*",)
    assert run.model_glob == "training_results/final"
    assert run.gguf_in_data_home == SIMPLE_GGUF
    assert run.resume == "restart"


def test_0_18_simple_is_legacy_and_accelerated_exit_code_is_not_trusted() -> None:
    assert V0_18 is not None
    simple = train_run(V0_18, ILAB, TrainParams("/m", "simple", "cpu"), DATA)
    assert simple.argv[-3:] == ["--legacy", "--device", "cpu"]
    assert "--pipeline" not in simple.argv
    accelerated = train_run(V0_18, ILAB, TrainParams("/m", "accelerated", "cuda", 2), DATA)
    assert "--pipeline" not in accelerated.argv and "--device" not in accelerated.argv
    assert accelerated.exit_code_trusted is False  # 0.4's "Operation failed" exits 0
    assert accelerated.resume == "model-path"


def test_resume_from_a_checkpoint_runs_the_epochs_left() -> None:
    assert V0_26 is not None
    checkpoint = JOB / "checkpoints" / "hf_format" / "samples_16"
    data = TrainInput(DATA.messages_file, DATA.generate_dir, JOB, checkpoint, epochs_done=2)
    run = train_run(V0_26, ILAB, TrainParams("/models/base", "full", "cpu", 5), data)
    at = run.argv.index("--model-path")
    assert run.argv[at : at + 4] == ["--model-path", str(checkpoint), "--num-epochs", "3"]


@pytest.mark.parametrize(
    ("version", "pipeline", "device", "says"),
    [
        ((0, 26), "accelerated", "cpu", "needs --device cuda"),
        ((0, 26), "full", "cuda", "use accelerated"),
        ((0, 26), "fast", "cpu", "no --pipeline fast"),
        ((0, 18), "full", "cpu", "no full pipeline"),
        ((0, 18), "accelerated", "cpu", "needs --device cuda"),
    ],
)
def test_pairs_a_release_refuses(
    version: tuple[int, int], pipeline: str, device: str, says: str
) -> None:
    profile = profile_for(IlabVersion(*version))
    assert profile is not None
    with pytest.raises(TrainUnsupported, match=says):
        train_run(profile, ILAB, TrainParams("/m", pipeline, device), DATA)
