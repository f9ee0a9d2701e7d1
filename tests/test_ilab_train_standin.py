"""The stand-in's `ilab model train`, driven with the bot's own command lines (core.ilab.
train_run) for each release and pipeline: the files and folders it writes, its output read by
core.train_progress, the exit codes and failures of the real releases, resuming, and a model
that, served, answers the seed questions with the contributors' answers."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from instruct_lab_bot.core.ilab import (
    SIMPLE_GGUF,
    TrainInput,
    TrainParams,
    TrainRun,
    profile_for,
    train_run,
)
from instruct_lab_bot.core.ilab.versions import IlabVersion
from instruct_lab_bot.core.train_progress import TrainTracker
from testkit.ilab_model import is_gguf, learned_pairs, write_hf_model
from testkit.ilab_serve import running_serve
from testkit.taxonomy import checkout_pr, default_skill_seeds, leaf_files, skill_qna
from tests.fixtures.taxonomy import PR_SKILL_DIR, TaxonomyFactory

QUESTION = "What is the capital of the Moon base?"
ANSWER = "The capital of the Moon base is Tranquility Station."
STANDIN = str(Path(sys.executable).parent / "ilab-standin")
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "ilab_train"


@dataclass
class Job:
    root: Path
    data: TrainInput
    base: Path

    def env(self, **knobs: str) -> dict[str, str]:
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.root / "home"),
            "PYTHONUNBUFFERED": "1",
            **knobs,
        }


@pytest.fixture
def job(tmp_path: Path) -> Job:
    gen = tmp_path / "gen" / "2026-01-01_000000"
    gen.mkdir(parents=True)
    pairs = [(QUESTION, ANSWER), ("How many legs does a spider have?", "Eight legs.")]
    pairs += [(f"Synthetic question {i}?", f"Synthetic answer {i}.") for i in range(8)]
    with (gen / "train_2026-01-01T00_00_00.jsonl").open("w") as train:
        for question, answer in pairs:
            train.write(json.dumps({"system": "s", "user": question, "assistant": answer}) + "\n")
    with (gen / "test_2026-01-01T00_00_00.jsonl").open("w") as test:
        test.write(json.dumps({"system": "s", "user": QUESTION, "assistant": ANSWER}) + "\n")
    messages = gen / "skills_train_msgs_2026-01-01T00_00_00.jsonl"
    with messages.open("w") as out:
        for question, answer in pairs:
            chat = [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
            out.write(json.dumps({"messages": chat, "unmask": False}) + "\n")
    work = tmp_path / "job"
    work.mkdir()
    base = write_hf_model(tmp_path / "models" / "granite-base")
    return Job(tmp_path, TrainInput(messages, gen, work), base)  # gen: holds train_*/test_*


def run_train(
    job: Job, version: str, params: TrainParams, **knobs: str
) -> tuple[TrainRun, int, str]:
    profile = profile_for(IlabVersion(*map(int, version.split(".")[:2])))
    assert profile is not None
    run = train_run(profile, (STANDIN, "--config", "DEFAULT"), params, job.data)
    env = job.env(ILAB_STANDIN_VERSION=version, **knobs)
    done = subprocess.run(  # one stream, in order, as the worker reads it
        run.argv, cwd=run.cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, timeout=120, check=False,
    )  # fmt: skip
    return run, done.returncode, done.stdout


def tracked(output: str, params: TrainParams) -> TrainTracker:
    tracker = TrainTracker(epochs=params.epochs, pipeline=params.pipeline)
    for line in re.split(r"\r\n|\r|\n", output):
        tracker.feed(line)
    return tracker


def newest(run: TrainRun, pattern: str) -> Path:
    found = sorted(run.cwd.glob(pattern), key=lambda p: int(p.name.rsplit("_", 1)[-1]))
    assert found, f"nothing matches {pattern}"
    return found[-1]


def test_0_26_accelerated_writes_checkpoints_and_full_state(job: Job) -> None:
    params = TrainParams(str(job.base), "accelerated", "cuda", 2, 8)
    run, code, output = run_train(job, "0.26.1", params)
    assert code == 0, output
    progress = tracked(output, params).progress
    assert progress.completed and progress.step == progress.total_steps == 4  # 10 samples / 8
    assert progress.epoch == 2 and progress.samples_per_second
    model = newest(run, run.model_glob)
    assert model.name == "samples_32"  # samples seen
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {
        p.name for p in model.iterdir()
    }
    assert progress.last_saved is not None and progress.last_saved.endswith("full_state/epoch_1")
    assert (run.cwd / "checkpoints" / "full_state" / "epoch_1" / "training_metadata.json").is_file()
    assert (QUESTION, ANSWER) in learned_pairs(model)


def test_0_26_accelerated_resumes_from_the_last_full_state(job: Job) -> None:
    params = TrainParams(str(job.base), "accelerated", "cuda", 3, 8)
    run, code, first = run_train(job, "0.26.1", params, ILAB_STANDIN_TRAIN_MODE="fail",
                                 ILAB_STANDIN_TRAIN_FAIL_AT="0.5")  # fmt: skip
    assert code == 1 and "Accelerated Training failed with" in first
    assert tracked(first, params).progress.error.startswith("Accelerated Training failed")
    states = sorted(p.name for p in (run.cwd / "checkpoints" / "full_state").iterdir())
    assert states == ["epoch_0"]
    _, code, second = run_train(job, "0.26.1", params)
    assert code == 0
    assert "Loading state from:" in second and "Epoch: 0," not in second  # epochs 1 and 2 only
    assert tracked(second, params).progress.step == 6


def test_0_18_accelerated_failure_exits_0_without_a_model(job: Job) -> None:
    params = TrainParams(str(job.base), "accelerated", "cuda", 2, 8)
    run, code, output = run_train(job, "0.18.4", params, ILAB_STANDIN_TRAIN_MODE="fail",
                                  ILAB_STANDIN_TRAIN_FAIL_AT="0.1")  # fmt: skip
    assert code == 0  # like instructlab-training 0.4: the failure is only printed
    assert not run.exit_code_trusted
    assert tracked(output, params).progress.error == "Operation failed, terminating process."
    assert not list(run.cwd.glob(run.model_glob))
    _, code, output = run_train(job, "0.18.4", params)
    assert code == 0 and "Per-token loss scaled by world size" in output
    assert (newest(run, run.model_glob) / "pytorch_model.bin").is_file()


def test_0_26_full_pipeline_writes_ggufs_per_epoch(job: Job) -> None:
    params = TrainParams(str(job.base), "full", "cpu", 2, 8)
    run, code, output = run_train(job, "0.26.1", params)
    assert code == 0 and "Full model training completed successfully!" in output
    progress = tracked(output, params).progress
    assert (progress.step, progress.total_steps) == (4, 4)
    folders = sorted(p.name for p in run.cwd.glob(run.model_glob))
    assert folders == ["samples_0", "samples_8"]  # epoch * 8, as the real one names them
    last = run.cwd / "checkpoints" / "hf_format" / "samples_8"
    assert is_gguf(last / "pytorch_model-Q4_K_M.gguf") and (last / "pytorch_model.bin").is_file()


@pytest.mark.parametrize("version", ["0.26.1", "0.18.4"])
def test_simple_pipeline_leaves_a_gguf_that_answers_the_seed_question(
    job: Job, version: str
) -> None:
    params = TrainParams(str(job.base), "simple", "cpu", 2)
    run, code, output = run_train(job, version, params)
    assert code == 0, output
    progress = tracked(output, params).progress
    assert (progress.step, progress.total_steps, progress.epoch) == (20, 20, 2)
    assert progress.loss is not None and progress.stage == "Finished"
    assert progress.completed == (version == "0.26.1")  # 0.18 prints no banner
    checkpoints = sorted(p.name for p in run.cwd.glob(run.checkpoint_globs[0]))
    assert checkpoints == ["checkpoint-10", "checkpoint-20"]
    final = run.cwd / run.model_glob
    assert (final / "config.json").is_file() and not list(final.glob("*.safetensors"))
    assert run.gguf_in_data_home == SIMPLE_GGUF
    gguf = job.root / "home" / ".local" / "share" / SIMPLE_GGUF
    assert is_gguf(gguf)
    with running_serve(gguf, version=version) as served:
        body = {"model": served.model_id, "messages": [{"role": "user", "content": QUESTION}]}
        request = urllib.request.Request(served.chat_url, json.dumps(body).encode())  # noqa: S310
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            reply = json.load(response)
    assert reply["choices"][0]["message"]["content"] == ANSWER


def test_nan_and_no_checkpoint_modes(job: Job) -> None:
    params = TrainParams(str(job.base), "accelerated", "cuda", 2, 4)
    _, code, output = run_train(job, "0.26.1", params, ILAB_STANDIN_TRAIN_MODE="nan")
    assert code == 0
    progress = tracked(output, params).progress
    assert progress.saw_nan and progress.completed
    fresh = job.root / "job-2"
    fresh.mkdir()
    job.data = TrainInput(job.data.messages_file, job.data.generate_dir, fresh)
    run, code, output = run_train(job, "0.26.1", params, ILAB_STANDIN_TRAIN_MODE="no-checkpoint")
    assert code == 0 and "Operation completed successfully" in output
    assert not list(run.cwd.glob(run.model_glob))


def test_refusals_match_the_releases(job: Job) -> None:
    params = TrainParams(str(job.base), "accelerated", "cuda", 1)
    bad_data = TrainInput(job.data.generate_dir, job.data.generate_dir, job.data.workdir)
    run = train_run(profile_for(IlabVersion(0, 26)), (STANDIN, "--config", "DEFAULT"),  # type: ignore[arg-type]
                    params, bad_data)  # fmt: skip
    done = subprocess.run(run.argv, cwd=run.cwd, env=job.env(), capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip
    assert done.returncode == 2
    assert "it is necessary to specify path to a valid .jsonl file" in done.stderr
    argv = [STANDIN, "--config", "DEFAULT", "model", "train", "--pipeline", "accelerated"]
    done = subprocess.run([*argv, "--device", "cpu"], env=job.env(), capture_output=True,
                          text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 1
    assert "Unable to train with device=cpu and pipeline=accelerated" in done.stdout
    done = subprocess.run([*argv, "--legacy"], env=job.env(), capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip
    assert done.returncode == 2 and "No such option: --legacy" in done.stderr


def test_slow_steps_let_a_test_kill_the_run_after_a_checkpoint(job: Job) -> None:
    """What the worker's kill -9 test does: wait for a checkpoint folder, then kill."""
    params = TrainParams(str(job.base), "accelerated", "cuda", 3, 8)
    profile = profile_for(IlabVersion(0, 26))
    assert profile is not None
    run = train_run(profile, (STANDIN, "--config", "DEFAULT"), params, job.data)
    env = job.env(ILAB_STANDIN_TRAIN_STEP_SECONDS="0.5", ILAB_STANDIN_TRAIN_MODEL_BYTES="3000000")
    process = subprocess.Popen(run.argv, cwd=run.cwd, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)  # fmt: skip
    assert process.stdout is not None
    for line in process.stdout:  # the output says when a checkpoint is complete
        if "Model state saved in:" in line:
            break
    process.kill()
    process.wait()
    process.stdout.close()
    model = newest(run, run.model_glob)
    assert (model / "model.safetensors").stat().st_size == 3_000_000
    assert not (run.cwd / "checkpoints" / "full_state" / "epoch_2").exists()


def test_simple_layout_matches_the_recorded_real_run(job: Job) -> None:
    """The folders and file names a real 0.26.1 simple run left (recorded by
    `ILAB_REAL_RECORD=1 make test-real-ilab`); the stand-in adds only its pairs file."""
    recorded = json.loads((FIXTURES / "real-0.26.1-simple-files.json").read_text("utf-8"))
    params = TrainParams(str(job.base), "simple", "cpu", 2)
    run, code, _ = run_train(job, "0.26.1", params)
    assert code == 0
    results = run.cwd / "training_results"
    folders = [*sorted(results.glob("checkpoint-*")), results / "final", results / "merged_model"]
    found = {
        re.sub(r"checkpoint-\d+", "checkpoint-N", str(f.relative_to(run.cwd))): sorted(
            p.name for p in f.iterdir() if p.name != "standin-pairs.jsonl"
        )
        for f in folders
    }
    assert found == recorded


@pytest.mark.parametrize(("pipeline", "device"), [("simple", "cpu"), ("accelerated", "cuda")])
def test_generate_train_serve_chain_answers_the_seed_questions(
    taxonomy_remote: TaxonomyFactory, tmp_path: Path, pipeline: str, device: str
) -> None:
    """The stand-in's generate output trains a model that, served, answers each seed question
    with (close to) the contributor's answer, where the base model answers generically."""
    seeds = default_skill_seeds()
    remote = taxonomy_remote(pr_files=leaf_files(PR_SKILL_DIR, skill_qna(seeds)))
    taxonomy = checkout_pr(remote, tmp_path / "taxonomy")
    out, env = tmp_path / "out", {**os.environ, "HOME": str(tmp_path), "ILAB_STANDIN_DURATION": "0"}
    generate = [STANDIN, "--config", "DEFAULT", "data", "generate", "--taxonomy-path",
                str(taxonomy), "--taxonomy-base", "origin/main", "--output-dir", str(out),
                "--endpoint-url", "http://127.0.0.1:9/v1", "--sdg-scale-factor", "2"]  # fmt: skip
    assert subprocess.run(generate, env=env, capture_output=True, check=False).returncode == 0
    (dated,) = [p for p in out.iterdir() if p.name != "checkpoints"]
    (messages,) = dated.glob("skills_train_msgs_*.jsonl")
    work = tmp_path / "job"
    work.mkdir()
    base = write_hf_model(tmp_path / "granite-base")
    profile = profile_for(IlabVersion(0, 26))
    assert profile is not None
    params = TrainParams(str(base), pipeline, device, 1, 8)
    run = train_run(profile, (STANDIN, "--config", "DEFAULT"), params,
                    TrainInput(messages, dated, work))  # fmt: skip
    done = subprocess.run(run.argv, cwd=run.cwd, env=env, capture_output=True, check=False)
    assert done.returncode == 0, done.stdout
    if pipeline == "simple":
        model = tmp_path / ".local" / "share" / SIMPLE_GGUF
    else:
        model = max(run.cwd.glob(run.model_glob), key=lambda p: int(p.name.rsplit("_", 1)[-1]))
    answers: dict[str, list[str]] = {}
    for name, served_model in (("trained", model), ("base", base)):
        with running_serve(served_model) as served:
            for seed in seeds:
                body = {
                    "model": served.model_id,
                    "messages": [{"role": "user", "content": seed.question}],
                }
                request = urllib.request.Request(served.chat_url, json.dumps(body).encode())  # noqa: S310
                with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                    answers.setdefault(name, []).append(
                        json.load(response)["choices"][0]["message"]["content"]
                    )
    for seed, trained, generic in zip(seeds, answers["trained"], answers["base"], strict=True):
        assert trained.startswith(seed.answer), (seed, trained)
        assert seed.answer not in generic


def test_flood_and_hang_modes(job: Job) -> None:
    params = TrainParams(str(job.base), "accelerated", "cuda", 1, 8)
    _, code, output = run_train(job, "0.26.1", params, ILAB_STANDIN_TRAIN_MODE="flood",
                                ILAB_STANDIN_FLOOD_LINES="30000")  # fmt: skip
    tracker = tracked(output, params)
    assert code == 0 and tracker.lines_seen > 30000
    assert len(tracker.loss_curve()) <= tracker.max_points and tracker.progress.completed
    profile = profile_for(IlabVersion(0, 26))
    assert profile is not None
    fresh = job.root / "job-hang"
    fresh.mkdir()
    data = TrainInput(job.data.messages_file, job.data.generate_dir, fresh)
    run = train_run(profile, (STANDIN, "--config", "DEFAULT"), params, data)
    env = job.env(ILAB_STANDIN_TRAIN_MODE="hang", ILAB_STANDIN_TRAIN_FAIL_AT="0")
    process = subprocess.Popen(run.argv, cwd=run.cwd, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)  # fmt: skip
    assert process.stdout is not None
    for line in process.stdout:
        if "Number of samples per save" in line:
            break
    process.terminate()  # a hung training only ends when killed
    rest, _ = process.communicate(timeout=60)
    assert process.returncode == -15 and "Operation completed" not in rest
