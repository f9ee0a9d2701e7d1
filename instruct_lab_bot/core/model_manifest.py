"""A trained model's manifest, `model.json` (pure): what was trained, from what, and its files.

It is written beside the model's files under the train job's artifact prefix (`MODEL_DIR`),
and is what every later step trusts: `test`, `serve` and a reviewer's download verify each file
against its size and sha256 before using it.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

#: Where a train job's final model lives, under the job's artifact prefix.
MODEL_DIR = "model/"
#: Intermediate checkpoints, under the job's artifact prefix (a taken-over job resumes from them).
CHECKPOINTS_DIR = "checkpoints/"
MANIFEST_NAME = "model.json"
MANIFEST_VERSION = 1
_SHA256 = re.compile(r"[0-9a-f]{64}")
_MAX_FILES = 1000


class ManifestError(ValueError):
    """A manifest that cannot be trusted (malformed, or a file's name/size/checksum is bad)."""


@dataclass(frozen=True)
class ModelFile:
    """One file of the model, relative to `MODEL_DIR`."""

    name: str
    size: int
    sha256: str


@dataclass(frozen=True)
class ModelManifest:
    """`model.json`: the facts a reviewer and the later steps need about one trained model."""

    train_job: str
    data_job: str  # the generate job whose data it was trained on
    base_model: str
    ilab_version: str
    files: tuple[ModelFile, ...]
    hyperparameters: dict[str, str] = field(default_factory=dict)
    final_loss: float | None = None
    created_at: float = 0.0
    version: int = MANIFEST_VERSION

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def file(self, name: str) -> ModelFile | None:
        return next((f for f in self.files if f.name == name), None)

    def to_json(self) -> str:
        data: dict[str, Any] = {
            "version": self.version,
            "train_job": self.train_job,
            "data_job": self.data_job,
            "base_model": self.base_model,
            "ilab_version": self.ilab_version,
            "hyperparameters": dict(sorted(self.hyperparameters.items())),
            "final_loss": self.final_loss,
            "created_at": self.created_at,
            "files": [{"name": f.name, "size": f.size, "sha256": f.sha256} for f in self.files],
        }
        return json.dumps(data, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes) -> ModelManifest:
        """Parse and check a manifest; anything off raises `ManifestError`."""
        try:
            data = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ManifestError(f"model.json is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ManifestError("model.json is not an object")
        return cls(
            train_job=_text(data, "train_job"),
            data_job=_text(data, "data_job"),
            base_model=_text(data, "base_model"),
            ilab_version=_text(data, "ilab_version"),
            files=_files(data.get("files")),
            hyperparameters={str(k): str(v) for k, v in _mapping(data, "hyperparameters").items()},
            final_loss=_loss(data.get("final_loss")),
            created_at=float(data.get("created_at") or 0.0),
            version=int(data.get("version") or MANIFEST_VERSION),
        )


def safe_file_name(name: str) -> bool:
    """A relative path inside the model folder: no absolute path, `..`, backslash or control."""
    if not name or len(name) > 512 or name.startswith("/") or "\\" in name:
        return False
    if any(ord(ch) < 32 for ch in name):
        return False
    return all(part not in ("", ".", "..") for part in name.split("/"))


def _text(data: dict[str, Any], key: str) -> str:
    value = data.get(key, "")
    if not isinstance(value, str):
        raise ManifestError(f"model.json: {key} is not a string")
    return value


def _mapping(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key) or {}
    if not isinstance(value, dict):
        raise ManifestError(f"model.json: {key} is not an object")
    return value


def _loss(value: object) -> float | None:
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ManifestError("model.json: final_loss is not a number")
    return float(value) if math.isfinite(value) else None


def _files(value: object) -> tuple[ModelFile, ...]:
    if not isinstance(value, list) or not value:
        raise ManifestError("model.json lists no files")
    if len(value) > _MAX_FILES:
        raise ManifestError(f"model.json lists more than {_MAX_FILES} files")
    files = tuple(_file(item) for item in value)
    if len({f.name for f in files}) != len(files):
        raise ManifestError("model.json lists a file twice")
    return files


def _file(item: object) -> ModelFile:
    if not isinstance(item, dict):
        raise ManifestError("model.json: a file entry is not an object")
    name, size, digest = item.get("name"), item.get("size"), item.get("sha256")
    if not isinstance(name, str) or not safe_file_name(name):
        raise ManifestError(f"model.json: unsafe file name {name!r}")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ManifestError(f"model.json: {name}: bad size")
    if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
        raise ManifestError(f"model.json: {name}: bad sha256")
    return ModelFile(name, size, digest)
