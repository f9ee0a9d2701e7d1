"""A trained model, from the artifact store to a local folder, every file checked against its
manifest (`model/model.json`: size and sha256) before anything uses it. `test` and the
`local` serving backend fetch models this way."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

from instruct_lab_bot.adapters.storage import ArtifactStore
from instruct_lab_bot.core.model_manifest import (
    MANIFEST_NAME,
    MODEL_DIR,
    ManifestError,
    ModelFile,
    ModelManifest,
)

MAX_MANIFEST_BYTES = 1024 * 1024
_CHUNK = 1024 * 1024


class ModelFilesError(Exception):
    """The model cannot be used: no manifest, a bad one, or a file that does not match it.
    The message is written for the PR."""


def model_prefix(job_prefix: str) -> str:
    """The key prefix of a train job's model folder, from the job's artifact prefix."""
    return job_prefix + MODEL_DIR


async def read_manifest(store: ArtifactStore, prefix: str) -> ModelManifest:
    """The manifest under `prefix` (a model folder's key prefix), parsed and checked."""
    raw = await store.read_head(prefix + MANIFEST_NAME, MAX_MANIFEST_BYTES + 1)
    if raw is None:
        raise ModelFilesError(f"the trained model has no {MANIFEST_NAME}")
    if len(raw) > MAX_MANIFEST_BYTES:
        raise ModelFilesError(f"{MANIFEST_NAME} is larger than {MAX_MANIFEST_BYTES} bytes")
    try:
        return ModelManifest.from_json(raw)
    except ManifestError as exc:
        raise ModelFilesError(str(exc)) from None


async def fetch_model(store: ArtifactStore, prefix: str, dest: Path) -> ModelManifest:
    """Download every file the manifest under `prefix` lists into `dest`, each verified;
    raises ModelFilesError on the first that does not match (StorageError when the store
    fails)."""
    manifest = await read_manifest(store, prefix)
    for item in manifest.files:
        target = dest / item.name
        await asyncio.to_thread(target.parent.mkdir, parents=True, exist_ok=True)
        await store.get_file(prefix + item.name, target)
        await asyncio.to_thread(verify_file, target, item)
    return manifest


def verify_file(path: Path, item: ModelFile) -> None:
    """Raise ModelFilesError unless `path` has the manifest's size and sha256."""
    size = path.stat().st_size
    if size != item.size:
        raise ModelFilesError(f"{item.name} has {size} bytes, the manifest says {item.size}")
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    if digest.hexdigest() != item.sha256:
        raise ModelFilesError(f"{item.name}: its sha256 does not match the manifest")
