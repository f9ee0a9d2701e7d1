"""A train job's files in the artifact store: the generate data it downloads (verified against
the generate job's `checksums.json`), the checkpoints it uploads as training writes them (and
resumes from when the job is taken over) and the final model with its `model.json`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog

from instruct_lab_bot.core.checksums import (
    CHECKSUMS_NAME,
    Checksum,
    ChecksumError,
    checksum_facts,
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
    safe_file_name,
)
from instruct_lab_bot.core.training import (
    TrainLayout,
    checkpoint_dirs,
    checkpoint_epochs,
    folders_matching,
    training_files,
)
from instruct_lab_bot.services.worker.deps import WorkerDeps
from instruct_lab_bot.services.worker.ilab import JobFailed

log = structlog.get_logger(__name__)

#: Written last into each uploaded checkpoint folder: the folder is complete once it exists.
CHECKPOINT_DONE = "checkpoint.json"


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
    """Uploads each checkpoint folder (the layout's globs, relative to the job's folder
    `root`) once training has finished writing it (its files the same on two scans in a row),
    then its `checkpoint.json` marking it complete, under `<prefix>checkpoints/<folder>/`."""

    def __init__(
        self,
        deps: WorkerDeps,
        job: Job,
        root: Path,
        layout: TrainLayout,
        epochs_done: Callable[[], int],
    ) -> None:
        self.deps, self.root, self.epochs_done = deps, root, epochs_done
        self.globs = layout.checkpoint_globs if layout.resume != "restart" else ()
        self.prefix = job.artifact_key_prefix() + CHECKPOINTS_DIR
        self.uploaded: list[str] = []
        self._last_seen: dict[str, tuple[tuple[str, int], ...]] = {}

    async def scan(self) -> None:
        if not self.globs:
            return
        names = await asyncio.to_thread(files_under, self.root)
        folders = checkpoint_dirs(names, self.globs)
        for folder in folders:
            if folder in self.uploaded:
                continue
            inside = tuple(n for n in names if n.startswith(folder + "/"))
            sizes = await asyncio.to_thread(_sizes, self.root, inside)
            if self._last_seen.get(folder) == sizes:
                epochs = checkpoint_epochs(folder, folders) or self.epochs_done()
                await self._upload(folder, [n[len(folder) + 1 :] for n in inside], epochs)
            self._last_seen[folder] = sizes

    async def _upload(self, folder: str, files: Sequence[str], epochs_done: int) -> None:
        sums: dict[str, Checksum] = {}
        for rel in files:
            path = self.root / folder / rel
            sums[rel] = await asyncio.to_thread(checksum_of, path)
            await self.deps.store.put_large_file(f"{self.prefix}{folder}/{rel}", path)
        done = render_checksums(sums, epochs_done=epochs_done).encode()
        await self.deps.store.put_bytes(
            f"{self.prefix}{folder}/{CHECKPOINT_DONE}", done, "application/json"
        )
        self.uploaded.append(folder)
        log.info("train.checkpoint_uploaded", checkpoint=folder, files=len(files))


@dataclass(frozen=True)
class Resumed:
    folder: Path | None  # the restored model checkpoint (for "model-path"), in the job's folder
    name: str  # what was restored (for the check run and the reply)
    epochs_done: int


async def download_checkpoint(
    deps: WorkerDeps, job: Job, root: Path, layout: TrainLayout
) -> Resumed | None:
    """The newest complete uploaded checkpoint of each of the layout's globs, downloaded and
    verified back to where training wrote it in `root`; None when there is none (a first
    attempt, or a layout that restarts)."""
    if layout.resume == "restart" or not layout.checkpoint_globs:
        return None
    prefix = job.artifact_key_prefix() + CHECKPOINTS_DIR
    suffix = "/" + CHECKPOINT_DONE
    keys = await deps.store.list_keys(prefix)
    done = [k[len(prefix) : -len(suffix)] for k in keys if k.endswith(suffix)]
    done = [d for d in done if d and safe_file_name(d)]
    picked = [found[-1] for g in layout.checkpoint_globs if (found := folders_matching(
        [f"{d}/{CHECKPOINT_DONE}" for d in done], g))]  # fmt: skip
    if not picked:
        return None
    epochs = 0
    for folder in picked:
        text = await _restore(deps, f"{prefix}{folder}/", root / folder)
        done_epochs = checksum_facts(text).get("epochs_done", 0)
        epochs = max(epochs, done_epochs if isinstance(done_epochs, int) else 0)
    first = layout.checkpoint_globs[0]  # the model checkpoints (`hf_format/samples_*`)
    model = next((f for f in picked if f in folders_matching([f + "/x"], first)), None)
    use = model if layout.resume == "model-path" else None
    return Resumed(root / use if use else None, ", ".join(picked), epochs)


async def _restore(deps: WorkerDeps, prefix: str, folder: Path) -> bytes:
    """One uploaded checkpoint folder back into `folder`, each file verified."""
    await deps.store.get_file(prefix + CHECKPOINT_DONE, folder.parent / f".{folder.name}.json")
    text = await asyncio.to_thread((folder.parent / f".{folder.name}.json").read_bytes)
    for rel, expected in parse_checksums(text).items():
        if not safe_file_name(rel):
            raise ChecksumError(f"{CHECKPOINT_DONE} names an unsafe file {rel!r}")
        local = folder / rel
        await deps.store.get_file(prefix + rel, local)
        verify(rel, expected, await asyncio.to_thread(checksum_of, local))
    return text


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
