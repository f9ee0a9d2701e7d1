"""The bot's own notices: the taxonomy README's word limits (the schemas have none and CI does
not check them)."""

import re
from collections.abc import Iterator, Mapping
from typing import Any

from yaml.nodes import Node, ScalarNode

from instruct_lab_bot.core.messages.schema_errors import describe_field
from instruct_lab_bot.core.messages.validation import (
    README_CONTEXT,
    README_QNA,
    README_SKILL_TOTAL,
    TITLE_LENGTH,
    WHAT_SKILL_TOTAL,
    msg_length,
)
from instruct_lab_bot.core.validation.limits import CONTEXT_WORDS, QNA_WORDS, SKILL_TOTAL_WORDS
from instruct_lab_bot.core.validation.problem import Problem, Reporter
from instruct_lab_bot.core.validation.schema import schema_kind
from instruct_lab_bot.core.validation.yaml_reader import locate

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f"
_WORD = re.compile(f"[{_CJK}]|[^\\s{_CJK}]+")


def words(value: object) -> int:
    """Words as the README's limits mean them: by spaces, each CJK character as one word."""
    return len(_WORD.findall(value)) if isinstance(value, str) else 0


def length_notices(reporter: Reporter, root: Node, data: Mapping[Any, Any]) -> Iterator[Problem]:
    """Knowledge: each context and each question and answer; skills: all seed text together."""
    seeds = data.get("seed_examples")
    if not isinstance(seeds, list):
        return
    if schema_kind(reporter.path, data) == "knowledge":
        for i, seed in enumerate(seeds):
            if isinstance(seed, Mapping):
                yield from _knowledge_seed(reporter, root, i, seed)
        return
    total = sum(
        words(seed.get(field))
        for seed in seeds
        if isinstance(seed, Mapping)
        for field in ("context", "question", "answer")
    )
    if total > SKILL_TOTAL_WORDS:
        line = reporter.node_line(locate(root, ("seed_examples",)).key or root)
        message = msg_length(WHAT_SKILL_TOTAL, total, SKILL_TOTAL_WORDS, README_SKILL_TOTAL)
        yield reporter.problem(line, "notice", TITLE_LENGTH, message)


def _knowledge_seed(
    reporter: Reporter, root: Node, index: int, seed: Mapping[Any, Any]
) -> Iterator[Problem]:
    at: tuple[str | int, ...] = ("seed_examples", index, "context")
    yield from _too_long(reporter, root, at, CONTEXT_WORDS, README_CONTEXT)
    pairs = seed.get("questions_and_answers")
    for j in range(len(pairs) if isinstance(pairs, list) else 0):
        for field in ("question", "answer"):
            at = ("seed_examples", index, "questions_and_answers", j, field)
            yield from _too_long(reporter, root, at, QNA_WORDS, README_QNA)


def _too_long(
    reporter: Reporter, root: Node, at: tuple[str | int, ...], limit: int, readme: str
) -> Iterator[Problem]:
    found = locate(root, at)
    if found.node is None or not isinstance(found.node, ScalarNode):
        return
    count = words(found.node.value)
    if count > limit:
        line = reporter.node_line(found.key or found.node)
        message = msg_length(describe_field(at), count, limit, readme)
        yield reporter.problem(line, "notice", TITLE_LENGTH, message)
