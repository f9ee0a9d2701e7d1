"""The console lines of the stand-in's `ilab model train`, per code path: instructlab-training
(0.4 for ilab 0.18, 0.10 for 0.26), 0.26's full pipeline and the simple pipeline's HF Trainer.
Formats from the packages' sources (CLI.md §6.4) and the recorded real 0.26.1 simple run."""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from testkit.fake_ilab import ProgressBar
from testkit.ilab_model import TOKENIZER_FILES, answer, safetensors_bytes, write_pairs

if TYPE_CHECKING:
    from testkit.ilab_train import Training

RED, RESET = "\033[31m", "\033[0m"


@dataclass(frozen=True)
class Steps:
    per_epoch: int
    epochs: int
    samples_per_step: int

    @property
    def total(self) -> int:
        return self.per_epoch * self.epochs


def _tensor(value: float, device: str | None = "cuda:0", grad: bool = True) -> str:
    number = "nan" if math.isnan(value) else f"{value:.4f}"
    where = f", device='{device}'" if device else ""
    return f"tensor({number}{where}{', grad_fn=<MulBackward0>' if grad else ''})"


def _metrics(
    training: Training, epoch: int, step: int, seen: int, loss: float
) -> dict[str, object]:
    throughput = 8.0 / max(training.knobs.step_seconds, 0.05)
    common: dict[str, object] = {"epoch": epoch, "step": step, "rank": 0}
    if not training.new:
        common["loss"] = loss
    common |= {
        "overall_throughput": round(throughput, 4),
        "lr": 2e-05,
        "cuda_mem_allocated": 12.5,
        "cuda_malloc_retries": 0,
        "num_loss_counted_tokens": 2048,
        "batch_size": 8,
        "total_loss": loss,
    }
    if training.new:
        common |= {"samples_seen": seen, "gradnorm": 1.25, "total_samples": training.samples}
    else:
        common |= {"gradnorm": 1.25, "weight_norm": 512.5}
    common["timestamp"] = datetime.now().isoformat()
    return common


def accelerated_epoch(training: Training, steps: Steps, epoch: int, seen: int) -> tuple[int, bool]:
    """One epoch of instructlab-training's loop; (samples seen, stopped by fail/hang)."""
    out = sys.stdout
    bar = ProgressBar(out, f"Epoch {epoch}", steps.per_epoch)
    metrics = training.ckpt / "training_params_and_metrics_global0.jsonl"
    for i in range(1, steps.per_epoch + 1):
        step = epoch * steps.per_epoch + i
        if training.stops_at(step, steps.total):
            out.write("\n")
            return seen, True
        training.pause()
        loss = training.step_loss(step, steps.total)
        seen += steps.samples_per_step
        out.write("\n")
        if not training.new:
            out.write(f"\033[93mPer-token loss scaled by world size: {_tensor(loss)}\033[0m\n")
        out.write(f"Epoch: {epoch}, Step: {step}, Rank: 0, loss = {_tensor(loss)}\n")
        record = _metrics(training, epoch, step, seen, loss)
        out.write(f"\033[92m{json.dumps(record, indent=4)}\033[0m\n")
        with metrics.open("a", encoding="utf-8") as log:
            log.write(json.dumps(record) + "\n")
        bar.update()
    bar.close()
    return seen, False


def full_epoch(training: Training, steps: Steps, epoch: int) -> bool:
    """One epoch of 0.26's full pipeline (log lines on stderr); True when stopped."""
    bar = ProgressBar(sys.stderr, f"Epoch {epoch}", steps.per_epoch)
    accumulated = 0.0
    for i in range(1, steps.per_epoch + 1):
        step = epoch * steps.per_epoch + i
        if training.stops_at(step, steps.total):
            sys.stderr.write("\n")
            return True
        training.pause()
        loss = training.step_loss(step, steps.total)
        accumulated = loss if i % 4 == 1 else accumulated + loss
        message = (
            f"\nEpoch: {epoch}, Step: {i}, Loss per batch: {loss / 5000}, "
            f"Actual Loss Per Batch = {_tensor(loss, None, False)}, "
            f"accumulated loss: {accumulated}"
        )
        sys.stderr.write("\n")
        training.run.log("INFO", "instructlab.model.full_train:338", message)
        bar.update()
    bar.close()
    return False


def _print(*words: object) -> None:
    sys.stdout.write(" ".join(str(w) for w in words) + "\n")
    sys.stdout.flush()


def simple_training(training: Training, results: Path) -> bool:
    """The simple pipeline's `linux_train`: prints, the Trainer's bar and dicts, a checkpoint
    per epoch; True when stopped by fail/hang."""
    data = Path("train_gen.jsonl")
    _print("LINUX_TRAIN.PY: NUM EPOCHS IS: ", training.epochs)
    _print("LINUX_TRAIN.PY: TRAIN FILE IS: ", training.data_dir / data)
    _print("LINUX_TRAIN.PY: TEST FILE IS: ", training.data_dir / "test_gen.jsonl")
    _print(f"LINUX_TRAIN.PY: Using device '{training.device}'")
    for word in ("LOADING DATASETS", "NOT USING 4-bit quantization", "LOADING THE BASE MODEL"):
        _print(f"LINUX_TRAIN.PY: {word}")
    _print(f"LINUX_TRAIN.PY: Model device {training.device}")
    _print("LINUX_TRAIN.PY: SANITY CHECKING THE BASE MODEL")
    sanity = ProgressBar(sys.stderr, "", max(len(training.tests), 1))
    sanity.update(max(len(training.tests), 1))
    sanity.close()
    for word in ("GETTING THE ATTENTION LAYERS", "CONFIGURING LoRA", "TRAINING"):
        _print(f"LINUX_TRAIN.PY: {word}")
    steps = Steps(max(training.samples, 1), training.epochs, 1)
    started = time.monotonic()
    losses = _trainer_loop(training, steps, results)
    if losses is None:
        return True
    runtime = max(time.monotonic() - started, 1e-3)
    summary = {
        "train_runtime": round(runtime, 4),
        "train_samples_per_second": round(steps.total / runtime, 3),
        "train_steps_per_second": round(steps.total / runtime, 3),
        "train_loss": sum(losses) / len(losses),
        "epoch": float(training.epochs),
    }
    _print(summary)
    _inference(training)
    _print("LINUX_TRAIN.PY: MERGING ADAPTERS")
    _print("LINUX_TRAIN.PY: FINISHED")
    return False


def write_adapter_checkpoint(training: Training, folder: Path, step: int, epoch: float) -> None:
    """An HF Trainer checkpoint of the LoRA adapter (what `save_strategy="epoch"` writes)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "adapter_model.safetensors").write_bytes(safetensors_bytes(2048))
    (folder / "adapter_config.json").write_text('{"peft_type": "LORA", "r": 4}', "utf-8")
    state = {"global_step": step, "epoch": epoch, "log_history": []}
    (folder / "trainer_state.json").write_text(json.dumps(state), encoding="utf-8")
    for name in ("optimizer.pt", "scheduler.pt", "rng_state.pth", "training_args.bin"):
        (folder / name).write_bytes(b"\0" * 64)
    for name in (*TOKENIZER_FILES, "added_tokens.json", "tokenizer.model"):
        (folder / name).write_text("{}", encoding="utf-8")
    (folder / "README.md").write_text("# stand-in adapter\n", encoding="utf-8")
    write_pairs(folder / "standin-pairs.jsonl", training.pairs)


def _trainer_loop(training: Training, steps: Steps, results: Path) -> list[float] | None:
    bar = ProgressBar(sys.stderr, "", steps.total)
    losses: list[float] = []
    for step in range(1, steps.total + 1):
        if training.stops_at(step, steps.total):
            sys.stderr.write("\n")
            return None
        training.pause()
        loss = training.step_loss(step, steps.total)
        losses.append(loss)
        bar.update()
        epoch = step / steps.per_epoch
        if step % training.knobs.log_steps == 0:
            logged = {"loss": round(loss, 4), "grad_norm": 1.25, "learning_rate": 0.0002}
            _print({**logged, "epoch": round(epoch, 2)})
        if step % steps.per_epoch == 0 and training.writes_models():
            write_adapter_checkpoint(training, results / f"checkpoint-{step}", step, epoch)
    bar.close()
    return losses


def _inference(training: Training) -> None:
    _print("LINUX_TRAIN.PY: RUNNING INFERENCE ON THE OUTPUT MODEL")
    base = Path(str(training.model)).name
    for i, (question, expected) in enumerate(training.tests):
        _print(f"\n===\ntest {i}\n===\n")
        _print("\n===\nuser\n===\n")
        _print(question)
        _print("\n===\nassistant_old\n===\n")
        _print(answer([], base, question))
        _print("\n===\nassistant_new\n===\n")
        _print(answer(training.pairs, base, question))
        _print("\n===\nassistant_expected\n===\n")
        _print(expected)
