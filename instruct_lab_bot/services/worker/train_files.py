"""A train job's files in the artifact store: the generate data it downloads (verified against
the generate job's `checksums.json`), the checkpoints it uploads as training writes them (and
resumes from when the job is taken over) and the final model with its `model.json`."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog

from instruct_lab_bot.core.checksums import (
    CHECKSUMS_NAME,
    Checksum,
    ChecksumError,
    file_checksum,
    parse_checksums,
    render_checksums,
    verify,
)
from instruct_lab_bot.core.jobs import Job
from instruct_lab_bot.core.model_manifest import (
    CHECKPOINTS_DIR,
    MANIFEST_NAME,
    MODEL_DIR,
    ModelFile,
    ModelManifest,
)
from instruct_lab_bot.core.training import checkpoint_dirs, training_files
from instruct_lab_bot.services.worker.deps import WorkerDeps
from instruct_lab_bot.services.worker.ilab import JobFailed

log = structlog.get_logger(__name__)

#: Written last into each uploaded checkpoint folder: the folder is complete once it exists.
CHECKPOINT_DONE = "checkpoint.json"
_SAMPLES_N = re.compile(r"samples_(\d+)$")


def checksum_of(path: Path) -> Checksum:
    """Size and sha256 of a local file (call it in a thread)."""
    with path.open("rb") as src:
        return file_checksum(src)


def files_under(root: Path) -> list[str]:
    """Regular files below `root` (no symlinks), `/`-separated and relative, sorted."""
    if not root.is_dir():
        return []
    return sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and not p.is_symlink()
    )


def _sizes(root: Path, names: Sequence[str]) -> tuple[tuple[str, int], ...]:
    return tuple((name, (root / name).stat().st_size) for name in names)


@dataclass(frozen=True)
class TrainingData:
    path: Path  # the verified local copy
    key: str  # its artifact key


async def download_data(deps: WorkerDeps, source: Job, dest_dir: Path) -> TrainingData:
    """The generate job's training `.jsonl`, checked against its `checksums.json`; JobFailed
    with a clear reason when it is missing or does not match."""
    prefix = source.artifact_key_prefix()
    sums_path = dest_dir / CHECKSUMS_NAME
    if not await deps.store.exists(prefix + CHECKSUMS_NAME):
        raise JobFailed(
            f"generate job `{source.id}` has no {CHECKSUMS_NAME} (it ran before the bot "
            "recorded checksums): run `generate` again, then `train`"
        )
    await deps.store.get_file(prefix + CHECKSUMS_NAME, sums_path)
    try:
        sums = parse_checksums(await asyncio.to_thread(sums_path.read_bytes))
    except ChecksumError as exc:
        raise JobFailed(f"generate job `{source.id}`: {exc}") from None
    names = training_files(sums)
    if not names:
        raise JobFailed(
            f"generate job `{source.id}` stored no training data file (`*train*.jsonl`)"
        )
    for name in names:  # the one to train on first; all into one folder (`simple` reads it)
        local = dest_dir / Path(name).name
        await deps.store.get_file(prefix + name, local)
        try:
            verify(name, sums.get(name), await asyncio.to_thread(checksum_of, local))
        except ChecksumError as exc:
            raise JobFailed(f"the training data of generate job `{source.id}`: {exc}") from None
    return TrainingData(dest_dir / Path(names[0]).name, prefix + names[0])


class CheckpointUploader:
    """Uploads each checkpoint folder once training has finished writing it (its files the
    same on two scans in a row), then its `checkpoint.json` marking it complete."""

    def __init__(self, deps: WorkerDeps, job: Job, output_dir: Path) -> None:
        self.deps, self.output_dir = deps, output_dir
        self.prefix = job.artifact_key_prefix() + CHECKPOINTS_DIR
        self.uploaded: list[str] = []
        self._last_seen: dict[str, tuple[tuple[str, int], ...]] = {}

    async def scan(self) -> None:
        names = await asyncio.to_thread(files_under, self.output_dir)
        for folder in checkpoint_dirs(names):
            if folder in self.uploaded:
                continue
            inside = tuple(n for n in names if n.startswith(folder + "/"))
            sizes = await asyncio.to_thread(_sizes, self.output_dir, inside)
            if self._last_seen.get(folder) == sizes:
                await self._upload(folder, [n[len(folder) + 1 :] for n in inside])
            self._last_seen[folder] = sizes

    async def _upload(self, folder: str, files: Sequence[str]) -> None:
        name = Path(folder).name
        sums: dict[str, Checksum] = {}
        for rel in files:
            path = self.output_dir / folder / rel
            sums[rel] = await asyncio.to_thread(checksum_of, path)
            await self.deps.store.put_file(f"{self.prefix}{name}/{rel}", path)
        done = render_checksums(sums).encode()
        await self.deps.store.put_bytes(
            f"{self.prefix}{name}/{CHECKPOINT_DONE}", done, "application/json"
        )
        self.uploaded.append(folder)
        log.info("train.checkpoint_uploaded", checkpoint=name, files=len(files))


async def download_checkpoint(deps: WorkerDeps, job: Job, dest: Path) -> Path | None:
    """The newest complete uploaded checkpoint of this job, downloaded and verified into
    `dest/<name>`; None when there is none (a first attempt)."""
    prefix = job.artifact_key_prefix() + CHECKPOINTS_DIR
    keys = await deps.store.list_keys(prefix)
    done = [k[len(prefix) :].split("/")[0] for k in keys if k.endswith("/" + CHECKPOINT_DONE)]
    if not done:
        return None
    name = max(done, key=lambda n: int(m[1]) if (m := _SAMPLES_N.search(n)) else -1)
    folder = dest / name
    await deps.store.get_file(f"{prefix}{name}/{CHECKPOINT_DONE}", dest / CHECKPOINT_DONE)
    sums = parse_checksums(await asyncio.to_thread((dest / CHECKPOINT_DONE).read_bytes))
    for rel, expected in sums.items():
        local = folder / rel
        await deps.store.get_file(f"{prefix}{name}/{rel}", local)
        verify(rel, expected, await asyncio.to_thread(checksum_of, local))
    return folder


@dataclass(frozen=True)
class StoredModel:
    manifest: ModelManifest
    manifest_key: str


async def upload_model(
    deps: WorkerDeps, job: Job, model_dir: Path, manifest: ModelManifest
) -> StoredModel:
    """Every file of `model_dir` to `<prefix>model/` (multipart, parallel parts), then the
    manifest listing them with sizes and sha256 (`manifest` gives the other fields)."""
    prefix = job.artifact_key_prefix() + MODEL_DIR
    files: list[ModelFile] = []
    for rel in await asyncio.to_thread(files_under, model_dir):
        path = model_dir / rel
        checksum = await asyncio.to_thread(checksum_of, path)
        await deps.store.put_large_file(prefix + rel, path)
        files.append(ModelFile(rel, checksum.size, checksum.sha256))
    if not files:
        raise JobFailed("the model folder training wrote is empty")
    stored = ModelManifest(
        train_job=manifest.train_job,
        data_job=manifest.data_job,
        base_model=manifest.base_model,
        ilab_version=manifest.ilab_version,
        files=tuple(files),
        hyperparameters=manifest.hyperparameters,
        final_loss=manifest.final_loss,
        created_at=time.time(),
    )
    key = prefix + MANIFEST_NAME
    await deps.store.put_bytes(key, stored.to_json().encode(), "application/json")
    return StoredModel(stored, key)


async def read_manifest(deps: WorkerDeps, job: Job, scratch: Path) -> StoredModel:
    """The manifest a remote backend stored (ManifestError if it cannot be trusted)."""
    key = job.artifact_key_prefix() + MODEL_DIR + MANIFEST_NAME
    await deps.store.get_file(key, scratch)
    text = await asyncio.to_thread(scratch.read_text)
    return StoredModel(ModelManifest.from_json(text), key)
