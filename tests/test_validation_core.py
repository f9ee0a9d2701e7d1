"""The seams of the validation split: the core takes yamllint's findings from a `Lint` callable
(no subprocess), parses yamllint's output itself, and words problems through
`core.messages.validation`; `adapters.yamllint` runs the real program."""

import subprocess

import pytest

from instruct_lab_bot.adapters import yamllint
from instruct_lab_bot.adapters.yamllint import run_yamllint
from instruct_lab_bot.core.messages import validation as wording
from instruct_lab_bot.core.validation import (
    MAX_PER_STEP,
    LintFinding,
    parse_parsable,
    validate_file,
)
from testkit.taxonomy import attribution_txt, qna_text, skill_lines

SKILL = "compositional_skills/writing/units/qna.yaml"
ATTRIBUTION = attribution_txt()
VALID = qna_text(skill_lines())


class FakeLint:
    """A `Lint` that returns canned findings and records the text it was given."""

    def __init__(self, *findings: LintFinding) -> None:
        self.findings = list(findings)
        self.seen: list[str] = []

    def __call__(self, text: str) -> list[LintFinding]:
        self.seen.append(text)
        return self.findings


def test_lint_findings_become_problems_at_their_lines() -> None:
    lint = FakeLint(
        LintFinding(3, 7, "error", "trailing spaces", "trailing-spaces"),
        LintFinding(5, 1, "warning", "too many blank lines (1 > 0)", "empty-lines"),
        LintFinding(2, 1, "error", "syntax error: oops", ""),
    )
    problems = validate_file(SKILL, VALID, attribution=ATTRIBUTION, lint=lint)
    assert [(p.line, p.level, p.title) for p in problems] == [
        (3, "failure", "Trailing spaces"),
        (5, "warning", "Extra blank lines"),
        (2, "failure", "YAML lint: syntax"),
    ]
    assert problems[0].message == (
        "Trailing spaces. Delete the spaces or tabs at the end of this line (many editors can "
        "trim trailing whitespace on save).\nyamllint: 3:7 trailing spaces (trailing-spaces)"
    )
    assert lint.seen == [VALID]


def test_lint_sees_the_text_as_ci_reads_it_and_lines_map_back() -> None:
    crlf = VALID.replace("\n", "\r\n")
    lint = FakeLint(LintFinding(4, 1, "error", "trailing spaces", "trailing-spaces"))
    problems = validate_file(SKILL, crlf, attribution=ATTRIBUTION, lint=lint)
    assert lint.seen == [VALID]  # universal newlines, like CI
    assert [p.line for p in problems] == [4]


def test_lint_line_past_the_end_is_clamped_into_the_file() -> None:
    lint = FakeLint(LintFinding(10_000, 1, "error", "no new line", "new-line-at-end-of-file"))
    (problem,) = validate_file(SKILL, VALID, attribution=ATTRIBUTION, lint=lint)
    assert problem.line == VALID.count("\n")


def test_lint_is_skipped_where_ci_skips_it() -> None:
    lint = FakeLint(LintFinding(1, 1, "error", "x", "colons"))
    validate_file(SKILL, "version: [", attribution=ATTRIBUTION, lint=lint)  # syntax error
    validate_file(SKILL, VALID, attribution=ATTRIBUTION, lint=lint, schema_version=1)
    validate_file("docs/qna.yaml", VALID, attribution=ATTRIBUTION, lint=lint)
    assert lint.seen == []


def test_many_lint_findings_are_capped_with_a_notice() -> None:
    lint = FakeLint(*[LintFinding(2, 1, "warning", "w", "indentation")] * (MAX_PER_STEP + 7))
    problems = validate_file(SKILL, VALID, attribution=ATTRIBUTION, lint=lint)
    assert len(problems) == MAX_PER_STEP + 1
    assert problems[-1].title == wording.TITLE_MORE
    assert problems[-1].message.startswith("7 more formatting problems")


def test_a_failing_linter_is_a_finding_not_a_crash() -> None:
    def broken(text: str) -> list[LintFinding]:
        raise RuntimeError("linter exploded")

    (problem,) = validate_file(SKILL, VALID, attribution=ATTRIBUTION, lint=broken)
    assert (problem.line, problem.level, problem.title) == (1, "failure", wording.TITLE_INTERNAL)
    assert "RuntimeError" in problem.message


def test_parsable_output_is_parsed_and_other_lines_ignored() -> None:
    output = (
        "stdin:3:7: [error] trailing spaces (trailing-spaces)\n"
        "stdin:9:1: [warning] too many blank lines (1 > 0) (empty-lines)\n"
        "stdin:4:2: [error] syntax error: mapping values are not allowed here\n"
        "not a finding\n"
        "other.yaml:1:1: [error] wrong source (colons)\n"
    )
    assert parse_parsable(output) == [
        LintFinding(3, 7, "error", "trailing spaces", "trailing-spaces"),
        LintFinding(9, 1, "warning", "too many blank lines (1 > 0)", "empty-lines"),
        LintFinding(4, 2, "error", "syntax error: mapping values are not allowed here", ""),
    ]


def test_the_adapter_runs_the_real_yamllint() -> None:
    first, rest = VALID.split("\n", 1)
    findings = run_yamllint(f"{first}  \n{rest}\n")
    assert [(f.line, f.level, f.rule) for f in findings] == [
        (1, "error", "trailing-spaces"),
        (VALID.count("\n") + 1, "warning", "empty-lines"),
    ]
    assert run_yamllint(VALID) == []


def test_the_adapter_finds_nothing_when_yamllint_cannot_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def timeout(*args: object, **kwargs: object) -> None:
        raise subprocess.TimeoutExpired("yamllint", yamllint.YAMLLINT_TIMEOUT)

    monkeypatch.setattr(subprocess, "run", timeout)
    assert run_yamllint(VALID) == []


def test_summary_words_escape_what_comes_from_the_pull_request() -> None:
    row = wording.summary_row(3, "failure", "*bold*", "line\r\nnext @someone")
    assert row == "| 3 | ❌ failure | **\\*bold\\***: line<br>next @\u200bsomeone |"
    assert wording.summary_file("a`b\nc") == wording.SUMMARY_FILE.format(path="a'b c")


def test_shorten_ends_in_an_ellipsis_within_the_limit() -> None:
    assert wording.shorten("abcdef", 6) == "abcdef"
    assert wording.shorten("abcdefg", 6) == "abcde…"
    cut = wording.shorten_bytes("é" * 10, 9)
    assert cut == "ééé…" and len(cut.encode()) <= 9
