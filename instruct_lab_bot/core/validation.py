"""Check changed taxonomy files the way the taxonomy's CI does, with a file and line per problem.

The taxonomy repository's CI (`scripts/check-yaml.py` calling `instructlab.schema.taxonomy.
TaxonomyParser`) decides whether a `qna.yaml` is acceptable. The parser cannot serve the bot as
it is: it reads files from disk, prints what it finds, shells out to `yamllint` and, once per
schema error, to mikefarah's `yq` for a line number (line 1 without it), and raises on a YAML
syntax error. So this module runs the same steps in the same order, in process, on text passed
in: the file name, a safe YAML load, empty / non-mapping documents, the schema version (changed
files against the newest, as CI does), yamllint with the package's configuration, JSON-schema
validation with the package's own schema files, and `check-yaml.py`'s `attribution.txt` rule.
Every finding becomes a `Problem` at the line of the offending key or value.

Pure and synchronous: no network, no files, no subprocess. Hostile input (huge files, deep
nesting, alias bombs, recursive aliases, control characters, bad UTF-8) is capped before it can
cost memory or time; the worst case is a few seconds of CPU, so async callers should run
`validate_file` in a thread (`asyncio.to_thread`).
"""

import difflib
import functools
import itertools
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, Literal, NoReturn, TypeVar

import yaml
from instructlab.schema import schema_base, schema_versions
from instructlab.schema.taxonomy import DEFAULT_TAXONOMY_FOLDERS, DEFAULT_YAMLLINT_CONFIG
from jsonschema import ValidationError
from jsonschema.validators import Draft202012Validator, extend, validator_for
from referencing import Registry, Resource
from referencing.exceptions import NoSuchResource
from referencing.jsonschema import DRAFT202012
from yaml.constructor import ConstructorError
from yaml.error import Mark, MarkedYAMLError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.reader import ReaderError
from yaml.tokens import AliasToken

Level = Literal["failure", "warning", "notice"]
T = TypeVar("T")

# =============================================================================================
# USER-FACING TEXT: every title and message a contributor reads. Kept together, above the
# logic, so it can move into messages.py as a block. Messages are plain text (GitHub shows
# annotation messages verbatim); summary() escapes what it puts into Markdown.
# =============================================================================================

TITLE_NAME = "File must be named qna.yaml"
TITLE_OUTSIDE = "Not in a taxonomy folder"
TITLE_TOO_LARGE = "File too large"
TITLE_NOT_UTF8 = "Not UTF-8 text"
TITLE_SYNTAX = "YAML syntax error"
TITLE_NESTING = "YAML nested too deeply"
TITLE_ALIASES = "YAML aliases expand too much"
TITLE_RECURSIVE = "Recursive YAML alias"
TITLE_EMPTY = "Empty file"
TITLE_NOT_MAPPING = "Not a set of keys"
TITLE_UNKNOWN_VERSION = "Unknown version"
TITLE_UNSUPPORTED = "Unsupported version"
TITLE_ATTRIBUTION_MISSING = "attribution.txt missing"
TITLE_ATTRIBUTION_EMPTY = "attribution.txt empty"
TITLE_ATTRIBUTION_BLANK = "attribution.txt blank"
TITLE_LENGTH = "Longer than the README suggests"
TITLE_MORE = "More problems not shown"
TITLE_INTERNAL = "Could not check this file"
TITLE_SCHEMA = "Does not match the schema"
TITLE_MISSING_VALUE = "Missing value"
TITLE_WRONG_TYPE = "Wrong kind of value"
TITLE_EMPTY_VALUE = "Empty value"
TITLE_WRONG_VERSION = "Wrong version"
TITLE_MISSING_VERSION = "Missing version"

LINT_TITLES = {
    "trailing-spaces": "Trailing spaces",
    "new-line-at-end-of-file": "No newline at end of file",
    "key-duplicates": "Duplicate key",
    "empty-lines": "Extra blank lines",
    "indentation": "Inconsistent indentation",
    "new-lines": "Wrong line endings",
    "hyphens": "Spacing after a hyphen",
    "colons": "Spacing around a colon",
    "commas": "Spacing around a comma",
    "brackets": "Spacing inside brackets",
    "braces": "Spacing inside braces",
    "anchors": "YAML anchor problem",
}
LINT_HINTS = {
    "trailing-spaces": "Delete the spaces or tabs at the end of this line (many editors can trim "
    "trailing whitespace on save).",
    "new-line-at-end-of-file": "End the last line with a line break.",
    "key-duplicates": "YAML keeps only the last of two equal keys, so the earlier value is "
    "silently lost: remove or rename one of them.",
    "empty-lines": "Remove the extra blank lines.",
    "indentation": "Indent lists the same way everywhere in the file.",
}

SYNTAX_HINTS = (
    (
        "'\\t'",
        "YAML does not allow tabs for indentation: indent with spaces (tabs are fine "
        "inside `|` text blocks).",
    ),
    (
        "could not find expected ':'",
        "A line among `key: value` lines is not one: a key may be "
        "missing the space after its colon (`seed_examples:` with the items on the next lines), or "
        "a text needs a `|` block or quotes.",
    ),
    (
        "mapping values are not allowed",
        "A value contains `: ` (colon and space): put the whole "
        "value in quotes or write it as a `|` block.",
    ),
    (
        "expected <block end>",
        "The indentation does not line up: keys at the same level must start in the same column.",
    ),
    (
        "single document",
        "The file holds a second YAML document: remove the `---` line in the middle of the file.",
    ),
    ("anchor", "Remove the `&name` / `*name` markers, or give every anchor a unique name."),
    ("alias", "A `*name` alias refers to an anchor `&name` that is not defined above it."),
    (
        "special characters",
        "The file contains a control character that YAML does not allow: delete it.",
    ),
    ("end of stream", "A quote or bracket is not closed."),
    ("could not read this value", "Quote the value to keep it as text."),
)


def syntax_bad_character(code: int, reason: str) -> str:
    return f"unacceptable character #x{code:04x}: {reason}"  # PyYAML's own words


def syntax_unreadable(error: str) -> str:
    return f"could not read this value ({_cut(error, 100)})"


def title_lint(rule: str) -> str:
    return LINT_TITLES.get(rule, f"YAML lint: {rule}")


def msg_deprecated(description: object, kind: str, version: int) -> str:
    """The schema's own words for a refused version, as the parser prints them."""
    return str(description or f"{kind} schema version {version} is deprecated")


SYNTAX_DEFAULT_HINT = "Check the indentation and the quoting around this line."
SYNTAX_CI_NOTE = "The taxonomy CI stops with an error on this file (TaxonomyReadingException)."


def msg_name(name: str) -> str:
    return (
        f'Taxonomy files must be named "qna.yaml"; "{name}" is not a valid name. Rename it: '
        "the taxonomy CI rejects other names and `ilab` does not read them as seed data."
    )


def msg_outside(folders: Sequence[str]) -> str:
    where = " or ".join(f"{f}/" for f in folders)
    return (
        f"This qna.yaml is not under {where}, so neither the taxonomy CI nor `ilab` reads it. "
        "Move it into the right folder if it is meant as a contribution."
    )


def msg_too_large(size: int, limit: int) -> str:
    return (
        f"The file is {size:,} bytes; the bot checks files up to {limit:,} bytes. Seed files "
        "are small (a few kilobytes): keep only the seed examples."
    )


def msg_not_utf8(byte: int, column: int) -> str:
    return (
        f"The file is not UTF-8 text: byte 0x{byte:02x} at column {column} cannot be read. "
        "Save the file with UTF-8 encoding."
    )


def msg_syntax(problem: str, column: int) -> str:
    hint = next((h for key, h in SYNTAX_HINTS if key in problem), SYNTAX_DEFAULT_HINT)
    return f"The file is not valid YAML: {problem} (column {column}). {hint}\n{SYNTAX_CI_NOTE}"


def msg_nesting(limit: int) -> str:
    return (
        f"The YAML is nested more than {limit} levels deep; a qna.yaml needs about 6. "
        "Check the indentation."
    )


def msg_aliases() -> str:
    return (
        "The YAML anchors (`&name`) and aliases (`*name`) in this file expand to far more data "
        "than the file holds. Write the seed examples out instead of using aliases."
    )


def msg_recursive() -> str:
    return (
        "A YAML alias (`*name`) refers to the block that contains it, which makes the data "
        "infinitely deep. Remove the alias."
    )


def msg_empty(has_text: bool) -> str:
    what = "holds no data" if has_text else "is empty"
    return (
        f"The file {what}. The taxonomy CI only warns about this, but there is nothing to "
        "generate from: add the keys of a skill or knowledge contribution."
    )


def msg_not_mapping(kind: str) -> str:
    return (
        f"The file is {kind}, but it must be a set of `key: value` lines such as `version: 3`, "
        "`created_by:` and `seed_examples:`. (Taxonomy CI: The file is not valid. The top-level "
        "element is not an object with key-value pairs.)"
    )


def msg_unknown_version(version: object, highest: int) -> str:
    return f"There is no schema version {version!r}. Use `version: {highest}`."


def msg_attribution_missing(qna_dir: str) -> str:
    return (
        f"There is no attribution.txt next to this qna.yaml (in {qna_dir}/). Add one that names "
        "the sources of the seed examples: title of work, link, licence, creator names. "
        '(Taxonomy CI: The "attribution.txt" file does not exist or is not a file.)'
    )


def msg_attribution_empty() -> str:
    return (
        "attribution.txt next to this qna.yaml is empty. Fill in the title of work, link, "
        'licence and creator names. (Taxonomy CI: The "attribution.txt" file must be non-empty.)'
    )


def msg_attribution_blank() -> str:
    return (
        "attribution.txt next to this qna.yaml holds only spaces or blank lines. The taxonomy CI "
        "accepts it, but reviewers need the title of work, link, licence and creator names."
    )


def msg_more(count: int, step: str, *, at_least: bool) -> str:
    many = f"At least {count}" if at_least else str(count)
    return f"{many} more {step} problems in this file are not shown. Fix the ones above first."


def msg_internal(error: BaseException) -> str:
    return (
        f"The bot could not check this file ({type(error).__name__}). "
        "Please report this to the bot's maintainers."
    )


def msg_length(what: str, words: int, limit: int, readme: str) -> str:
    return (
        f"{what} has about {words:,} words; the taxonomy README asks for at most {limit:,} "
        f'("{readme}"). This is guidance only: the schema has no length limit and CI does not '
        "check it. Words are counted by spaces, each Chinese or Japanese character as one word."
    )


README_SKILL_TOTAL = (
    "only add a maximum of around 2300 words to your question and answer seed example pairs"
)
README_CONTEXT = "a maximum word count of 500 words"
README_QNA = "a maximum word count of 250 words"


def msg_ci(yaml_path: str, ci_message: str) -> str:
    return f"Taxonomy CI: [{yaml_path}] {ci_message}"


# -- schema errors ---------------------------------------------------------------------------

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
JsonPath = Sequence[Any]  # a JSON path into the document: keys and list indexes


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
        return _sentence(f"{_describe(at)} has two identical entries; each must be different.")
    repeat = _describe((*at, second))
    return _sentence(f"{repeat} is the same as {_item_name(at, first)}: each must be different.")


def msg_too_few(at: JsonPath, have: int, minimum: int) -> str:
    name = str(at[-1]) if at else "list"
    if name == "seed_examples":
        text = f"`seed_examples` has {have}; at least {minimum} are needed."
    elif name == "questions_and_answers":
        text = (
            f"{_sentence(_describe(at[:-1]))} has {have} question-and-answer pairs; each "
            f"knowledge seed example needs at least {minimum}."
        )
    else:
        text = f"{_field(at)} has {have} items; it needs at least {minimum}."
    return f"{text} Add {minimum - have} more, each different from the others."


def msg_wrong_version(have: object, want: object, kind: str, old_description: str) -> str:
    shown = f'"{_show(have)}"' if isinstance(have, str) else _yaml_scalar(have)
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
    return f"{_field(at)} has no value; it must be {need}. Write it after the colon."


def msg_version_not_number(highest: int) -> str:
    return f"`version` must be the number {highest}, without quotes."


def msg_wrong_type(at: JsonPath, expected: str, value: object) -> str:
    text = f"{_field(at)} must be {EXPECTED.get(expected, expected)}, but it is {_kind_of(value)}."
    if expected == "string" and isinstance(value, bool | int | float):
        text += f' Put it in quotes: "{_yaml_scalar(value)}".'
    elif expected == "string" and not isinstance(value, list | Mapping):
        text += " Put it in quotes to keep it as text."
    elif expected == "object" and at and isinstance(at[-1], int):
        text += " Each entry starts with `- ` followed by `key: value` lines."
    return text


def msg_empty_value(at: JsonPath) -> str:
    return f"{_field(at)} is empty. (A `|` with nothing indented under it is empty text.)"


def msg_schema_other(at: JsonPath, message: str) -> str:
    return f"In {_describe(at)}: {message}"


def msg_lint(description: str, rule: str) -> str:
    hint = LINT_HINTS.get(rule, "")
    return f"{_sentence(description)}. {hint}".strip()


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


def _field(at: JsonPath) -> str:
    """Words for the value at a path: "`answer` in seed example 4", "`created_by`"."""
    if not at or not isinstance(at[-1], str):
        return _sentence(_describe(at))
    name = f"`{_show(at[-1])}`"
    return f"{name} in {_describe(at[:-1])}" if len(at) > 1 else name


def _in(at: JsonPath) -> str:
    return "at the top level of the file" if not at else f"in {_describe(at)}"


def _show(value: object) -> str:
    """A key or value from the file, short enough to quote in a title or message."""
    return _cut(str(value), 80).replace("\n", " ")


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def _kind_of(value: object) -> str:
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return f"read as true/false ({str(value).lower()}); YAML reads yes/no/on/off that way"
    if isinstance(value, int | float):
        return f"read as a number ({_yaml_scalar(value)})"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "a set of keys"
    return f"of YAML type {type(value).__name__} ({_cut(str(value), 40)})"


def _yaml_scalar(value: object) -> str:
    return _cut(str(value).lower() if isinstance(value, bool) else str(value), 40)


# -- check-run summary -------------------------------------------------------------------------

SUMMARY_OK_TITLE = "No problems in the changed taxonomy files"
SUMMARY_NO_FILES = "No taxonomy files changed in this pull request."
SUMMARY_BLOCKS = (
    "Failures must be fixed before `generate` or `precheck` can run; each one is also shown "
    "as an annotation on its line in the Files changed tab."
)
SUMMARY_MORE = "…and {count} more: see the annotations."
SUMMARY_HEAD = "**{title}** ({files} checked)."
SUMMARY_CLEAN = "- ✅ `{path}`: no problems"
SUMMARY_FILE = "\n#### `{path}`\n\n| Line | Level | Problem |\n|---:|---|---|"
LEVEL_LABELS: dict[str, str] = {
    "failure": "❌ failure",
    "warning": "⚠️ warning",
    "notice": "ℹ️ notice",
}


def summary_title(failures: int, warnings: int, notices: int, files: int) -> str:
    if failures:
        extra = f", {_plural(warnings, 'warning')}" if warnings else ""
        return f"{_plural(failures, 'problem')} to fix in {_plural(files, 'file')}{extra}"
    if warnings or notices:
        parts = [_plural(n, w) for n, w in ((warnings, "warning"), (notices, "notice")) if n]
        return f"Valid, with {' and '.join(parts)}"
    return SUMMARY_OK_TITLE


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


# ======================================= END OF USER-FACING TEXT ==============================

# =============================================================================================
# Problems and limits
# =============================================================================================


@dataclass(frozen=True)
class Problem:
    """One finding, placed where a contributor would fix it."""

    path: str  # repo-relative, e.g. compositional_skills/x/y/qna.yaml
    line: int  # 1-based line of the offending key/value (1 if unknown)
    end_line: int
    level: Level  # GitHub annotation_level
    message: str  # what is wrong and how to fix it, plain text
    title: str  # short, e.g. "Too few seed examples"


QNA_NAME = "qna.yaml"
ATTRIBUTION_NAME = "attribution.txt"
TAXONOMY_FOLDERS: tuple[str, ...] = tuple(DEFAULT_TAXONOMY_FOLDERS)
YAML_SUFFIXES = (".yaml", ".yml")

MAX_FILE_BYTES = 256 * 1024  # real qna.yaml files are 1-25 KB; bounds the worst case to ~1.5 s
MAX_DEPTH = 32  # a qna.yaml is 6 levels deep; bounds every recursion below
MAX_NODES = 100_000  # expanded through aliases
MAX_CHARS = 4 * MAX_FILE_BYTES  # scalar text, expanded through aliases
MAX_PER_STEP = 50  # problems reported per step (lint, schema, lengths) and file
ANNOTATION_MESSAGE_BYTES = 64 * 1024
ANNOTATION_TITLE_CHARS = 255
ANNOTATIONS_PER_REQUEST = 50
SUMMARY_CHARS = 65_535
SUMMARY_CELL_CHARS = 600
CI_MESSAGE_CHARS = 200  # the parser prints validation_error.message[-200:]

SKILL_TOTAL_WORDS = 2300
CONTEXT_WORDS = 500
QNA_WORDS = 250


# =============================================================================================
# Public API
# =============================================================================================


def taxonomy_files(changed: Iterable[str]) -> list[str]:
    """The files to validate for a PR's changed paths, sorted.

    Like the taxonomy CI (and `ilab`'s diff), every `.yaml`/`.yml` file under
    `compositional_skills/` or `knowledge/` counts, so a misnamed `qna.yml` is reported rather
    than ignored; a `qna.yaml` elsewhere is listed too (it gets a warning: nothing reads it).
    A changed `attribution.txt` brings in its sibling `qna.yaml`, which CI checks it against.
    """
    found: set[str] = set()
    for raw in changed:
        path = PurePosixPath(raw)
        if path.is_absolute() or not path.parts:
            continue
        in_tree = len(path.parts) > 1 and path.parts[0] in TAXONOMY_FOLDERS
        if path.name == QNA_NAME or (in_tree and path.suffix.lower() in YAML_SUFFIXES):
            found.add(str(path))
        elif in_tree and path.name == ATTRIBUTION_NAME:
            found.add(str(path.with_name(QNA_NAME)))
    return sorted(found)


def validate_file(
    path: str,
    text: str | bytes | None,
    *,
    attribution: str | bytes | None,
    schema_version: int | None = None,
) -> list[Problem]:
    """Every problem the taxonomy CI would report for `path`, plus the bot's own notices.

    `text` is the file content (None: deleted or missing, nothing to check: CI skips deleted
    files and an annotation cannot point into a file the head commit lacks). `attribution` is
    the sibling attribution.txt (None: missing). `schema_version` None checks against the
    newest schema like CI does for changed files; 0 uses the file's own `version:` key.
    Never raises.
    """
    if text is None:
        return []
    try:
        return _Check(path, text, attribution, schema_version).run()
    except Exception as error:  # last resort: a finding, never a crashed check run
        return [_problem_at(path, 1, "failure", TITLE_INTERNAL, msg_internal(error))]


def annotations(problems: Sequence[Problem]) -> list[dict[str, object]]:
    """GitHub check-run annotations (`output.annotations` items), within GitHub's limits."""
    return [
        {
            "path": p.path,
            "start_line": max(1, p.line),
            "end_line": max(1, p.line, p.end_line),
            "annotation_level": p.level,
            "message": _cut_bytes(p.message or p.title, ANNOTATION_MESSAGE_BYTES),
            "title": _cut(p.title, ANNOTATION_TITLE_CHARS),
        }
        for p in problems
    ]


def batches(items: Sequence[T], size: int = ANNOTATIONS_PER_REQUEST) -> list[list[T]]:
    """`items` in chunks of `size` (GitHub takes at most 50 annotations per request)."""
    if size < 1:
        raise ValueError("batch size must be at least 1")
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def failed(problems: Iterable[Problem]) -> bool:
    """Whether the problems block GPU commands (any failure; warnings and notices do not)."""
    return any(p.level == "failure" for p in problems)


def summary(problems: Sequence[Problem], *, checked: Sequence[str] = ()) -> tuple[str, str]:
    """(check-run output title, Markdown summary) for all checked files.

    `checked` lists every validated path so files without problems are named too. Everything
    from the PR (paths, titles, messages) is escaped; the summary stays within GitHub's limit.
    """
    counts = {level: sum(p.level == level for p in problems) for level in LEVEL_LABELS}
    failing = len({p.path for p in problems if p.level == "failure"})
    title = summary_title(counts["failure"], counts["warning"], counts["notice"], failing)
    all_files = sorted(set(checked) | {p.path for p in problems})
    if not all_files:
        return title, SUMMARY_NO_FILES
    lines = [SUMMARY_HEAD.format(title=_escape_md(title), files=_plural(len(all_files), "file"))]
    if counts["failure"]:
        lines.append(f"\n{SUMMARY_BLOCKS}")
    clean = [path for path in all_files if all(p.path != path for p in problems)]
    lines += [SUMMARY_CLEAN.format(path=_escape_code(path)) for path in clean]
    size = sum(len(line) + 1 for line in lines)
    limit = SUMMARY_CHARS - 200  # room for the "and N more" line
    shown = 0
    ordered = sorted(problems, key=lambda p: (p.path, p.line))
    for path, group in itertools.groupby(ordered, key=lambda p: p.path):
        header = SUMMARY_FILE.format(path=_escape_code(path))
        if size + len(header) > limit:
            break
        lines.append(header)
        size += len(header) + 1
        for p in group:
            cell = f"**{_cell(p.title)}**: {_cell(p.message)}"
            row = f"| {p.line} | {LEVEL_LABELS[p.level]} | {cell} |"
            if size + len(row) > limit:
                break
            lines.append(row)
            size += len(row) + 1
            shown += 1
    if shown < len(problems):
        lines.append("\n" + SUMMARY_MORE.format(count=len(problems) - shown))
    return title, _cut("\n".join(lines), SUMMARY_CHARS)


# =============================================================================================
# The checker
# =============================================================================================


class _Stop(Exception):
    """Ends a check early with its problem (as the CI parser returns early)."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.title)
        self.problem = problem


class _Check:
    """One file through CI's steps, in CI's order."""

    def __init__(
        self,
        path: str,
        text: str | bytes,
        attribution: str | bytes | None,
        schema_version: int | None,
    ) -> None:
        self.path = path
        self.raw = text
        self.attribution = attribution
        self.schema_version = schema_version
        self.lines = _Lines("")

    def run(self) -> list[Problem]:
        try:
            return self._steps()
        except _Stop as stop:
            return [stop.problem]

    def _steps(self) -> list[Problem]:
        name = PurePosixPath(self.path).name
        if name != QNA_NAME:
            self._stop(1, TITLE_NAME, msg_name(name))
        parts = PurePosixPath(self.path).parts
        if len(parts) < 2 or parts[0] not in TAXONOMY_FOLDERS:
            return [self.problem(1, "warning", TITLE_OUTSIDE, msg_outside(TAXONOMY_FOLDERS))]
        self.lines = _Lines(self._decode())
        root, data = self._load()
        if not data:
            has_text = root is not None
            return [self.problem(1, "warning", TITLE_EMPTY, msg_empty(has_text))]
        if not isinstance(data, Mapping):
            line = self.node_line(root)
            self._stop(line, TITLE_NOT_MAPPING, msg_not_mapping(_kind_of(data)))
        assert root is not None
        version = self._version(data)
        problems: list[Problem] = []
        if version > 1:  # CI: no linting for version 1
            problems += self._capped(self._lint(), "formatting")
        problems += self._capped(self._schema(root, data, version), "schema")
        problems += self._capped(self._lengths(root, data), "length")
        if version > 1:
            problems += self._attribution()
        return problems

    # -- reading --------------------------------------------------------------------------

    def _decode(self) -> str:
        raw = self.raw
        size = len(raw) if isinstance(raw, bytes) else _utf8_len(raw)
        if size > MAX_FILE_BYTES:
            self._stop(1, TITLE_TOO_LARGE, msg_too_large(size, MAX_FILE_BYTES))
        if isinstance(raw, str):
            return raw
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as error:
            line = raw.count(b"\n", 0, error.start) + 1
            column = error.start - (raw.rfind(b"\n", 0, error.start) + 1) + 1
            bad = raw[error.start]
            self._stop(line, TITLE_NOT_UTF8, msg_not_utf8(bad, column), raw_line=True)

    def _load(self) -> tuple[Node | None, object]:
        """Compose with marks (for lines), measure, then construct as `yaml.safe_load` would."""
        text = self.lines.text
        loader: _Loader | None = None
        try:
            loader = _Loader(text)  # the reader refuses control characters right here
            root = loader.get_single_node()
            if root is not None:
                self._measure(root)
            return root, loader.construct_document(root) if root is not None else None
        except MarkedYAMLError as error:
            mark = _error_mark(error)
            index = mark.index if mark is not None else 0
            column = mark.column + 1 if mark is not None else 1
            problem = "; ".join(filter(None, (error.context, error.problem))) or str(error)
            self._stop(self.lines.line_of(index), TITLE_SYNTAX, msg_syntax(problem, column))
        except ReaderError as error:
            position = int(error.position)
            column = position - (text.rfind("\n", 0, position) + 1) + 1
            problem = syntax_bad_character(int(error.character), str(error.reason))
            self._stop(self.lines.line_of(position), TITLE_SYNTAX, msg_syntax(problem, column))
        except _TooDeep as deep:
            self._stop(self.lines.line_of(deep.index), TITLE_NESTING, msg_nesting(MAX_DEPTH))
        finally:
            if loader is not None:
                loader.dispose()

    def _measure(self, root: Node) -> None:
        """Refuse alias bombs and recursive aliases before anything walks the expanded data."""
        try:
            nodes, chars, depth = _expanded_size(root)
        except _Recursive as recursive:
            line = self.node_line(recursive.node)
            self._stop(line, TITLE_RECURSIVE, msg_recursive())
        if depth > MAX_DEPTH:
            self._stop(self.node_line(root), TITLE_NESTING, msg_nesting(MAX_DEPTH))
        if nodes > MAX_NODES or chars > MAX_CHARS:
            self._stop(self._first_alias_line(root), TITLE_ALIASES, msg_aliases())

    def _version(self, data: Mapping[Any, Any]) -> int:
        """CI's rule: the newest schema unless asked for the file's own `version:` key."""
        highest = _highest_version()
        wanted = highest if self.schema_version is None else self.schema_version
        if wanted >= 1:
            return wanted
        declared = data.get("version", 1)
        if isinstance(declared, int) and not isinstance(declared, bool):
            return declared
        try:
            return int(declared)
        except (ValueError, TypeError, OverflowError):
            return 1

    # -- yamllint ---------------------------------------------------------------------------

    def _lint(self) -> Iterator[Problem]:
        for found in run_yamllint(self.lines.text):
            rule = found.rule or "syntax"
            level: Level = "failure" if found.level == "error" else "warning"
            title = title_lint(rule)
            ci = f"{found.line}:{found.column} {found.desc} ({rule})"
            message = msg_lint(found.desc, rule)
            line = self.lines.from_text_line(int(found.line))
            yield self.problem(line, level, title, f"{message}\nyamllint: {ci}")

    # -- JSON schema ------------------------------------------------------------------------

    def _schema(self, root: Node, data: Mapping[Any, Any], version: int) -> Iterator[Problem]:
        kind = _schema_kind(self.path, data)
        schema = _load_schema(version, kind)
        if schema is None:
            key = _locate(root, ("version",))
            line = self.node_line(key.key or root)
            yield self.problem(
                line,
                "failure",
                TITLE_UNKNOWN_VERSION,
                msg_unknown_version(version, _highest_version()),
            )
            return
        if schema.get("deprecated"):
            key = _locate(root, ("version",))
            message = msg_deprecated(schema.get("description"), kind, version)
            yield self.problem(
                self.node_line(key.key or root), "failure", TITLE_UNSUPPORTED, message
            )
            return
        mapper = _SchemaMessages(self, root, data, kind, version)
        for error in _validator(version, kind).iter_errors(data):
            yield from mapper.problems(error)

    # -- the bot's own notices --------------------------------------------------------------

    def _lengths(self, root: Node, data: Mapping[Any, Any]) -> Iterator[Problem]:
        """README word limits, as notices: the schemas have none and CI does not check them."""
        seeds = data.get("seed_examples")
        if not isinstance(seeds, list):
            return
        if _schema_kind(self.path, data) == "knowledge":
            for i, seed in enumerate(seeds):
                if not isinstance(seed, Mapping):
                    continue
                yield from self._too_long(
                    root, ("seed_examples", i, "context"), CONTEXT_WORDS, README_CONTEXT
                )
                pairs = seed.get("questions_and_answers")
                for j in range(len(pairs) if isinstance(pairs, list) else 0):
                    for field in ("question", "answer"):
                        at = ("seed_examples", i, "questions_and_answers", j, field)
                        yield from self._too_long(root, at, QNA_WORDS, README_QNA)
            return
        total = sum(
            _words(seed.get(field))
            for seed in seeds
            if isinstance(seed, Mapping)
            for field in ("context", "question", "answer")
        )
        if total > SKILL_TOTAL_WORDS:
            line = self.node_line(_locate(root, ("seed_examples",)).key or root)
            what = "The text of all seed examples (context, question and answer)"
            message = msg_length(what, total, SKILL_TOTAL_WORDS, README_SKILL_TOTAL)
            yield self.problem(line, "notice", TITLE_LENGTH, message)

    def _too_long(
        self, root: Node, at: tuple[str | int, ...], limit: int, readme: str
    ) -> Iterator[Problem]:
        found = _locate(root, at)
        if found.node is None or not isinstance(found.node, ScalarNode):
            return
        words = _words(found.node.value)
        if words > limit:
            what = _field(at)
            line = self.node_line(found.key or found.node)
            yield self.problem(line, "notice", TITLE_LENGTH, msg_length(what, words, limit, readme))

    # -- check-yaml.py's attribution rule ---------------------------------------------------

    def _attribution(self) -> list[Problem]:
        """On the qna.yaml's line 1: attribution.txt may not exist, and is often not in the diff."""
        text = self.attribution
        if text is None:
            folder = str(PurePosixPath(self.path).parent)
            return [
                self.problem(
                    1, "failure", TITLE_ATTRIBUTION_MISSING, msg_attribution_missing(folder)
                )
            ]
        if len(text) == 0:
            return [self.problem(1, "failure", TITLE_ATTRIBUTION_EMPTY, msg_attribution_empty())]
        if not text.strip():
            return [self.problem(1, "warning", TITLE_ATTRIBUTION_BLANK, msg_attribution_blank())]
        return []

    # -- helpers ----------------------------------------------------------------------------

    def _capped(self, problems: Iterable[Problem], step: str) -> list[Problem]:
        """At most MAX_PER_STEP problems, then a notice saying how many more there are."""
        found = iter(problems)
        kept = list(itertools.islice(found, MAX_PER_STEP))
        extra = list(itertools.islice(found, 10 * MAX_PER_STEP + 1))
        if not extra:
            return kept
        at_least = len(extra) > 10 * MAX_PER_STEP
        message = msg_more(min(len(extra), 10 * MAX_PER_STEP), step, at_least=at_least)
        return [*kept, self.problem(extra[0].line, "notice", TITLE_MORE, message)]

    def problem(self, line: int, level: Level, title: str, message: str) -> Problem:
        return _problem_at(self.path, self.lines.clamp(line), level, title, message)

    def _stop(self, line: int, title: str, message: str, *, raw_line: bool = False) -> NoReturn:
        clamped = line if raw_line else self.lines.clamp(line)
        raise _Stop(_problem_at(self.path, clamped, "failure", title, message))

    def node_line(self, node: Node | None) -> int:
        if node is None or node.start_mark is None:
            return 1
        return self.lines.line_of(node.start_mark.index)

    def _first_alias_line(self, root: Node) -> int:
        for token in yaml.scan(self.lines.text, Loader=yaml.SafeLoader):
            if isinstance(token, AliasToken):
                return self.lines.line_of(token.start_mark.index)
        return self.node_line(root)


# =============================================================================================
# Schema errors in words
# =============================================================================================


class _SchemaMessages:
    """Turns one jsonschema error into problems at the right line (the wording is above)."""

    def __init__(
        self, check: _Check, root: Node, data: Mapping[Any, Any], kind: str, version: int
    ) -> None:
        self.check = check
        self.root = root
        self.data = data
        self.kind = kind
        self.version = version

    def problems(self, error: ValidationError) -> Iterator[Problem]:
        at = tuple(error.absolute_path)
        found = _locate(self.root, at)
        line = self.check.node_line(found.key or found.node or self.root)
        ci = msg_ci(_yaml_path(at), _ci_message(error))
        keyword = str(error.validator)
        field = at[-1] if at and isinstance(at[-1], str) else None
        value = error.instance
        if keyword == "required":
            yield self._required(error, at, line, ci)
        elif keyword == "unevaluatedProperties":
            yield from self._unexpected(error, at, ci)
        elif keyword == "uniqueItems":
            yield self._duplicate(value, at, found, ci)
        elif keyword == "minItems":
            have = len(value) if isinstance(value, list) else 0
            text = msg_too_few(at, have, int(error.validator_value))
            yield self._fail(line, TITLE_TOO_FEW.get(str(field), TITLE_TOO_FEW_OTHER), text, ci)
        elif keyword == "const" and field == "version":
            yield self._fail(line, TITLE_WRONG_VERSION, self._wrong_version(error), ci)
        elif keyword == "type" and value is None:
            text = msg_missing_value(at, str(error.validator_value))
            yield self._fail(line, TITLE_MISSING_VALUE, text, ci)
        elif keyword == "type" and field == "version":
            yield self._fail(line, TITLE_WRONG_TYPE, msg_version_not_number(_highest_version()), ci)
        elif keyword == "type":
            text = msg_wrong_type(at, str(error.validator_value), value)
            yield self._fail(line, TITLE_WRONG_TYPE, text, ci)
        elif keyword == "minLength":
            yield self._fail(line, TITLE_EMPTY_VALUE, msg_empty_value(at), ci)
        else:
            text = msg_schema_other(at, _cut(error.message, CI_MESSAGE_CHARS))
            yield self._fail(line, TITLE_SCHEMA, text, ci)

    def _fail(self, line: int, title: str, text: str, ci: str) -> Problem:
        return self.check.problem(line, "failure", title, f"{text}\n{ci}")

    def _required(self, error: ValidationError, at: tuple[Any, ...], line: int, ci: str) -> Problem:
        key = _quoted_property(error.message)
        if key == "version":
            return self._fail(
                line, TITLE_MISSING_VERSION, msg_missing_version(_highest_version()), ci
            )
        instance = error.instance if isinstance(error.instance, Mapping) else {}
        near = _near_miss(key, [k for k in instance if isinstance(k, str)])
        text = msg_missing_key(key, at, _property_description(error.schema, key), near)
        return self._fail(line, title_missing(key), text, ci)

    def _unexpected(
        self, error: ValidationError, at: tuple[Any, ...], ci: str
    ) -> Iterator[Problem]:
        """One problem per unexpected key, on the key's own line (CI gives one for all)."""
        instance = error.instance if isinstance(error.instance, Mapping) else {}
        allowed = _allowed_keys(error.schema, self.version)
        for key in instance:
            if key in allowed:
                continue
            found = _locate(self.root, (*at, key))
            line = self.check.node_line(found.key or found.node or self.root)
            near = _near_miss(str(key), sorted(allowed))
            old = at == () and self.kind == "knowledge" and key == "task_description"
            text = msg_unexpected_key(key, at, near, allowed, old_knowledge=old)
            yield self._fail(line, title_unexpected(key), text, ci)

    def _duplicate(self, items: Any, at: tuple[Any, ...], found: "_Found", ci: str) -> Problem:
        """On the line of the repeat, not of the list (CI prints the list's last 200 chars)."""
        first, second = _first_duplicate(items if isinstance(items, list) else [])
        nodes = found.node.value if isinstance(found.node, SequenceNode) else []
        node = nodes[second] if second is not None and second < len(nodes) else None
        line = self.check.node_line(node or found.key or found.node)
        title = TITLE_DUPLICATE.get(str(at[-1]) if at else "", TITLE_DUPLICATE_OTHER)
        return self._fail(line, title, msg_duplicate(at, first, second), ci)

    def _wrong_version(self, error: ValidationError) -> str:
        have = self.data.get("version")
        old = ""
        if isinstance(have, int) and not isinstance(have, bool) and 1 <= have < self.version:
            old = str((_load_schema(have, self.kind) or {}).get("description") or "")
        return msg_wrong_version(have, error.validator_value, self.kind, old)


# =============================================================================================
# YAML: a safe loader with limits, node lookup, line mapping
# =============================================================================================


class _TooDeep(Exception):
    def __init__(self, index: int) -> None:
        super().__init__("nested too deeply")
        self.index = index


class _Recursive(Exception):
    def __init__(self, node: Node) -> None:
        super().__init__("recursive alias")
        self.node = node


class _Loader(yaml.SafeLoader):
    """`yaml.SafeLoader` that stops at MAX_DEPTH (its composer recurses) and turns value
    errors from constructors (bad dates, 5000-digit ints) into marked errors."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _TooDeep(self.peek_event().start_mark.index)  # type: ignore[no-untyped-call]
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_object(self, node: Any, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError, TypeError) as error:
            problem = syntax_unreadable(str(error))
            raise ConstructorError(None, None, problem, node.start_mark) from error


def _error_mark(error: MarkedYAMLError) -> Mark | None:
    """Where to point: where a failed token began (an unclosed quote, a key missing its
    colon), else where the parser gave up."""
    context = error.context or ""
    if context.startswith("while scanning") and error.context_mark is not None:
        return error.context_mark
    return error.problem_mark or error.context_mark


def _children(node: Node) -> list[Node]:
    if isinstance(node, MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, SequenceNode):
        return list(node.value)
    return []


def _expanded_size(root: Node) -> tuple[int, int, int]:
    """(nodes, scalar chars, depth) of the data once aliases are expanded, in linear time and
    without recursion; raises _Recursive for an alias inside its own anchor."""
    cap = MAX_NODES + MAX_CHARS + 1
    done: dict[int, tuple[int, int, int]] = {}
    active: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, leaving = stack.pop()
        key = id(node)
        if leaving:
            kids = [done[id(c)] for c in _children(node)]
            own = len(node.value) if isinstance(node, ScalarNode) else 0
            done[key] = (
                min(cap, 1 + sum(k[0] for k in kids)),
                min(cap, own + sum(k[1] for k in kids)),
                1 + max((k[2] for k in kids), default=0),
            )
            active.discard(key)
            continue
        if key in done:
            continue
        if key in active:
            raise _Recursive(node)
        active.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in reversed(_children(node)))
    return done[id(root)]


@dataclass(frozen=True)
class _Found:
    node: Node | None  # the value at the path (or the deepest one found)
    key: Node | None  # the key node when the path ends at a mapping key


def _locate(root: Node, at: Sequence[Any]) -> _Found:
    """The node at a JSON path, keeping the last of duplicated keys as PyYAML does."""
    node: Node = root
    key: Node | None = None
    for step in at:
        if isinstance(node, MappingNode):
            pairs = [
                (k, v) for k, v in node.value if isinstance(k, ScalarNode) and k.value == str(step)
            ]
            if not pairs:
                return _Found(node, key)
            key, node = pairs[-1]
        elif isinstance(node, SequenceNode) and isinstance(step, int) and step < len(node.value):
            key, node = None, node.value[step]
        else:
            return _Found(node, key)
    return _Found(node, key)


class _Lines:
    """Line numbers as GitHub counts them (by "\\n") for text read like CI reads it.

    CI reads files with Python's universal newlines, so CRLF and lone CR become LF before
    YAML and yamllint see the text; YAML also breaks lines at U+0085/U+2028/U+2029. Positions
    are mapped by character index, never by PyYAML's own line count.
    """

    def __init__(self, raw: str) -> None:
        self.text = raw.replace("\r\n", "\n").replace("\r", "\n")
        self.count = max(1, raw.count("\n") + (0 if raw.endswith("\n") else 1))
        self._lone_cr = re.search(r"\r(?!\n)", raw) is not None
        self._raw = raw

    def clamp(self, line: int) -> int:
        return min(max(1, line), self.count)

    def line_of(self, index: int) -> int:
        """GitHub line of a character index into the normalised text."""
        return self.from_text_line(self.text.count("\n", 0, max(0, index)) + 1)

    def from_text_line(self, line: int) -> int:
        """GitHub line of a line number in the normalised text."""
        if self._lone_cr:
            breaks = re.finditer(r"\r\n|\r|\n", self._raw)
            newlines = sum("\n" in m.group() for m in itertools.islice(breaks, max(0, line - 1)))
            line = newlines + 1
        return self.clamp(line)


# =============================================================================================
# Schemas (the package's own files) and yamllint configuration
# =============================================================================================


@functools.cache
def _highest_version() -> int:
    return int(schema_versions()[-1].name[1:])


@functools.cache
def _load_schema(version: int, kind: str) -> dict[str, Any] | None:
    folder = schema_base().joinpath(f"v{version}")
    try:
        loaded = json.loads(folder.joinpath(f"{kind}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return loaded if isinstance(loaded, dict) else None


def _retrieve(version: int, uri: str) -> Resource[Any]:
    ref = PurePosixPath(uri)
    name = ref.name
    if not name.endswith(".json") or ref.is_absolute() or ".." in ref.parts:
        raise NoSuchResource(ref=uri)  # type: ignore[call-arg]
    target = schema_base().joinpath(f"v{version}", *[p for p in ref.parts if p != "."])
    try:
        contents = json.loads(target.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise NoSuchResource(ref=uri) from error  # type: ignore[call-arg]
    return Resource.from_contents(contents, default_specification=DRAFT202012)


def _unique_items(validator: Any, unique: Any, instance: Any, schema: Any) -> Iterator[Any]:
    """`uniqueItems` in linear time (jsonschema's own compares every pair of objects)."""
    if (
        unique
        and validator.is_type(instance, "array")
        and _first_duplicate(instance)[1] is not None
    ):
        yield ValidationError(f"{instance!r} has non-unique elements")


@functools.cache
def _validator(version: int, kind: str) -> Any:
    schema = _load_schema(version, kind)
    base = validator_for(schema, default=Draft202012Validator)
    cls = extend(base, {"uniqueItems": _unique_items})
    registry: Registry[Any] = Registry(retrieve=functools.partial(_retrieve, version))  # type: ignore[call-arg]
    return cls(schema, registry=registry)


@dataclass(frozen=True)
class LintFinding:
    line: int
    column: int
    level: str  # "error" | "warning"
    desc: str
    rule: str


_PARSABLE = re.compile(
    r"^stdin:(?P<line>\d+):(?P<column>\d+): \[(?P<level>error|warning)\] (?P<desc>.*?)"
    r"(?: \((?P<rule>[a-z-]+)\))?$"
)
YAMLLINT_TIMEOUT = 30.0


def run_yamllint(text: str) -> list[LintFinding]:
    """yamllint (GPL-3.0) as its own program, like instructlab-schema runs it, never imported
    into this Apache-2.0 process. Its findings in parsable form; argv only, text on stdin."""
    try:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "yamllint",
                "-f",
                "parsable",
                "-d",
                DEFAULT_YAMLLINT_CONFIG,
                "-",
            ],
            input=text.encode("utf-8", errors="surrogatepass"),
            capture_output=True,
            timeout=YAMLLINT_TIMEOUT,
            check=False,
            env={"PATH": os.environ.get("PATH", ""), "LANG": "C.UTF-8"},
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    findings: list[LintFinding] = []
    for raw in done.stdout.decode("utf-8", errors="replace").splitlines():
        match = _PARSABLE.match(raw)
        if match:
            findings.append(
                LintFinding(
                    int(match["line"]),
                    int(match["column"]),
                    match["level"],
                    match["desc"],
                    match["rule"] or "",
                )
            )
    return findings


def _schema_kind(path: str, data: Mapping[Any, Any]) -> str:
    """The parser's rule: the last taxonomy folder in the path, else guess from the keys."""
    for part in reversed(PurePosixPath(path).parts):
        if part in TAXONOMY_FOLDERS:
            return part
    return "knowledge" if "document" in data else "compositional_skills"


def _allowed_keys(schema: Any, version: int) -> set[str]:
    """Property names a (sub)schema evaluates, following a `$ref` to version.json."""
    allowed: set[str] = set()
    if not isinstance(schema, Mapping):
        return allowed
    allowed |= {str(k) for k in schema.get("properties", {})}
    ref = schema.get("$ref")
    if isinstance(ref, str):
        try:
            contents = _retrieve(version, ref).contents
        except NoSuchResource:
            return allowed
        if isinstance(contents, Mapping):
            allowed |= {str(k) for k in contents.get("properties", {})}
    return allowed


def _property_description(schema: Any, key: str) -> str:
    if not isinstance(schema, Mapping):
        return ""
    prop = schema.get("properties", {}).get(key)
    return str(prop.get("description", "")) if isinstance(prop, Mapping) else ""


# =============================================================================================
# Small pure helpers
# =============================================================================================


def _problem_at(path: str, line: int, level: Level, title: str, message: str) -> Problem:
    line = max(1, line)
    return Problem(path=path, line=line, end_line=line, level=level, message=message, title=title)


def _ci_message(error: ValidationError) -> str:
    if error.validator == "minItems":
        return f"Value must have at least {error.validator_value} items"
    return str(error.message)[-CI_MESSAGE_CHARS:]


def _yaml_path(at: Sequence[Any]) -> str:
    """The parser's `[...]` path, e.g. `.seed_examples[2].questions_and_answers[0].answer`."""
    out = "".join(f"[{step}]" if isinstance(step, int) else f".{step}" for step in at)
    return out or "."


def _quoted_property(message: str) -> str:
    match = re.match(r"^'(.*)' is a required property$", message, re.DOTALL)
    return match.group(1) if match else message


def _normal_key(key: str) -> str:
    return re.sub(r"[\s.\-]+", "_", key.strip().lower())


def _near_miss(key: str, candidates: Sequence[str]) -> str | None:
    """The candidate a contributor most likely meant by `key` (`created.by` → `created_by`)."""
    others = [c for c in candidates if c != key]
    for candidate in others:
        if _normal_key(candidate) == _normal_key(key):
            return candidate
    close = difflib.get_close_matches(key, others, n=1, cutoff=0.75)
    return close[0] if close else None


def _identity(value: Any) -> Any:
    """A hashable stand-in with jsonschema's equality (True is not 1; 1 is 1.0)."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | float):
        return ("number", value)
    if isinstance(value, str):
        return ("string", value)
    if isinstance(value, list):
        return ("array", tuple(_identity(v) for v in value))
    if isinstance(value, Mapping):
        return ("object", frozenset((_identity(k), _identity(v)) for k, v in value.items()))
    if value is None:
        return ("null",)
    return ("other", type(value).__name__, repr(value))


def _first_duplicate(items: Sequence[Any]) -> tuple[int | None, int | None]:
    seen: dict[Any, int] = {}
    for index, item in enumerate(items):
        identity = _identity(item)
        if identity in seen:
            return seen[identity], index
        seen[identity] = index
    return None, None


_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f"
_WORD = re.compile(f"[{_CJK}]|[^\\s{_CJK}]+")


def _words(value: object) -> int:
    return len(_WORD.findall(value)) if isinstance(value, str) else 0


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _cut_bytes(text: str, limit: int) -> str:
    data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return text
    return data[: limit - 3].decode("utf-8", "ignore") + "…"


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#+!|~])")


def _escape_md(text: str) -> str:
    """Inline-safe Markdown (as messages.escape_md): specials escaped, mentions defused."""
    return _MD_SPECIAL.sub(r"\\\1", text).replace("@", "@\u200b")


def _escape_code(text: str) -> str:
    """Text for inside a single-backtick code span: no backticks, no line breaks."""
    return text.replace("`", "'").replace("\r", " ").replace("\n", " ")


def _cell(text: str) -> str:
    return (
        _escape_md(_cut(text.strip(), SUMMARY_CELL_CHARS)).replace("\r", "").replace("\n", "<br>")
    )
