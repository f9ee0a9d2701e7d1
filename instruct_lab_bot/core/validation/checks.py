"""One changed file through the taxonomy CI's steps, in CI's order: its name and folder, UTF-8,
a bounded YAML load, empty or non-mapping data, the schema version, yamllint, the JSON schema,
the README's lengths (the bot's own notices) and `check-yaml.py`'s attribution.txt rule."""

import itertools
from collections.abc import Iterable, Mapping
from pathlib import PurePosixPath
from typing import Any, NoReturn

from yaml.error import MarkedYAMLError
from yaml.nodes import Node
from yaml.reader import ReaderError

from instruct_lab_bot.core.messages import validation as wording
from instruct_lab_bot.core.validation.lengths import length_notices
from instruct_lab_bot.core.validation.limits import (
    ATTRIBUTION_NAME,
    MAX_CHARS,
    MAX_DEPTH,
    MAX_NODES,
    MAX_PER_STEP,
    QNA_NAME,
    TAXONOMY_FOLDERS,
    YAML_SUFFIXES,
)
from instruct_lab_bot.core.validation.lint import Lint, lint_problems
from instruct_lab_bot.core.validation.problem import Problem, Reporter, Stop, problem_at
from instruct_lab_bot.core.validation.rules import (
    DEFAULT_RULES,
    Rules,
    document_problems,
    seed_count_problems,
)
from instruct_lab_bot.core.validation.schema import highest_version
from instruct_lab_bot.core.validation.schema_problems import schema_problems
from instruct_lab_bot.core.validation.yaml_reader import (
    Lines,
    Loader,
    Recursive,
    TooDeep,
    error_mark,
    expanded_size,
    first_alias_index,
)


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
    lint: Lint,
    schema_version: int | None = None,
    rules: Rules = DEFAULT_RULES,
) -> list[Problem]:
    """Every problem the taxonomy CI would report for `path`, plus the bot's own notices.

    `text` is the file content (None: deleted or missing, nothing to check: CI skips
    deleted files and an annotation cannot point into a file the head commit lacks).
    `attribution` is the sibling attribution.txt (None: missing). `lint` runs yamllint on the
    text (see `adapters.yamllint`). `schema_version` None checks against the newest schema like
    CI does for changed files; 0 uses the file's own `version:` key. `rules` are the bot's own
    (`core.validation.rules`): knowledge document sources, seed counts, file size. Never raises.

    Pure apart from `lint`; hostile input is capped, but the worst case is a few seconds of CPU,
    so async callers run it in a thread (`asyncio.to_thread`).
    """
    if text is None:
        return []
    try:
        return _Check(path, text, attribution, lint, schema_version, rules).run()
    except Exception as error:  # last resort: a finding, never a crashed check run
        return [problem_at(path, 1, "failure", wording.TITLE_INTERNAL, wording.msg_internal(error))]


class _Check:
    """One file through CI's steps, in CI's order."""

    def __init__(
        self,
        path: str,
        raw: str | bytes,
        attribution: str | bytes | None,
        lint: Lint,
        schema_version: int | None,
        rules: Rules,
    ) -> None:
        self.raw = raw
        self.rules = rules
        self.attribution = attribution
        self.lint = lint
        self.schema_version = schema_version
        self.reporter = Reporter(path, Lines(""))

    def run(self) -> list[Problem]:
        try:
            return self._steps()
        except Stop as stop:
            return [stop.problem]

    def _steps(self) -> list[Problem]:
        reporter = self.reporter
        name = PurePosixPath(reporter.path).name
        if name != QNA_NAME:
            reporter.stop(1, wording.TITLE_NAME, wording.msg_name(name))
        parts = PurePosixPath(reporter.path).parts
        if len(parts) < 2 or parts[0] not in TAXONOMY_FOLDERS:
            message = wording.msg_outside(TAXONOMY_FOLDERS)
            return [reporter.problem(1, "warning", wording.TITLE_OUTSIDE, message)]
        self.reporter = reporter = Reporter(reporter.path, Lines(self._decode()))
        root, data = self._load()
        if not data:
            message = wording.msg_empty(root is not None)
            return [reporter.problem(1, "warning", wording.TITLE_EMPTY, message)]
        if not isinstance(data, Mapping):
            message = wording.msg_not_mapping(wording.kind_of(data))
            reporter.stop(reporter.node_line(root), wording.TITLE_NOT_MAPPING, message)
        assert root is not None
        return self._checks(root, data)

    def _checks(self, root: Node, data: Mapping[Any, Any]) -> list[Problem]:
        """The steps that each report every problem they find (capped), not just the first."""
        version = self._version(data)
        problems: list[Problem] = []
        if version > 1:  # CI: no linting for version 1
            problems += self._capped(lint_problems(self.reporter, self.lint), "formatting")
        problems += self._capped(schema_problems(self.reporter, root, data, version), "schema")
        problems += self._capped(length_notices(self.reporter, root, data), "length")
        hosts = self.rules.knowledge_hosts
        documents = document_problems(self.reporter, root, data, hosts)
        problems += self._capped(documents, "knowledge document")
        problems += seed_count_problems(self.reporter, root, data)
        if version > 1:
            problems += self._attribution()
        return problems

    # -- reading --------------------------------------------------------------------------

    def _decode(self) -> str:
        raw = self.raw
        size = len(raw) if isinstance(raw, bytes) else len(raw.encode("utf-8", "surrogatepass"))
        if size > self.rules.max_file_bytes:
            message = wording.msg_too_large(size, self.rules.max_file_bytes)
            self.reporter.stop(1, wording.TITLE_TOO_LARGE, message)
        if isinstance(raw, str):
            return raw
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as error:
            line = raw.count(b"\n", 0, error.start) + 1
            column = error.start - (raw.rfind(b"\n", 0, error.start) + 1) + 1
            message = wording.msg_not_utf8(raw[error.start], column)
            self.reporter.stop(line, wording.TITLE_NOT_UTF8, message, raw_line=True)

    def _load(self) -> tuple[Node | None, object]:
        """Compose with marks (for lines), measure, then construct as `yaml.safe_load` would."""
        reporter = self.reporter
        loader: Loader | None = None
        try:
            loader = Loader(reporter.lines.text)  # the reader refuses control characters right here
            root = loader.get_single_node()
            if root is not None:
                self._measure(root)
            return root, loader.construct_document(root) if root is not None else None
        except MarkedYAMLError as error:
            self._syntax_error(error)
        except ReaderError as error:
            self._bad_character(error)
        except TooDeep as deep:
            reporter.stop(
                reporter.lines.line_of(deep.index),
                wording.TITLE_NESTING,
                wording.msg_nesting(MAX_DEPTH),
            )
        finally:
            if loader is not None:
                loader.dispose()

    def _syntax_error(self, error: MarkedYAMLError) -> NoReturn:
        reporter = self.reporter
        mark = error_mark(error)
        index = mark.index if mark is not None else 0
        column = mark.column + 1 if mark is not None else 1
        problem = "; ".join(filter(None, (error.context, error.problem))) or str(error)
        reporter.stop(
            reporter.lines.line_of(index), wording.TITLE_SYNTAX, wording.msg_syntax(problem, column)
        )

    def _bad_character(self, error: ReaderError) -> NoReturn:
        reporter = self.reporter
        position = int(error.position)
        column = position - (reporter.lines.text.rfind("\n", 0, position) + 1) + 1
        problem = wording.syntax_bad_character(int(error.character), str(error.reason))
        message = wording.msg_syntax(problem, column)
        reporter.stop(reporter.lines.line_of(position), wording.TITLE_SYNTAX, message)

    def _measure(self, root: Node) -> None:
        """Refuse alias bombs and recursive aliases before anything walks the expanded data."""
        reporter = self.reporter
        try:
            nodes, chars, depth = expanded_size(root)
        except Recursive as recursive:
            reporter.stop(
                reporter.node_line(recursive.node), wording.TITLE_RECURSIVE, wording.msg_recursive()
            )
        if depth > MAX_DEPTH:
            reporter.stop(
                reporter.node_line(root), wording.TITLE_NESTING, wording.msg_nesting(MAX_DEPTH)
            )
        if nodes > MAX_NODES or chars > MAX_CHARS:
            alias = first_alias_index(reporter.lines.text)
            line = reporter.lines.line_of(alias) if alias is not None else reporter.node_line(root)
            reporter.stop(line, wording.TITLE_ALIASES, wording.msg_aliases())

    def _version(self, data: Mapping[Any, Any]) -> int:
        """CI's rule: the newest schema unless asked for the file's own `version:` key."""
        wanted = highest_version() if self.schema_version is None else self.schema_version
        if wanted >= 1:
            return wanted
        declared = data.get("version", 1)
        if isinstance(declared, int) and not isinstance(declared, bool):
            return declared
        try:
            return int(declared)
        except (ValueError, TypeError, OverflowError):
            return 1

    # -- check-yaml.py's attribution rule ---------------------------------------------------

    def _attribution(self) -> list[Problem]:
        """On the qna.yaml's line 1: attribution.txt may not exist, and is often not in the diff."""
        reporter, attribution = self.reporter, self.attribution
        if attribution is None:
            folder = str(PurePosixPath(reporter.path).parent)
            message = wording.msg_attribution_missing(folder)
            return [reporter.problem(1, "failure", wording.TITLE_ATTRIBUTION_MISSING, message)]
        if len(attribution) == 0:
            message = wording.msg_attribution_empty()
            return [reporter.problem(1, "failure", wording.TITLE_ATTRIBUTION_EMPTY, message)]
        if not attribution.strip():
            message = wording.msg_attribution_blank()
            return [reporter.problem(1, "warning", wording.TITLE_ATTRIBUTION_BLANK, message)]
        return []

    def _capped(self, problems: Iterable[Problem], step: str) -> list[Problem]:
        """At most MAX_PER_STEP problems, then a notice saying how many more there are."""
        found = iter(problems)
        kept = list(itertools.islice(found, MAX_PER_STEP))
        extra = list(itertools.islice(found, 10 * MAX_PER_STEP + 1))
        if not extra:
            return kept
        at_least = len(extra) > 10 * MAX_PER_STEP
        message = wording.msg_more(min(len(extra), 10 * MAX_PER_STEP), step, at_least=at_least)
        return [*kept, self.reporter.problem(extra[0].line, "notice", wording.TITLE_MORE, message)]
