"""A trained model fetched from the store, every file checked against its manifest."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from instruct_lab_bot.adapters.storage.local import LocalStore
from instruct_lab_bot.core.model_manifest import MANIFEST_NAME, ModelFile, ModelManifest
from instruct_lab_bot.services.model_files import ModelFilesError, fetch_model

PREFIX = "o/r/pr-1/sha/train-1/model/"


def _store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "store", "http://127.0.0.1:1", b"k" * 32, 3600)


async def _seed(store: LocalStore, files: dict[str, bytes], listed: dict[str, bytes]) -> None:
    for name, data in files.items():
        await store.put_bytes(PREFIX + name, data, "application/octet-stream")
    manifest = ModelManifest(
        "train-1",
        "gen-1",
        "base",
        "0.26.1",
        tuple(
            ModelFile(n, len(d), hashlib.sha256(d).hexdigest()) for n, d in sorted(listed.items())
        ),
    )
    await store.put_bytes(PREFIX + MANIFEST_NAME, manifest.to_json().encode(), "application/json")


async def test_every_file_is_fetched_and_verified(tmp_path: Path) -> None:
    store = _store(tmp_path)
    files = {"config.json": b"{}", "sub/model.safetensors": b"\0" * 5000}
    await _seed(store, files, files)
    manifest = await fetch_model(store, PREFIX, tmp_path / "model")
    assert manifest.train_job == "train-1"
    assert (tmp_path / "model/sub/model.safetensors").read_bytes() == files["sub/model.safetensors"]


@pytest.mark.parametrize(
    ("stored", "message"),
    [
        ({"config.json": b"{!}"}, "its sha256 does not match"),  # same size, other bytes
        ({"config.json": b"{}\n"}, "has 3 bytes, the manifest says 2"),
    ],
)
async def test_a_file_that_does_not_match_is_refused(
    tmp_path: Path, stored: dict[str, bytes], message: str
) -> None:
    store = _store(tmp_path)
    await _seed(store, stored, {"config.json": b"{}" if "bytes" in message else b"{}}"})
    with pytest.raises(ModelFilesError, match=message):
        await fetch_model(store, PREFIX, tmp_path / "model")


async def test_no_manifest_or_a_bad_one_is_refused(tmp_path: Path) -> None:
    store = _store(tmp_path)
    with pytest.raises(ModelFilesError, match=r"no model\.json"):
        await fetch_model(store, PREFIX, tmp_path / "model")
    await store.put_bytes(PREFIX + MANIFEST_NAME, b'{"files": [{"name": "../x"}]}', "text/plain")
    with pytest.raises(ModelFilesError, match="unsafe file name"):
        await fetch_model(store, PREFIX, tmp_path / "model")
