"""A JSON-schema error in a qna.yaml, in words: where it is ("`answer` in seed example 4") and
how to fix it, followed by the taxonomy CI's own line (pure)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from instruct_lab_bot.core.messages.validation import kind_of, sentence, shorten, yaml_scalar

JsonPath = Sequence[Any]  # a JSON path into the document: keys and list indexes

TITLE_SCHEMA = "Does not match the schema"
TITLE_MISSING_VALUE = "Missing value"
TITLE_WRONG_TYPE = "Wrong kind of value"
TITLE_EMPTY_VALUE = "Empty value"
TITLE_WRONG_VERSION = "Wrong version"
TITLE_MISSING_VERSION = "Missing version"

TITLE_TOO_FEW = {
    "seed_examples": "Too few seed examples",
    "questions_and_answers": "Too few questions and answers",
}
TITLE_TOO_FEW_OTHER = "Too few items"
TITLE_DUPLICATE = {
    "seed_examples": "Duplicate seed example",
    "questions_and_answers": "Duplicate question and answer",
}
TITLE_DUPLICATE_OTHER = "Duplicate entry"
ITEM_NAMES = {
    "seed_examples": "seed example",
    "questions_and_answers": "question-and-answer pair",
    "patterns": "pattern",
}
EXPECTED = {
    "string": "text",
    "array": "a list (lines starting with `- `)",
    "object": "a set of `key: value` lines",
    "integer": "a whole number",
}


def title_missing(key: object) -> str:
    return f"Missing {_show(key)}"


def title_unexpected(key: object) -> str:
    return f"Unexpected key {_show(key)}"


def msg_missing_key(key: object, at: JsonPath, description: str, near: str | None) -> str:
    text = f"`{_show(key)}` is missing {_in(at)}."
    if description:
        text += f" It holds: {description}"
    if near:
        text += f" The file has `{_show(near)}`: rename it to `{_show(key)}`."
    return text


def msg_missing_version(highest: int) -> str:
    return (
        f"The file has no `version:` line. Add `version: {highest}` at the top: CI checks "
        "every new or changed file against the newest schema."
    )


def msg_unexpected_key(
    key: object, at: JsonPath, near: str | None, allowed: Iterable[str], *, old_knowledge: bool
) -> str:
    text = f"`{_show(key)}` is not a key the schema allows {_in(at)}."
    if near:
        text += f" Did you mean `{near}`?"
    text += f" Allowed here: {', '.join(f'`{k}`' for k in sorted(allowed))}."
    if old_knowledge:
        text += " Knowledge files use `domain` and `document_outline` since version 3."
    return text


def msg_duplicate(at: JsonPath, first: int | None, second: int | None) -> str:
    if first is None or second is None:
        return sentence(f"{_describe(at)} has two identical entries; each must be different.")
    repeat = _describe((*at, second))
    return sentence(f"{repeat} is the same as {_item_name(at, first)}: each must be different.")


def msg_too_few(at: JsonPath, have: int, minimum: int) -> str:
    name = str(at[-1]) if at else "list"
    if name == "seed_examples":
        text = f"`seed_examples` has {have}; at least {minimum} are needed."
    elif name == "questions_and_answers":
        text = (
            f"{sentence(_describe(at[:-1]))} has {have} question-and-answer pairs; each "
            f"knowledge seed example needs at least {minimum}."
        )
    else:
        text = f"{describe_field(at)} has {have} items; it needs at least {minimum}."
    return f"{text} Add {minimum - have} more, each different from the others."


def msg_wrong_version(have: object, want: object, kind: str, old_description: str) -> str:
    shown = f'"{_show(have)}"' if isinstance(have, str) else yaml_scalar(have)
    text = (
        f"This file says `version: {shown}`, but new and changed taxonomy files must say "
        f"`version: {want}` (CI checks them against the newest schema)."
    )
    if kind == "knowledge" and old_description:
        text += (
            f" {old_description} Version {want} knowledge files have `domain`, "
            "`document_outline`, `document` and seed examples made of a `context` with at "
            "least 3 `questions_and_answers`."
        )
    elif kind == "compositional_skills":
        text += " (The taxonomy README's skill example still says 2: that is out of date.)"
    return text


def msg_missing_value(at: JsonPath, expected: str) -> str:
    need = EXPECTED.get(expected, expected)
    return f"{describe_field(at)} has no value; it must be {need}. Write it after the colon."


def msg_version_not_number(highest: int) -> str:
    return f"`version` must be the number {highest}, without quotes."


def msg_wrong_type(at: JsonPath, expected: str, value: object) -> str:
    need = EXPECTED.get(expected, expected)
    text = f"{describe_field(at)} must be {need}, but it is {kind_of(value)}."
    if expected == "string" and isinstance(value, bool | int | float):
        text += f' Put it in quotes: "{yaml_scalar(value)}".'
    elif expected == "string" and not isinstance(value, list | Mapping):
        text += " Put it in quotes to keep it as text."
    elif expected == "object" and at and isinstance(at[-1], int):
        text += " Each entry starts with `- ` followed by `key: value` lines."
    return text


def msg_empty_value(at: JsonPath) -> str:
    return f"{describe_field(at)} is empty. (A `|` with nothing indented under it is empty text.)"


def msg_schema_other(at: JsonPath, message: str) -> str:
    return f"In {_describe(at)}: {message}"


def msg_ci(yaml_path: str, ci_message: str) -> str:
    return f"Taxonomy CI: [{yaml_path}] {ci_message}"


def _item_name(at: JsonPath, index: int) -> str:
    parent = str(at[-1]) if at else ""
    name = ITEM_NAMES.get(parent, f"item of `{_show(parent)}`" if parent else "item")
    return f"{name} {index + 1}"


def _describe(at: JsonPath) -> str:
    """Words for a location: "seed example 4, question-and-answer pair 2", "`document`"."""
    parts: list[str] = []
    for i, step in enumerate(at):
        if isinstance(step, int):
            parts.append(_item_name(at[:i], step))
        elif i + 1 >= len(at) or not isinstance(at[i + 1], int):
            parts.append(f"`{_show(step)}`")
    return ", ".join(parts) or "the top level of the file"


def describe_field(at: JsonPath) -> str:
    """Words for the value at a path: "`answer` in seed example 4", "`created_by`"."""
    if not at or not isinstance(at[-1], str):
        return sentence(_describe(at))
    name = f"`{_show(at[-1])}`"
    return f"{name} in {_describe(at[:-1])}" if len(at) > 1 else name


def _in(at: JsonPath) -> str:
    return "at the top level of the file" if not at else f"in {_describe(at)}"


def _show(value: object) -> str:
    """A key or value from the file, short enough to quote in a title or message."""
    return shorten(str(value), 80).replace("\n", " ")
