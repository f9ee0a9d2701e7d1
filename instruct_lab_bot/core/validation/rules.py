"""The bot's own rules for what a PR may ask `ilab` to do, beyond the taxonomy CI: where a
knowledge document may come from, which files in it may be read, how many seeds a file may hold,
and how the files themselves must look in the repository (no links, no submodules, not too big,
readable at the commit that is checked)."""

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from yaml.nodes import Node

from instruct_lab_bot.core.messages import validation as wording
from instruct_lab_bot.core.validation.limits import (
    DEFAULT_KNOWLEDGE_HOSTS,
    MAX_FILE_BYTES,
    MAX_SEED_EXAMPLES,
    MAX_SEED_QUESTIONS,
)
from instruct_lab_bot.core.validation.problem import Problem, Reporter, problem_at
from instruct_lab_bot.core.validation.yaml_reader import locate


@dataclass(frozen=True)
class Rules:
    """What the admin may set: knowledge hosts (`ILAB_BOT_KNOWLEDGE_HOSTS`) and the largest
    file checked (`ILAB_BOT_VALIDATION_MAX_FILE_BYTES`)."""

    knowledge_hosts: tuple[str, ...] = DEFAULT_KNOWLEDGE_HOSTS
    max_file_bytes: int = MAX_FILE_BYTES


DEFAULT_RULES = Rules()

_NAME = r"[A-Za-z0-9_.-]{1,100}"
_COMMIT = re.compile(r"[0-9a-fA-F]{40}")


def repo_url_problem(url: object, hosts: Sequence[str]) -> str | None:
    """Why `url` may not be cloned, or None: only `https://<host>/<owner>/<repo>[.git][/]`
    with an allowed host; no user, password, port, query, fragment, or `.`/`..` names."""
    if not isinstance(url, str):
        return wording.msg_repo_not_text()
    match = re.fullmatch(f"https://([A-Za-z0-9.-]+)/({_NAME})/({_NAME})/?", url)
    allowed = {h.lower() for h in hosts}
    if match is None or match.group(1).lower() not in allowed:
        return wording.msg_repo_url(url, sorted(allowed))
    owner, repo = match.group(2), match.group(3).removesuffix(".git")
    if {owner, repo} & {".", "..", ""}:
        return wording.msg_repo_url(url, sorted(allowed))
    return None


def commit_problem(commit: object) -> str | None:
    """A knowledge document is read at one full commit sha, never at a moving branch."""
    if isinstance(commit, str) and _COMMIT.fullmatch(commit):
        return None
    return wording.msg_commit(commit)


def pattern_problem(pattern: object) -> str | None:
    """A pattern names files inside the cloned repository: relative, no `..`, no `\\`, no NUL."""
    if not isinstance(pattern, str) or not pattern.strip():
        return wording.msg_pattern_empty()
    if "\0" in pattern or "\\" in pattern or any(ord(c) < 32 for c in pattern):
        return wording.msg_pattern_characters(pattern)
    if pattern.startswith(("/", "~")):
        return wording.msg_pattern_absolute(pattern)
    if ".." in pattern.split("/"):
        return wording.msg_pattern_parent(pattern)
    return None


def document_problems(
    reporter: Reporter, root: Node, data: Mapping[Any, Any], hosts: Sequence[str]
) -> Iterator[Problem]:
    """Failures for a `document:` that could make `ilab` read anything but public documents.

    Missing keys and wrong types are the schema's failures (every schema version requires
    `repo`, `commit` and `patterns`); these rules judge the text values."""
    document = data.get("document")
    if not isinstance(document, Mapping):
        return
    checks = (
        ("repo", lambda value: repo_url_problem(value, hosts), wording.TITLE_REPO),
        ("commit", commit_problem, wording.TITLE_COMMIT),
    )
    for key, rule, title in checks:
        value = document.get(key)
        message = rule(value) if isinstance(value, str) else None
        if message is not None:
            where = _line(reporter, root, ("document", key))
            yield reporter.problem(where, "failure", title, message)
    patterns = document.get("patterns")
    for index, pattern in enumerate(patterns if isinstance(patterns, list) else ()):
        message = pattern_problem(pattern) if isinstance(pattern, str) else None
        if message is not None:
            where = _line(reporter, root, ("document", "patterns", index))
            yield reporter.problem(where, "failure", wording.TITLE_PATTERN, message)


def seed_count_problems(reporter: Reporter, root: Node, data: Mapping[Any, Any]) -> list[Problem]:
    """At most MAX_SEED_EXAMPLES seed examples and MAX_SEED_QUESTIONS questions per file."""
    seeds = data.get("seed_examples")
    if not isinstance(seeds, list):
        return []
    line = _line(reporter, root, ("seed_examples",))
    if len(seeds) > MAX_SEED_EXAMPLES:
        message = wording.msg_too_many_seeds(len(seeds), MAX_SEED_EXAMPLES)
        return [reporter.problem(line, "failure", wording.TITLE_TOO_MANY_SEEDS, message)]
    questions = sum(_questions(seed) for seed in seeds)
    if questions > MAX_SEED_QUESTIONS:
        message = wording.msg_too_many_questions(questions, MAX_SEED_QUESTIONS)
        return [reporter.problem(line, "failure", wording.TITLE_TOO_MANY_SEEDS, message)]
    return []


def _questions(seed: object) -> int:
    if not isinstance(seed, Mapping):
        return 0
    pairs = seed.get("questions_and_answers")
    return len(pairs) if isinstance(pairs, list) else 1


def _line(reporter: Reporter, root: Node, at: tuple[str | int, ...]) -> int:
    found = locate(root, at)
    return reporter.node_line(found.node if at and isinstance(at[-1], int) else found.key or root)


# -- the file itself, as the contents API shows it at the checked commit ----------------------

Kind = Literal["file", "symlink", "submodule", "dir", "missing", "error"]


@dataclass(frozen=True)
class RepoFile:
    """A changed path at one commit, as GitHub's contents API describes it."""

    path: str
    kind: Kind
    size: int = 0
    content: bytes | None = None  # None when GitHub sent none (over 1 MB) or not a file
    detail: str = ""  # what went wrong reading it (kind "error")

    @property
    def transient(self) -> bool:
        """Whether reading it again may succeed (an API error, not a fact about the commit)."""
        return self.kind == "error"


def file_problem(found: RepoFile, sha: str, limit: int) -> Problem | None:
    """A failure unless `found` is a regular file of at most `limit` bytes with its content:
    validation never passes a file it could not read (fails closed)."""
    path = found.path
    if found.kind == "file" and found.size > limit:
        return problem_at(
            path, 1, "failure", wording.TITLE_TOO_LARGE, wording.msg_too_large(found.size, limit)
        )
    if found.kind == "file" and found.content is not None:
        return None
    title, message = wording.unreadable(found.kind, sha, found.detail)
    return problem_at(path, 1, "failure", title, message)
