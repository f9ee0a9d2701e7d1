"""yamllint's findings as problems. yamllint (GPL-3.0) runs as its own program outside the core
(`adapters.yamllint`); the core gets a `Lint` callable, and reads yamllint's parsable output."""

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from instruct_lab_bot.core.messages.validation import msg_lint, msg_yamllint, title_lint
from instruct_lab_bot.core.validation.problem import Level, Problem, Reporter


@dataclass(frozen=True)
class LintFinding:
    line: int
    column: int
    level: str  # "error" | "warning"
    desc: str
    rule: str


Lint = Callable[[str], Iterable[LintFinding]]
"""Lints YAML text (line endings already normalised) with the taxonomy's yamllint config."""

_PARSABLE = re.compile(
    r"^(?P<source>[^:\n]+):(?P<line>\d+):(?P<column>\d+): \[(?P<level>error|warning)\] "
    r"(?P<desc>.*?)(?: \((?P<rule>[a-z-]+)\))?$"
)


def parse_parsable(output: str, source: str = "stdin") -> list[LintFinding]:
    """The findings for `source` in `yamllint -f parsable` output (`stdin`: the text read
    from stdin, else a file name given to yamllint); other lines are ignored."""
    return parse_parsable_files(output).get(source, [])


def parse_parsable_files(output: str) -> dict[str, list[LintFinding]]:
    """Every finding in `yamllint -f parsable` output, by the file it is about."""
    findings: dict[str, list[LintFinding]] = {}
    for raw in output.splitlines():
        match = _PARSABLE.match(raw)
        if match:
            findings.setdefault(match["source"], []).append(
                LintFinding(
                    int(match["line"]),
                    int(match["column"]),
                    match["level"],
                    match["desc"],
                    match["rule"] or "",
                )
            )
    return findings


def lint_problems(reporter: Reporter, lint: Lint) -> Iterator[Problem]:
    """yamllint's errors as failures and its warnings as warnings, each at its line."""
    for found in lint(reporter.lines.text):
        rule = found.rule or "syntax"
        level: Level = "failure" if found.level == "error" else "warning"
        message = msg_lint(found.desc, rule)
        ci = msg_yamllint(found.line, found.column, found.desc, rule)
        line = reporter.lines.from_text_line(int(found.line))
        yield reporter.problem(line, level, title_lint(rule), f"{message}\n{ci}")
