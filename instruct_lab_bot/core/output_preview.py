"""The preview of a generate run (pure): samples spread over the taxonomy leaves and over the
seed examples each was generated from, not the first rows of one file.

Memory stays bounded whatever the file size: per seed only a thinned, evenly spaced set of rows
is kept while streaming, and the number of seed groups is capped.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

#: Seed groups kept per leaf; later seeds (a hostile file could have millions) are ignored.
MAX_SEEDS = 200
#: Keys where SDG records the seed example a generated sample came from.
_SEED_KEYS = ("seed_question", "icl_query_1")
_PAIR_KEYS = (("question", "response"), ("user", "assistant"), ("instruction", "output"))


@dataclass(frozen=True)
class Count:
    """Samples in one file or one taxonomy leaf."""

    name: str
    samples: int


@dataclass(frozen=True)
class Sample:
    """One generated question/answer, with the leaf and seed question it came from."""

    question: str
    answer: str
    seed_question: str = ""
    leaf: str = ""


def _from_messages(messages: Any) -> tuple[str, str] | None:
    if not isinstance(messages, list):
        return None
    by_role: dict[str, str] = {}
    for message in messages:
        if isinstance(message, dict) and isinstance(message.get("content"), str):
            by_role.setdefault(str(message.get("role")), message["content"])
    if "user" in by_role and "assistant" in by_role:
        return by_role["user"], by_role["assistant"]
    return None


def _split_output(output: Any) -> tuple[str, str] | None:
    """The simple pipeline's raw completion, split as SDG does: the question up to and
    including the first `?`, the answer after it."""
    if not isinstance(output, str) or "?" not in output:
        return None
    question, answer = output.split("?", 1)
    return question.strip() + "?", answer.strip()


def sample_from(record: Any, leaf: str) -> Sample | None:
    """A sample from any record shape ilab has written over its versions, or None."""
    if not isinstance(record, dict):
        return None
    pair = _from_messages(record.get("messages"))
    for q_key, a_key in _PAIR_KEYS:
        if pair is not None:
            break
        question, answer = record.get(q_key), record.get(a_key)
        if isinstance(question, str) and isinstance(answer, str):
            context = record.get("input")
            if q_key == "instruction" and isinstance(context, str) and context.strip():
                question = f"{question}\n\n{context}"
            pair = question, answer
    if pair is None:
        pair = _split_output(record.get("output"))
    if pair is None:
        return None
    seed = next((record[k] for k in _SEED_KEYS if isinstance(record.get(k), str)), "")
    return Sample(pair[0], pair[1], seed, leaf)


class _Spread:
    """Evenly spaced rows of a stream of unknown length: keeps every `stride`-th row and
    doubles the stride (dropping every other kept row) when more than `2 * size` are kept."""

    def __init__(self, size: int) -> None:
        self.size = max(1, size)
        self.stride = 1
        self.seen = 0
        self.kept: list[Sample] = []

    def add(self, sample: Sample) -> None:
        if self.seen % self.stride == 0:
            self.kept.append(sample)
            if len(self.kept) > 2 * self.size:
                self.kept = self.kept[::2]
                self.stride *= 2
        self.seen += 1

    def spread(self) -> list[Sample]:
        step = max(1, len(self.kept) // self.size)
        return self.kept[::step][: self.size]


def _by_seed(leaf: str, records: Iterable[Any], preview: int) -> list[list[Sample]]:
    groups: dict[str, _Spread] = {}
    for record in records:
        sample = sample_from(record, leaf)
        if sample is None:
            continue
        group = groups.get(sample.seed_question)
        if group is None:
            if len(groups) >= MAX_SEEDS:
                continue
            group = groups[sample.seed_question] = _Spread(preview)
        group.add(sample)
    return [group.spread() for group in groups.values()]


def pick_samples(sources: Sequence[tuple[str, Iterable[Any]]], preview: int) -> tuple[Sample, ...]:
    """`preview` samples taken round-robin: each leaf's first seed, then each leaf's second
    seed, ..., then the second sample of each seed, so every seed shows before any repeats.
    With more seeds than `preview`, the first round is thinned evenly (not its head)."""
    per_leaf = [_by_seed(leaf, records, preview) for leaf, records in sources]
    picked: list[Sample] = []
    for depth in range(preview):
        widest = max((len(groups) for groups in per_leaf), default=0)
        round_ = [
            groups[seed][depth]
            for seed in range(widest)
            for groups in per_leaf
            if seed < len(groups) and depth < len(groups[seed])
        ]
        wanted = preview - len(picked)
        if len(round_) > wanted:
            round_ = [round_[i * len(round_) // wanted] for i in range(wanted)]
        picked += round_
        if len(picked) >= preview:
            break
    return tuple(picked)
