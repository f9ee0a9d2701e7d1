"""What each step of the training pipeline does in its pod (the kfp components in
`pipeline.py` call these): fetch the training file, run `ilab model train`, publish the model.

They run in the training image (the worker image with the `kubeflow` extra), reach the object
store with the S3 data connection's variables (`AWS_*`; `AWS_S3_ENDPOINT` as OpenShift AI's data
connections name the endpoint) and print what they do, which is the task's log in KFP.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from instruct_lab_bot.adapters.runner import DEFAULT_DROP_PREFIXES, RunLimits, run_streaming
from instruct_lab_bot.adapters.storage.s3 import S3Config, S3Store
from instruct_lab_bot.core.artifacts import parse_artifacts_url
from instruct_lab_bot.core.kubeflow import PROGRESS_NAME, fill_slots, progress_document
from instruct_lab_bot.core.model_manifest import (
    MANIFEST_NAME,
    MODEL_DIR,
    ModelFile,
    ModelManifest,
    safe_file_name,
)
from instruct_lab_bot.core.train_progress import TrainTracker
from instruct_lab_bot.core.training import final_model_dir

__all__ = ["StepFailed", "fetch_data", "publish_model", "train_model"]

T = TypeVar("T")
_LINK_EXPIRY = 3600  # the steps never hand out links


class StepFailed(SystemExit):
    """The step cannot go on: its message is the last line of the task's log, exit code 1."""

    def __init__(self, message: str) -> None:
        print(f"instruct-lab-bot: {message}", file=sys.stderr, flush=True)
        super().__init__(1)


def _store(store_url: str) -> S3Store:
    location = parse_artifacts_url(store_url)
    if location.scheme != "s3":
        raise StepFailed(f"the pipeline needs an s3:// artifacts location, not {store_url!r}")
    endpoint = os.environ.get("AWS_S3_ENDPOINT") or os.environ.get("AWS_ENDPOINT_URL") or None
    return S3Store(S3Config(location.bucket, location.prefix, endpoint, _LINK_EXPIRY))


def _run(store: S3Store, work: Coroutine[Any, Any, T]) -> T:
    async def main() -> T:
        try:
            return await work
        finally:
            await store.aclose()

    return asyncio.run(main())


def fetch_data(store_url: str, data_key: str, out_dir: str) -> str:
    """Download the training file `data_key` into `out_dir`; its name there."""
    name = data_key.rsplit("/", 1)[-1]
    if not safe_file_name(name):
        raise StepFailed(f"unsafe training file name {name!r}")
    store = _store(store_url)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    size = _run(store, store.get_file(data_key, Path(out_dir) / name))
    print(f"fetched {data_key} ({size} bytes)", flush=True)
    return name


class _Mirror:
    """The training's output lines, printed and mirrored to the progress document."""

    def __init__(self, store: S3Store, key: str, interval: float) -> None:
        self.store, self.key, self.interval = store, key, interval
        self.lines: list[tuple[str, str]] = []
        self.status = TrainTracker()  # the final loss goes into the manifest
        self.first = 0
        self._sent = -1
        self._last = 0.0

    def on_line(self, stream: str, line: str) -> None:
        print(line, file=sys.stdout if stream == "stdout" else sys.stderr, flush=True)
        self.lines.append((stream, line))
        self.status.feed(line)
        if len(self.lines) > 2000:  # keep memory bounded; the document holds fewer anyway
            self.first += 1000
            del self.lines[:1000]

    async def flush(self, *, done: bool = False) -> None:
        end = self.first + len(self.lines)
        if end == self._sent and not done:
            return
        body = progress_document(self.first, self.lines, done=done)
        await self.store.put_bytes(self.key, body, "application/json")
        self._sent, self._last = end, time.monotonic()

    async def keep_flushing(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.flush()


def train_model(
    store_url: str, output_key: str, plan_json: str, data_dir: str, model_out: str, interval: float
) -> float | None:
    """Run the plan's argv (its `{data}`/`{work}` filled in) in a fresh work folder,
    mirroring its output lines to the progress document, then copy the final model folder
    (the plan's `model_glob`, relative to the work folder) to `model_out`; the last loss seen
    (None when there was none or it went NaN)."""
    plan = json.loads(plan_json)
    argv, model_glob = plan.get("argv"), plan.get("model_glob")
    if not (isinstance(argv, list) and argv and all(isinstance(a, str) for a in argv)):
        raise StepFailed("the training command is not a list of words")
    if not isinstance(model_glob, str) or not model_glob:
        raise StepFailed("the training plan names no model folder")
    work = Path(tempfile.mkdtemp(prefix="ilab-train-"))  # TMPDIR: a volume for big models
    (work / "home").mkdir()
    store = _store(store_url)
    mirror = _Mirror(store, output_key + PROGRESS_NAME, interval)
    run = _Training(fill_slots(argv, data_dir, str(work)), work, model_glob)
    found = _run(store, _train(run, mirror))
    if found is None:
        raise SystemExit(1)  # the reason is the last line of the log and of the mirror
    shutil.copytree(work / found, model_out, dirs_exist_ok=True)
    print(f"model: {found}", flush=True)
    progress = mirror.status.progress
    loss = progress.loss
    return None if progress.saw_nan or loss is None or not math.isfinite(loss) else loss


@dataclass(frozen=True)
class _Training:
    argv: list[str]
    work: Path
    model_glob: str


async def _train(run: _Training, mirror: _Mirror) -> str | None:
    """Train; the model folder (relative to the work folder), or None with the reason told."""
    argv, work = run.argv, run.work
    env = {k: v for k, v in os.environ.items() if not k.startswith(DEFAULT_DROP_PREFIXES)}
    env |= {"HOME": str(work / "home"), "PYTHONUNBUFFERED": "1"}
    flusher = asyncio.create_task(mirror.keep_flushing())
    limits = RunLimits(timeout=7 * 86400.0)  # the bot terminates the run on its own timeout
    found: str | None = None
    try:
        result = await run_streaming(argv, cwd=work, env=env, on_line=mirror.on_line, limits=limits)
        if result.exit_code != 0:
            problem = f"ilab model train ended with exit code {result.exit_code}"
        else:  # 0.18 can exit 0 after failing: only a written model counts
            found = final_model_dir(await asyncio.to_thread(_files, work), run.model_glob)
            problem = "" if found else "ilab model train wrote no model"
    except OSError as exc:
        problem = f"cannot run {argv[0]}: {exc.strerror or exc}"
    finally:
        flusher.cancel()
        await asyncio.gather(flusher, return_exceptions=True)
    if problem:
        mirror.on_line("stderr", f"instruct-lab-bot: {problem}")
    await mirror.flush(done=True)
    return found


def _files(root: Path) -> list[str]:
    return [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def publish_model(
    store_url: str,
    output_key: str,
    manifest_json: str,
    model_dir: str,
    final_loss: float | None = None,
) -> None:
    """Upload every file of `model_dir` under `<output_key>model/`, then `model.json` (last:
    a manifest present means a complete model)."""
    root = Path(model_dir)
    paths = sorted(p for p in root.rglob("*") if p.is_file())
    if not paths:
        raise StepFailed("the model folder is empty")
    files = tuple(
        ModelFile(p.relative_to(root).as_posix(), p.stat().st_size, _sha256(p)) for p in paths
    )
    given = {**json.loads(manifest_json), "files": files_json(files), "created_at": time.time()}
    given["final_loss"] = final_loss
    manifest = ModelManifest.from_json(json.dumps(given))
    store = _store(store_url)

    async def upload() -> None:
        for path, entry in zip(paths, files, strict=True):
            # resumable: a retried task continues an interrupted upload
            await store.put_large_file(f"{output_key}{MODEL_DIR}{entry.name}", path)
            print(f"uploaded {entry.name} ({entry.size} bytes)", flush=True)
        key = f"{output_key}{MODEL_DIR}{MANIFEST_NAME}"
        await store.put_bytes(key, manifest.to_json().encode(), "application/json")

    _run(store, upload())
    print(f"published {len(files)} files, {manifest.total_bytes} bytes", flush=True)


def files_json(files: tuple[ModelFile, ...]) -> list[dict[str, object]]:
    """The manifest's `files` entries."""
    return [{"name": f.name, "size": f.size, "sha256": f.sha256} for f in files]
