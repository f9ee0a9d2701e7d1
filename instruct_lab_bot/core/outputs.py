"""Reading what `ilab data generate` wrote (pure, no network I/O): which files are results,
how many samples each file and each taxonomy leaf holds, and a preview spread over the seeds.

Layouts (read from the real instructlab 0.18.4 / 0.26.1 packages and a real 0.26.1 run):

- 0.18.x writes straight into the output folder: `messages_<model>_<ts>.jsonl`,
  `train_<model>_<ts>.jsonl`, `test_<model>_<ts>.jsonl`, `node_datasets_<ts>/<leaf>.jsonl`
  (knowledge leaves: `<leaf>_p07.jsonl`, `<leaf>_p10.jsonl`, `mmlubench_<leaf>.jsonl`,
  `<leaf>_task.yaml`), `{skills,knowledge}_recipe_<ts>.yaml`, `*_train_msgs_<ts>.jsonl`.
- 0.26.x writes the same into a dated folder `<out>/<YYYY-MM-DD_HHMMSS>/`, without the model
  name, plus `preprocessed_<ts>/<leaf>.jsonl`, `generated_<ts>/<leaf>.jsonl` (raw pipeline
  output per leaf) and `documents/`.
- Both keep SDG's batch checkpoints in `<out>/checkpoints/`: internal, never a result.

Files are streamed, never loaded whole (except the 0.17 single-JSON `generated_*.json`, bounded
by `MAX_JSON_BYTES`), so a huge output cannot exhaust the worker's memory.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from instruct_lab_bot.core.output_preview import Count, Sample, pick_samples, sample_from
from instruct_lab_bot.core.validation.yaml_reader import YamlRefused, load_bounded

__all__ = ["Count", "OutputSummary", "Sample", "list_files", "summarize"]

MAX_JSON_BYTES = 64 * 1024 * 1024
#: A recipe lists a few datasets; a larger one is kept without being read.
MAX_RECIPE_BYTES = 1024 * 1024
#: SDG's checkpoint folder directly under the output folder: reused internals, not results.
CHECKPOINTS = "checkpoints"
_DATED = re.compile(r"\d{4}-\d{2}-\d{2}_\d{6}")
_RECIPE = re.compile(r"(skills|knowledge)_recipe_.*\.ya?ml")
_TRAIN_MSGS = re.compile(r"(skills|knowledge)_train_msgs_.*\.jsonl")
#: Per-leaf files in `node_datasets_*` that are not that leaf's generated samples.
_NOT_LEAF = re.compile(r"(mmlubench_.*|.*_p10)\.jsonl")


@dataclass(frozen=True)
class OutputSummary:
    generated: int | None
    samples: tuple[Sample, ...]
    files: tuple[Path, ...]
    per_leaf: tuple[Count, ...] = ()
    per_file: tuple[Count, ...] = ()
    layout: str = ""


def list_files(out_dir: Path) -> list[Path]:
    """Result files under `out_dir`, sorted: regular files only (symlinks are never followed
    out), without SDG's `checkpoints/`, a document clone's `.git/`, and an empty recipe or
    training mix (ilab writes `knowledge_recipe` even for a skills-only PR)."""
    found = sorted(p for p in out_dir.rglob("*") if p.is_file() and not p.is_symlink())
    return [p for p in found if not _internal(p.relative_to(out_dir)) and not _empty_mix(p)]


def _internal(relative: Path) -> bool:
    """SDG's checkpoints, and the git internals of a knowledge document's clone (0.26 copies
    the document repository, `.git` and all, into `preprocessed_*/documents/`)."""
    return CHECKPOINTS in relative.parts[:-1][:2] or ".git" in relative.parts[:-1]


def _empty_mix(path: Path) -> bool:
    """A recipe with no datasets, or a training mix with no records: noise for a reviewer."""
    if _TRAIN_MSGS.fullmatch(path.name):
        return path.stat().st_size == 0 or not any(True for _ in _jsonl(path))
    if not _RECIPE.fullmatch(path.name) or path.stat().st_size > MAX_RECIPE_BYTES:
        return False
    try:
        recipe = load_bounded(path.read_text(encoding="utf-8"), max_bytes=MAX_RECIPE_BYTES)
    except (YamlRefused, UnicodeDecodeError):
        return False
    return isinstance(recipe, dict) and not recipe.get("datasets")


def layout_of(out_dir: Path) -> tuple[str, Path]:
    """Which layout `out_dir` holds ("0.26", "0.18", "0.17" or "") and the folder whose
    files are the run's results (0.26: the newest dated subfolder)."""
    dated = sorted(
        p
        for p in out_dir.iterdir()
        if _DATED.fullmatch(p.name) and p.is_dir() and not p.is_symlink()
    )
    if dated:
        return "0.26", dated[-1]
    if any(out_dir.glob("node_datasets_*")) or any(out_dir.glob("*_train_msgs_*.jsonl")):
        return "0.18", out_dir
    if any(out_dir.glob("generated_*.json")):
        return "0.17", out_dir
    return "", out_dir


def _jsonl(path: Path) -> Iterator[Any]:
    with path.open("rb") as handle:
        for raw in handle:
            raw = raw.strip()
            if not raw:
                continue
            try:
                yield json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                yield None


def count_records(path: Path) -> int:
    """Non-blank lines: one record each (parsed or not), counted without parsing them."""
    with path.open("rb") as handle:
        return sum(1 for raw in handle if raw.strip())


def _own(paths: Iterator[Path]) -> list[Path]:
    """Regular files that are neither symlinks nor in a symlinked folder (a
    pattern like `generated_*/*.jsonl` would follow a symlinked folder out)."""
    return sorted(
        p for p in paths if not p.is_symlink() and not p.parent.is_symlink() and p.is_file()
    )


def leaf_files(root: Path) -> list[tuple[str, Path]]:
    """(leaf, file) for each leaf's generated samples: 0.26's `generated_*/<leaf>.jsonl`,
    else 0.18's `node_datasets_*/<leaf>.jsonl` (a knowledge leaf's `<leaf>_p07.jsonl`)."""
    generated = _own(root.glob("generated_*/*.jsonl"))
    if generated:
        return [(p.stem, p) for p in generated]
    found = []
    for path in _own(root.glob("node_datasets_*/*.jsonl")):
        if _NOT_LEAF.fullmatch(path.name):
            continue
        found.append((path.stem.removesuffix("_p07"), path))
    return found


def _legacy_train_file(root: Path) -> Path | None:
    """The legacy-format `train_*.jsonl` (one record per generated sample), if written."""
    trains = _own(root.glob("train_*.jsonl"))
    return trains[-1] if trains else None


def summarize(out_dir: Path, preview: int = 5) -> OutputSummary:
    """Counts per file and per leaf, the total generated, and `preview` samples spread over
    the leaves and their seed examples."""
    files = list_files(out_dir) if out_dir.is_dir() else []
    if not files:
        return OutputSummary(None, (), ())
    layout, root = layout_of(out_dir)
    if layout == "0.17":
        return _summarize_017(out_dir, files, preview)
    per_file = tuple(
        Count(p.relative_to(out_dir).as_posix(), count_records(p))
        for p in files
        if p.suffix == ".jsonl"
    )
    leaves = leaf_files(root)
    per_leaf = tuple(Count(leaf, count_records(path)) for leaf, path in leaves)
    train = _legacy_train_file(root)
    generated: int | None = None
    if train is not None:
        generated = count_records(train)
    elif per_leaf:
        generated = sum(c.samples for c in per_leaf)
    sources = leaves or ([("", train)] if train is not None else [])
    samples = pick_samples([(leaf, _jsonl(path)) for leaf, path in sources], preview)
    return OutputSummary(generated, samples, tuple(files), per_leaf, per_file, layout)


def _summarize_017(out_dir: Path, files: list[Path], preview: int) -> OutputSummary:
    """The 0.17 stand-in's shape: `generated_*.json` holding one JSON list."""
    generated = 0
    samples: list[Sample] = []
    for path in sorted(out_dir.glob("generated_*.json")):
        if path.stat().st_size > MAX_JSON_BYTES:
            continue
        try:
            data = json.loads(path.read_bytes())
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        if isinstance(data, list):
            generated += len(data)
            samples += [s for s in (sample_from(r, "") for r in data[: preview * 2]) if s]
    return OutputSummary(generated, tuple(samples[:preview]), tuple(files), layout="0.17")
