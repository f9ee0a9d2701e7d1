"""The real `ilab model train --pipeline simple --device cpu` (0.26.1) with the bot's own
command line (core.ilab.train_run) on a tiny Llama with a SentencePiece tokenizer built offline,
its output read by core.train_progress, the files it wrote (named in a model manifest), and
the real `ilab model serve` (llama-cpp on CPU) serving the GGUF it left, ready when
`/v1/models` lists it (core.ilab.serve_argv).

With ILAB_REAL_RECORD=1 the run's output and file layout are recorded under
tests/fixtures/ilab_train/ (the parser's and the stand-in's tests read them).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import subprocess
import urllib.request
from pathlib import Path

import pytest

from instruct_lab_bot.core.ilab import TrainInput, TrainParams, profile_for, serve_argv, train_run
from instruct_lab_bot.core.ilab.versions import IlabVersion
from instruct_lab_bot.core.model_manifest import ModelFile, ModelManifest
from instruct_lab_bot.core.train_progress import TrainTracker
from testkit.ilab_serve import wait_listed
from tests.real_ilab.conftest import ROOT, RealIlab

FIXTURES = ROOT / "tests" / "fixtures" / "ilab_train"
SYSTEM = "I am a helpful assistant."
PAIRS = [
    ("What is the capital of the Moon base?", "The capital of the Moon base is Tranquility."),
    ("How many legs does a spider have?", "A spider has eight legs."),
    ("What colour is the sky on a clear day?", "The sky is blue on a clear day."),
]
EPOCHS = 2


@pytest.fixture(scope="module")
def sentencepiece_model(real_ilab: RealIlab, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sp-model") / "tiny-llama-sp"
    python = str(real_ilab.venv / "bin" / "python")
    subprocess.run(
        [python, str(ROOT / "testkit" / "tiny_model.py"), str(out), "--sentencepiece"],
        check=True,
        capture_output=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    return out


def generate_output(folder: Path) -> Path:
    """A generate job's output as 0.26 writes it: `train_*`/`test_*` in a dated folder."""
    dated = folder / "2026-01-01_000000"
    dated.mkdir(parents=True)
    with (dated / "train_2026-01-01T00_00_00.jsonl").open("w", encoding="utf-8") as train:
        for _ in range(2):
            for user, assistant in PAIRS:
                record = {"system": SYSTEM, "user": user, "assistant": assistant}
                train.write(json.dumps(record) + "\n")
    with (dated / "test_2026-01-01T00_00_00.jsonl").open("w", encoding="utf-8") as test:
        user, assistant = PAIRS[0]
        test.write(json.dumps({"system": SYSTEM, "user": user, "assistant": assistant}) + "\n")
    return dated


def file_layout(root: Path, folders: list[Path]) -> dict[str, list[str]]:
    return {
        str(folder.relative_to(root)): sorted(p.name for p in folder.iterdir())
        for folder in folders
    }


def manifest_of(folder: Path, extra: Path) -> ModelManifest:
    files = [p for p in sorted(folder.iterdir()) if p.is_file()] + [extra]
    entries = tuple(
        ModelFile(p.name, p.stat().st_size, hashlib.sha256(p.read_bytes()).hexdigest())
        for p in files
    )
    manifest = ModelManifest("train-1", "gen-1", "tiny-llama-sp", "0.26.1", entries)
    return ModelManifest.from_json(manifest.to_json())


def test_real_simple_training_with_the_bots_argv(
    real_ilab: RealIlab, sentencepiece_model: Path, tmp_path: Path
) -> None:
    profile = profile_for(IlabVersion(0, 26))
    assert profile is not None
    workdir = tmp_path / "job"
    workdir.mkdir()
    gen = generate_output(tmp_path / "generated")
    data = TrainInput(gen / "unused.jsonl", gen, workdir)
    params = TrainParams(str(sentencepiece_model), "simple", "cpu", EPOCHS)
    run = train_run(profile, (real_ilab.ilab, "--config", "DEFAULT"), params, data)
    env = {**os.environ, "HOME": str(real_ilab.xdg), **real_ilab.env(), "PYTHONUNBUFFERED": "1"}
    done = subprocess.run(  # one stream, as the worker reads it
        run.argv, cwd=run.cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        timeout=600, check=False,
    )  # fmt: skip
    output = done.stdout.decode("utf-8", "replace")
    assert done.returncode == 0, output[-4000:]

    tracker = TrainTracker(epochs=EPOCHS, pipeline="simple")
    for line in re.split(r"\r\n|\r|\n", output):
        tracker.feed(line)
    progress = tracker.progress
    samples = 2 * len(PAIRS)
    assert progress.completed and not progress.error
    assert progress.step == progress.total_steps == samples * EPOCHS
    assert progress.epoch == EPOCHS and progress.epochs == EPOCHS
    assert progress.loss is not None and progress.loss > 0 and not progress.saw_nan
    assert tracker.loss_curve()

    checkpoints = sorted(run.cwd.glob(run.checkpoint_globs[0]), key=lambda p: len(p.name))
    assert [c.name for c in checkpoints] == [f"checkpoint-{samples * e}" for e in (1, 2)]
    final = run.cwd / run.model_glob
    assert run.gguf_in_data_home is not None
    gguf = real_ilab.xdg / "data" / run.gguf_in_data_home
    assert gguf.read_bytes()[:4] == b"GGUF"
    assert {"config.json", "tokenizer.json", "tokenizer.model"} <= {p.name for p in final.iterdir()}
    assert not list(final.glob("*.safetensors"))  # deleted once converted to GGUF
    manifest = manifest_of(final, gguf)
    assert manifest.file("ggml-model-f16.gguf") is not None
    assert manifest.total_bytes == sum(f.size for f in manifest.files)

    layout = file_layout(run.cwd, [*checkpoints, final, run.cwd / "training_results/merged_model"])
    layout = {re.sub(r"checkpoint-\d+", "checkpoint-N", k): v for k, v in layout.items()}
    if os.environ.get("ILAB_REAL_RECORD") == "1":
        (FIXTURES / "real-0.26.1-simple.log").write_bytes(done.stdout)
        text = json.dumps(layout, indent=2, sort_keys=True) + "\n"
        (FIXTURES / "real-0.26.1-simple-files.json").write_text(text, encoding="utf-8")
    recorded = json.loads((FIXTURES / "real-0.26.1-simple-files.json").read_text("utf-8"))
    assert layout == recorded

    serve_trained_gguf(real_ilab, gguf, tmp_path)


def serve_trained_gguf(real_ilab: RealIlab, gguf: Path, tmp_path: Path) -> None:
    """The real `model serve` on CPU (llama-cpp) with the bot's argv: exit 0 on SIGTERM, ready
    when /v1/models lists the model path, answering a chat completion."""
    profile = profile_for(IlabVersion(0, 26))
    assert profile is not None
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    command = (real_ilab.ilab, "--config", "DEFAULT")
    served = serve_argv(profile, command, gguf, "127.0.0.1", port, tmp_path)
    env = {**os.environ, "HOME": str(real_ilab.xdg), **real_ilab.env()}
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(served.argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        assert wait_listed(served.models_url, process, timeout=300)
        with urllib.request.urlopen(served.models_url, timeout=30) as response:  # noqa: S310
            listed = [m["id"] for m in json.load(response)["data"]]
        assert listed == [served.model_id]
        body = {
            "model": served.model_id,
            "max_tokens": 4,
            "messages": [{"role": "user", "content": "hi"}],
        }
        request = urllib.request.Request(  # noqa: S310
            served.chat_url, json.dumps(body).encode(), {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310
            assert json.load(response)["choices"][0]["message"]["role"] == "assistant"
    finally:
        process.terminate()
        code = process.wait(timeout=120)
        log.close()
    assert code == 0
