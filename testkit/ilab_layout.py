"""The shape of what `ilab data generate` wrote, with run-specific parts normalised.

`make test-real-ilab` records the real ilab's shape into tests/fixtures/ilab_layout/, and
`make test` compares the stand-in's shape with it, so the stand-in cannot drift from the real
file names, folders and record keys unnoticed. Timestamps, checkpoint ids, random folder
suffixes and the model name become placeholders; contents are reduced to each file's record
keys (and the roles of its `messages`), never values.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

_PLACEHOLDERS = (
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d_\d\d_\d\d"), "<ts>"),
    (re.compile(r"\d{4}-\d\d-\d\d_\d{6}"), "<date>"),
    (re.compile(r"data_checkpoint_[0-9a-f]+"), "data_checkpoint_<id>"),
)


def normalise(relative: str, model_stem: str | None = None, leaves: tuple[str, ...] = ()) -> str:
    """A relative path with timestamps, ids, the model name and document folders' random
    suffixes (`documents/<leaf>_<random>/`) replaced by placeholders."""
    if "/.git/" in f"/{relative}":  # a knowledge document's clone: one entry for the lot
        relative = relative[: f"/{relative}".index("/.git/") + 4] + "/"
    for pattern, placeholder in _PLACEHOLDERS:
        relative = pattern.sub(placeholder, relative)
    if model_stem:
        relative = relative.replace(f"_{model_stem}_", "_<model>_")
    parts = relative.split("/")
    for i, part in enumerate(parts[:-1]):
        if i and parts[i - 1] == "documents":
            leaf = next((leaf for leaf in leaves if part.startswith(leaf + "_")), None)
            parts[i] = f"{leaf}_<random>" if leaf else "<random>"
    return "/".join(parts)


def _shape(record: Any) -> Any:
    if not isinstance(record, dict):
        return type(record).__name__
    shape: dict[str, Any] = {"keys": sorted(record)}
    messages = record.get("messages")
    if isinstance(messages, list):
        shape["roles"] = [m.get("role") for m in messages if isinstance(m, dict)]
    return shape


def record_shape(path: Path) -> Any:
    """The first record's keys (jsonl/json), or the top-level keys of a yaml file."""
    if path.suffix == ".jsonl":
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                return _shape(json.loads(line))
        return "empty"
    if path.suffix == ".yaml":
        import yaml

        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        return {"keys": sorted(loaded)} if isinstance(loaded, dict) else "empty"
    return None


def layout(
    out_dir: Path, model_stem: str | None = None, leaves: tuple[str, ...] = ()
) -> dict[str, Any]:
    """{normalised path: record shape} for every file under `out_dir` (sorted)."""
    found: dict[str, Any] = {}
    for path in sorted(p for p in out_dir.rglob("*") if p.is_file()):
        name = normalise(path.relative_to(out_dir).as_posix(), model_stem, leaves)
        shape = None if name.endswith("/") else record_shape(path)
        if name in found and found[name] != shape:
            shape = sorted([found[name], shape], key=json.dumps)
        found[name] = shape
    return dict(sorted(found.items()))
