"""The stand-in's `ilab model train`, per release and pipeline (../shared/ilab/CLI.md §6 and a
recorded real 0.26.1 `--pipeline simple` run, tests/fixtures/ilab_train/).

What the bot sees is what the real one does: the flags each release takes and refuses, the
data rules (full/accelerated want the `.jsonl` file; simple searches `--input-dir` for
`train_*`/`test_*` and copies them to `train_gen.jsonl`/`test_gen.jsonl`), the console lines of
each code path (instructlab-training's `Epoch: e, Step: s, Rank: 0, loss = …` and metric JSON
blocks, 0.26's full pipeline log lines, the simple pipeline's `LINUX_TRAIN.PY:` prints, tqdm
bars and Trainer dicts), the files and folders where they appear, the exit codes (0.18's
training library exits 0 after "Operation failed"), and resuming where the real one resumes
(0.26 accelerated: from `<ckpt>/full_state/epoch_*`). The model it writes learns the
question/answer pairs of its data (testkit/ilab_model.py), so serving it answers the seed
questions with the contributors' answers.

Switches (environment):
  ILAB_STANDIN_TRAIN_MODE   ok (default) | fail | hang | flood | nan (loss NaN from the failure
                            point on; training still ends "successfully") | no-checkpoint
                            (prints a success, writes no model)
  ILAB_STANDIN_TRAIN_FAIL_AT  fraction of the steps where fail/hang/nan start (default 0.5)
  ILAB_STANDIN_TRAIN_STEP_SECONDS  sleep per step (default 0)
  ILAB_STANDIN_TRAIN_HOLD   a path: after saving its first model a run waits until that file
                            exists, so a test can kill it mid-training on a condition
  ILAB_STANDIN_TRAIN_MODEL_BYTES  size of the weights file each model folder gets (default 4096)
  ILAB_STANDIN_TRAIN_LOG_STEPS  the Trainer's logging_steps in the simple pipeline (default 500)
  ILAB_STANDIN_FLOOD_LINES  lines printed in flood mode (default 100000)
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from testkit.ilab_config import data_dir
from testkit.ilab_model import (
    Pair,
    learned_pairs,
    safetensors_bytes,
    write_gguf,
    write_hf_model,
)
from testkit.ilab_train_output import (
    RED,
    RESET,
    Steps,
    accelerated_epoch,
    full_epoch,
    simple_training,
)

if TYPE_CHECKING:
    from testkit.fake_ilab import Run

TRAIN_MODES = ("ok", "fail", "hang", "flood", "nan", "no-checkpoint")
DEVICES = {"0.18": ("cpu", "cuda", "hpu"), "0.26": ("cpu", "cuda", "hpu", "mps")}
PIPELINES = ("simple", "full", "accelerated")
FAILED_0_26 = (
    "Accelerated Training failed with Suffered a failure during distributed training. "
    "Please see the training logs for more context."
)


class Refused(Exception):
    """A usage error (exit 2, click's format) or a plain failure (exit 1, red on stdout)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class TrainKnobs:
    mode: str = "ok"
    fail_at: float = 0.5
    step_seconds: float = 0.0
    model_bytes: int = 4096
    log_steps: int = 500
    flood_lines: int = 100000
    hold: Path | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> TrainKnobs:
        mode = env.get("ILAB_STANDIN_TRAIN_MODE") or "ok"
        if mode not in TRAIN_MODES:
            raise ValueError(f"ILAB_STANDIN_TRAIN_MODE={mode!r}: one of {', '.join(TRAIN_MODES)}")
        return cls(
            mode=mode,
            fail_at=float(env.get("ILAB_STANDIN_TRAIN_FAIL_AT") or 0.5),
            step_seconds=float(env.get("ILAB_STANDIN_TRAIN_STEP_SECONDS") or 0),
            model_bytes=int(env.get("ILAB_STANDIN_TRAIN_MODEL_BYTES") or 4096),
            log_steps=int(env.get("ILAB_STANDIN_TRAIN_LOG_STEPS") or 500),
            flood_lines=int(env.get("ILAB_STANDIN_FLOOD_LINES") or 100000),
            hold=Path(hold) if (hold := env.get("ILAB_STANDIN_TRAIN_HOLD")) else None,
        )


@dataclass
class Training:
    """One run: where things go, what it learns, how it behaves."""

    run: Run
    knobs: TrainKnobs
    pipeline: str
    device: str
    model: Path
    epochs: int
    ckpt: Path
    pairs: list[Pair]
    samples: int
    data_dir: Path = Path()  # simple: the folder holding train_gen.jsonl/test_gen.jsonl
    tests: tuple[Pair, ...] = ()  # simple: the test samples it answers after training

    @property
    def new(self) -> bool:
        return self.run.profile.version.startswith("0.26")

    def step_loss(self, step: int, total: int) -> float:
        """A falling curve; NaN from the failure point on in nan mode."""
        if self.knobs.mode == "nan" and step > total * self.knobs.fail_at:
            return math.nan
        return 2.5 * math.exp(-3.0 * step / max(total, 1)) + 0.1 + 0.02 * ((step * 7) % 5)

    def stops_at(self, step: int, total: int) -> bool:
        """Whether fail/hang mode stops the run at `step`."""
        return self.knobs.mode in ("fail", "hang") and step > total * self.knobs.fail_at

    def pause(self) -> None:
        if self.knobs.step_seconds:
            time.sleep(self.knobs.step_seconds)

    def hold_after_save(self) -> None:
        """Wait (no deadline: the test kills us or releases us) for the hold file."""
        hold = self.knobs.hold
        while hold is not None and not hold.exists():
            time.sleep(0.02)

    def writes_models(self) -> bool:
        return self.knobs.mode != "no-checkpoint"


def _choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        listed = ", ".join(repr(c) for c in choices)
        raise Refused(f"Invalid value for '{name}': {value!r} is not one of {listed}.", 2)


def _records(path: Path) -> list[Pair]:
    """Question/answer pairs of a generate output file (`messages` or `user`/`assistant`)."""
    pairs: list[Pair] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        if "messages" in record:
            by_role = {m.get("role"): str(m.get("content", "")) for m in record["messages"]}
            pairs.append((by_role.get("user", ""), by_role.get("assistant", "")))
        else:
            pairs.append((str(record.get("user", "")), str(record.get("assistant", ""))))
    return pairs


def _newest(folder: Path, patterns: tuple[str, ...], skip: str) -> Path | None:
    found = [p for pattern in patterns for p in folder.glob(pattern) if p.name != skip]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def _simple_data(run: Run, opts: Mapping[str, Any]) -> Path:
    """Like ilab: with the default data path, copy the newest train_*/test_* of --input-dir
    to `<datasets>/train_gen.jsonl` and `test_gen.jsonl`; the folder holding them."""
    datasets = data_dir(os.environ) / "datasets"
    if opts["data_path"] and Path(opts["data_path"]) != datasets:
        return Path(opts["data_path"])
    input_dir = Path(opts["input_dir"] or datasets)
    if not input_dir.exists():
        raise Refused(f"Could not read directory: {input_dir}", 1)
    patterns = ("*/{}_*", "{}_*") if run.profile.version.startswith("0.26") else ("{}_*",)
    newest = {}
    for kind in ("train", "test"):
        found = _newest(input_dir, tuple(p.format(kind) for p in patterns), f"{kind}_gen.jsonl")
        if found is None:
            raise Refused(
                f"{input_dir} does not contain training or test files, did you run "
                "`ilab data generate`?",
                1,
            )
        newest[kind] = found
    datasets.mkdir(parents=True, exist_ok=True)
    for kind, found in newest.items():
        shutil.copy(found, datasets / f"{kind}_gen.jsonl")
    return datasets


def _check(run: Run, opts: Mapping[str, Any]) -> tuple[str, str]:
    """The pipeline and device, refused as the release refuses them."""
    line = "0.26" if run.profile.version.startswith("0.26") else "0.18"
    device = str(opts["device"] or "cpu")
    _choice("--device", device, DEVICES[line])
    if line == "0.18":
        return ("simple" if opts["legacy"] else "accelerated"), device
    pipeline = str(opts["pipeline"] or "full")
    _choice("--pipeline", pipeline, PIPELINES)
    gpu = device in ("cuda", "hpu")
    if (pipeline == "accelerated" and not gpu) or (pipeline == "full" and gpu):
        raise Refused(f"Unable to train with device={device} and pipeline={pipeline}", 1)
    return pipeline, device


def _data_pairs(
    run: Run, opts: Mapping[str, Any], pipeline: str
) -> tuple[list[Pair], Path, tuple[Pair, ...]]:
    """The training pairs, the folder they came from and (simple) the test pairs."""
    if pipeline == "simple":
        folder = _simple_data(run, opts)
        tests = folder / "test_gen.jsonl"
        found = tuple(_records(tests)) if tests.is_file() else ()
        return _records(folder / "train_gen.jsonl"), folder, found
    data_path = Path(opts["data_path"] or data_dir(os.environ) / "datasets")
    if not data_path.is_file():
        if run.profile.version.startswith("0.26"):
            message = (
                f"When using {pipeline} with None, it is necessary to specify path to a valid "
                f".jsonl file, rather than a directory. Value given: {data_path}"
            )
        else:
            message = f"Data path must be to a valid .jsonl file. Value given: {data_path}"
        raise Refused(message, 2)
    return _records(data_path), data_path.parent, ()


def _base(model: Path) -> list[Pair]:
    if not (model / "config.json").is_file():
        raise Refused(
            f"We couldn't connect to 'https://huggingface.co' to load the files, and couldn't "
            f"find them in the cached files. Check your connection or see "
            f"https://huggingface.co/docs/transformers/installation#offline-mode. ({model})",
            1,
        )
    return learned_pairs(model)


def train(run: Run, opts: Mapping[str, Any]) -> int:
    """`ilab model train`: the exit code the real release gives for this run."""
    knobs = TrainKnobs.from_env(os.environ)
    run.record.update({"command": "model train"})
    run.write_record()
    try:
        pipeline, device = _check(run, opts)
        data, folder, tests = _data_pairs(run, opts, pipeline)
        model = Path(opts["model_path"] or "instructlab/granite-7b-lab")
        pairs = [*_base(model), *data]
    except Refused as refused:
        return _refused(run, refused)
    ckpt = Path(opts["ckpt_output_dir"] or data_dir(os.environ) / "checkpoints")
    epochs = int(opts["num_epochs"] or 10)
    training = Training(run, knobs, pipeline, device, model, epochs, ckpt, pairs, len(data))
    training.data_dir, training.tests = folder, tests
    run.record.update({"pipeline": pipeline, "samples": len(data)})
    if knobs.mode == "flood":
        _flood(training)
    if pipeline == "simple":
        return _simple(training)
    if pipeline == "full":
        return _full(training, opts)
    return _accelerated(training, opts)


def _refused(run: Run, refused: Refused) -> int:
    if refused.code == 2:
        sys.stderr.write(
            "Usage: ilab model train [OPTIONS]\nTry 'ilab model train --help' for help.\n\n"
            f"Error: {refused}\n"
        )
    else:
        sys.stdout.write(f"{RED}{refused}{RESET}\n")
    return refused.code


def _flood(training: Training) -> None:
    out = sys.stdout
    chunk: list[str] = []
    for i in range(1, training.knobs.flood_lines + 1):
        chunk.append(f"Epoch: 0, Step: {i}, Rank: 0, loss = tensor(2.5000, device='cuda:0')\n")
        if len(chunk) == 2000:
            out.write("".join(chunk))
            chunk.clear()
    out.write("".join(chunk))
    out.flush()


# --------------------------------------------------------------------------------------------
# instructlab-training (0.18's default path, 0.26's accelerated pipeline)


def _samples_per_step(opts: Mapping[str, Any], new: bool) -> int:
    default = 64 if new else 3840
    return max(1, min(int(opts["effective_batch_size"] or default), 8))


def _resume_state(training: Training, out: TextIO) -> tuple[int, int]:
    """0.26: the epoch to start at and samples seen, from `<ckpt>/full_state/epoch_*`."""
    state = training.ckpt / "full_state"
    if not training.new or not state.is_dir():
        return 0, 0
    epochs = sorted(state.glob("epoch_*"), key=lambda p: int(p.name.rsplit("_", 1)[-1]))
    if not epochs:
        out.write(f"\033[93mNo checkpoints to load from: {state}\033[0m\n")
        return 0, 0
    latest = epochs[-1]
    out.write(f"\033[93mLoading state from: {latest}\033[0m\n")
    metadata = json.loads((latest / "training_metadata.json").read_text(encoding="utf-8"))
    out.write(f"\033[93mTraining metadata loaded: {metadata}\033[0m\n")
    out.write(f"\033[93mUpdating 'samples_seen' {metadata['samples_seen']}\033[0m\n")
    return int(metadata["current_epoch"]) + 1, int(metadata["samples_seen"])


def _accelerated(training: Training, opts: Mapping[str, Any]) -> int:
    out = sys.stdout  # the training subprocess's output, relayed by ilab
    per_step = _samples_per_step(opts, training.new)
    steps = Steps(math.ceil(training.samples / per_step) or 1, training.epochs, per_step)
    training.ckpt.mkdir(parents=True, exist_ok=True)
    command = (
        "torchrun --nnodes=1 --node_rank=0 --nproc_per_node=1 --rdzv_id=123 "
        "--rdzv_endpoint=127.0.0.1:12222 instructlab/training/main_ds.py "
        f"--model_name_or_path={training.model} --output_dir={training.ckpt} "
        f"--num_epochs={training.epochs}"
    )
    label = "Running training command as subprocess" if training.new else "Running command"
    out.write(f"\033[92m{label}: {command}\033[0m\n")
    start_epoch, seen = _resume_state(training, out)
    out.write(f"\033[93mNumber of samples per save: {250000 // per_step * per_step}\033[0m\n")
    for epoch in range(start_epoch, training.epochs):
        seen, stopped = accelerated_epoch(training, steps, epoch, seen)
        if stopped:
            return _stop_accelerated(training)
        _save_accelerated(training, epoch, seen)
        training.hold_after_save()
    out.write("\033[92mOperation completed successfully! 🎉\033[0m\n")
    out.flush()
    return 0


def _save_accelerated(training: Training, epoch: int, seen: int) -> None:
    out = sys.stdout
    if not training.writes_models():
        return
    subdir = f"samples_{seen}"
    where = f"at: {subdir}" if training.new else f"at samples_seen: {seen}"
    out.write(f"\033[93mSaving model in huggingface format {where}\033[0m\n")
    folder = training.ckpt / "hf_format" / subdir
    weights = "model.safetensors" if training.new else "pytorch_model.bin"
    size = training.knobs.model_bytes
    write_hf_model(folder, training.pairs, str(training.model), size, weights)
    out.write(f"\033[93mModel saved in {folder}\033[0m\n")
    if training.new:
        state = training.ckpt / "full_state" / f"epoch_{epoch}"
        out.write(f"\033[93mSaving full model state in {state}\033[0m\n")
        state.mkdir(parents=True, exist_ok=True)
        for name in ("optimizer.bin", "scheduler.bin", "random_states_0.pkl"):
            (state / name).write_bytes(b"\0" * 64)
        (state / "model.safetensors").write_bytes(safetensors_bytes(64))
        metadata = {"current_epoch": epoch, "samples_seen": seen}
        (state / "training_metadata.json").write_text(json.dumps(metadata), encoding="utf-8")
        out.write(f"\033[93mSaving training state: {metadata}\033[0m\n")
        out.write(f"\033[93mModel state saved in: {state}\033[0m\n")
    out.flush()


def _stop_accelerated(training: Training) -> int:
    out = sys.stdout
    if training.knobs.mode == "hang":
        training.run.hang_forever()
    if training.new:
        out.write("Training subprocess has not exited yet. Sending SIGTERM.\n")
        out.write(f"{FAILED_0_26}\n")
        return 1
    out.write("\033[91mOperation failed, terminating process.\033[0m\n")
    return 0  # 0.18: ilab returns normally after the training library's failure


# --------------------------------------------------------------------------------------------
# 0.26's full pipeline (CPU/MPS, in process)


def _full(training: Training, opts: Mapping[str, Any]) -> int:
    log = training.run.log
    per_step = _samples_per_step(opts, True)
    batches = math.ceil(training.samples / per_step) or 1
    steps = Steps(batches, training.epochs, per_step)
    summary = (
        f"avg_sample_len: 211.5\n effective_batch_size: {opts['effective_batch_size'] or 64}\n"
        f" max_batch_len: 5000\n packing_max_batch_len: 5000 \n grad_accum: 1\n"
        f"  num_batches: {batches}\n avg_samples_per_batch: {training.samples / batches}"
    )
    log("INFO", "instructlab.model.full_train:140", summary)
    log("INFO", "instructlab.model.full_train:268", "Total RAM: 15.52 GB")
    for epoch in range(training.epochs):
        if full_epoch(training, steps, epoch):
            if training.knobs.mode == "hang":
                training.run.hang_forever()
            sys.stderr.write(
                "Traceback (most recent call last):\n"
                '  File "/opt/app-root/lib64/python3.11/site-packages/instructlab/model/'
                'full_train.py", line 316, in train\n'
                "ValueError: Loss is None. Ensure the model's output contains a valid loss.\n"
            )
            return 1
        _save_full(training, epoch)
        training.hold_after_save()
    sys.stdout.write("ᕦ(òᴗóˇ)ᕤ Full model training completed successfully! ᕦ(òᴗóˇ)ᕤ\n")
    return 0


def _save_full(training: Training, epoch: int) -> None:
    folder = training.ckpt / "hf_format" / f"samples_{epoch * 8}"
    training.run.log("INFO", "instructlab.model.full_train:382", f"Saving Model to: {folder}")
    if not training.writes_models():
        return
    size = training.knobs.model_bytes
    write_hf_model(folder, training.pairs, str(training.model), size, "pytorch_model.bin")
    write_gguf(folder / "pytorch_model.gguf", training.pairs)
    write_gguf(folder / "pytorch_model-Q4_K_M.gguf", training.pairs)


# --------------------------------------------------------------------------------------------
# The simple pipeline (0.26 --pipeline simple, 0.18 --legacy): HF Trainer + LoRA in ./


def _simple(training: Training) -> int:
    results = Path("training_results")
    stopped = simple_training(training, results)
    if stopped:
        if training.knobs.mode == "hang":
            training.run.hang_forever()
        message = "CUDA error: an illegal memory access was encountered"
        sys.stdout.write(f"{RED}{message}{RESET}\n" if training.new else f"{message}\n")
        return 1
    if training.writes_models():
        _simple_final(training, results)
    if training.new:
        sys.stdout.write("ᕦ(òᴗóˇ)ᕤ Simple Model training completed successfully! ᕦ(òᴗóˇ)ᕤ\n")
    return 0


def _simple_final(training: Training, results: Path) -> None:
    log = training.run.log
    final = results / "final"
    if final.exists():
        shutil.rmtree(final)
    write_hf_model(final, training.pairs, str(training.model), training.knobs.model_bytes)
    for name in ("added_tokens.json", "tokenizer.model"):  # copied from the checkpoint
        (final / name).write_text("{}", encoding="utf-8")
    merged = results / "merged_model"
    merged.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "generation_config.json"):
        shutil.copy(final / name, merged / name)
        log("INFO", "instructlab.model.simple_train:198", f"Copied {merged / name} to {final}")
    log(
        "INFO", "instructlab.model.simple_train:202", f"Moved {merged}/model.safetensors to {final}"
    )
    gguf_dir = data_dir(os.environ) / "checkpoints"
    gguf_dir.mkdir(parents=True, exist_ok=True)
    gguf = gguf_dir / "ggml-model-f16.gguf"
    gguf.unlink(missing_ok=True)
    write_gguf(final / "ggml-model-f32.gguf", training.pairs)
    sys.stdout.write(f"Wrote {final / 'ggml-model-f32.gguf'}\n")
    (final / "model.safetensors").unlink()  # removed once converted, as the real one does
    shutil.move(final / "ggml-model-f32.gguf", gguf)
    log("INFO", "instructlab.model.simple_train:219", f"Save trained model to {gguf}")
