"""Reading what `ilab data generate` wrote: sample counts and a preview (no network I/O).

Files are streamed, never loaded whole unless they are the single-JSON `generated_*.json`
(bounded by `MAX_JSON_BYTES`), so a huge output cannot exhaust the worker's memory.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAX_JSON_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class OutputSummary:
    generated: int | None
    samples: tuple[tuple[str, str], ...]
    files: tuple[Path, ...]


def list_files(out_dir: Path) -> list[Path]:
    """Regular files under `out_dir`, sorted; symlinks are skipped (never follow them out)."""
    return sorted(p for p in out_dir.rglob("*") if p.is_file() and not p.is_symlink())


def _pair(record: Any) -> tuple[str, str] | None:
    """A (question, answer) from any record shape ilab has written over its versions."""
    if not isinstance(record, dict):
        return None
    messages = record.get("messages")
    if isinstance(messages, list):
        user = next(
            (m.get("content") for m in messages if isinstance(m, dict) and m.get("role") == "user"),
            None,
        )
        bot = next(
            (
                m.get("content")
                for m in messages
                if isinstance(m, dict) and m.get("role") == "assistant"
            ),
            None,
        )
        if isinstance(user, str) and isinstance(bot, str):
            return user, bot
    for q_key, a_key in (
        ("user", "assistant"),
        ("instruction", "output"),
        ("question", "response"),
    ):
        question, answer = record.get(q_key), record.get(a_key)
        if isinstance(question, str) and isinstance(answer, str):
            context = record.get("input")
            if q_key == "instruction" and isinstance(context, str) and context.strip():
                question = f"{question}\n\n{context}"
            return question, answer
    return None


def _jsonl(path: Path) -> Iterator[Any]:
    with path.open("rb") as handle:
        for raw in handle:
            raw = raw.strip()
            if not raw:
                continue
            try:
                yield json.loads(raw)
            except json.JSONDecodeError:
                yield None


def summarize(out_dir: Path, preview: int = 5) -> OutputSummary:
    """Counts generated samples and takes the first `preview` Q/A pairs."""
    files = list_files(out_dir)
    generated: int | None = None
    samples: list[tuple[str, str]] = []
    by_prefix = {
        prefix: [f for f in files if f.name.startswith(prefix)]
        for prefix in ("generated_", "messages_", "train_", "test_")
    }
    for path in by_prefix["generated_"]:
        if path.suffix == ".json" and path.stat().st_size <= MAX_JSON_BYTES:
            try:
                data = json.loads(path.read_bytes())
            except (json.JSONDecodeError, UnicodeDecodeError):
                continue
            if isinstance(data, list):
                generated = (generated or 0) + len(data)
                samples += [p for p in map(_pair, data[: preview * 2]) if p]
    for prefix in ("messages_", "train_"):
        for path in by_prefix[prefix]:
            if path.suffix != ".jsonl":
                continue
            count = 0
            for record in _jsonl(path):
                count += 1
                if len(samples) < preview and (pair := _pair(record)):
                    samples.append(pair)
            if generated is None:
                generated = count
        if generated is not None and samples:
            break
    return OutputSummary(generated, tuple(samples[:preview]), tuple(files))
