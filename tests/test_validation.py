"""Taxonomy validation: CI's verdict, at the right line, in words a contributor understands.

Every way INVALID.md lists is a case in `invalid_qna_cases()` (files written here, modelled on
the real cases); each is checked for its problems' lines and wording, and against the real
`TaxonomyParser` (with the real `yamllint` subprocess) for the same pass/fail verdict.
"""

import functools
import logging
import os
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from instructlab.schema.taxonomy import (
    TaxonomyMessageFormat,
    TaxonomyParser,
    TaxonomyReadingException,
)

from instruct_lab_bot.adapters.yamllint import run_yamllint
from instruct_lab_bot.core import validation
from instruct_lab_bot.core.messages.validation import TITLE_INTERNAL
from instruct_lab_bot.core.validation import (
    Problem,
    annotations,
    batches,
    failed,
    summary,
    taxonomy_files,
)
from testkit.taxonomy import (
    InvalidQna,
    SkillSeed,
    attribution_txt,
    default_grounded_seeds,
    default_knowledge_seeds,
    default_skill_seeds,
    invalid_qna_cases,
    knowledge_lines,
    knowledge_qna,
    line_of,
    qna_text,
    skill_lines,
    skill_qna,
)

# CI's full verdict, so every check lints with the real yamllint (the core takes the linter)
validate_file = functools.partial(validation.validate_file, lint=run_yamllint)

SKILL = "compositional_skills/writing/units/qna.yaml"
KNOWLEDGE = "knowledge/astronomy/moon/qna.yaml"
ATTRIBUTION = attribution_txt()
CASES = invalid_qna_cases()

# What the message of each case's first expected problem must say (wording is the product).
MESSAGES = {
    "too-few-seed-examples": "`seed_examples` has 3; at least 5 are needed. Add 2 more",
    "duplicate-seed-example": "Seed example 5 is the same as seed example 2",
    "created-by-missing": "`created_by` is missing at the top level of the file",
    "created-by-misspelt": "Did you mean `created_by`?",
    "created-by-empty": "`created_by` has no value; it must be text",
    "dotted-keys": "The file has `created.by`: rename it to `created_by`.",
    "seed-examples-with-space": "The file has `seed examples`: rename it to `seed_examples`.",
    "version-2-skill": "This file says `version: 2`, but new and changed taxonomy files must say "
    "`version: 3`",
    "version-missing": "Add `version: 3` at the top",
    "version-quoted": "`version` must be the number 3, without quotes.",
    "knowledge-version-2": "Version 2 is not supported for knowledge. Minimum supported version "
    "is 3.",
    "tab-indentation": "YAML does not allow tabs for indentation",
    "trailing-spaces": "Delete the spaces or tabs at the end of this line",
    "no-final-newline": "End the last line with a line break.",
    "duplicate-key": 'Duplication of key "answer" in mapping',
    "missing-space-after-colon": "could not find expected ':'",
    "trailing-blank-line": "Too many blank lines (1 > 0)",
    "inconsistent-indentation": "expected 4 but found 2",
    "too-few-questions-and-answers": "Seed example 4 has 2 question-and-answer pairs; each "
    "knowledge seed example needs at least 3",
    "empty-context": "`context` in seed example 2 is empty.",
    "bare-question": "`question` in seed example 3, question-and-answer pair 1 has no value",
    "missing-questions-and-answers": "`questions_and_answers` is missing in seed example 3.",
    "long-seed-text": "This is guidance only: the schema has no length limit",
    "long-context": "`context` in seed example 1 has about 520 words",
    "qna-yml": 'Taxonomy files must be named "qna.yaml"; "qna.yml" is not a valid name',
    "number-answer": 'but it is read as a number (35.67). Put it in quotes: "35.67".',
    "top-level-list": "The file is a list, but it must be a set of `key: value` lines",
    "empty-file": "The file is empty.",
    "attribution-missing": "There is no attribution.txt next to this qna.yaml",
    "attribution-empty": "attribution.txt next to this qna.yaml is empty",
}


def _lines_in(text: str | bytes) -> int:
    newline = "\n" if isinstance(text, str) else b"\n"
    ends = text.endswith(newline)  # type: ignore[arg-type]
    return max(1, text.count(newline) + (0 if ends else 1))  # type: ignore[arg-type]


def _triples(problems: list[Problem]) -> set[tuple[int, str, str]]:
    return {(p.line, p.level, p.title) for p in problems}


def _check(case: InvalidQna) -> list[Problem]:
    return validate_file(case.path, case.text, attribution=case.attribution)


# --------------------------------------------------------------------------------------------
# every way INVALID.md lists


def test_the_cases_cover_every_section_of_invalid_md() -> None:
    assert {case.section for case in CASES} == {"1", "2", "3", "4", "5", "6", "7"}
    assert set(MESSAGES) == {case.name for case in CASES}
    assert len({case.path for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_invalid_file_is_reported_at_its_line(case: InvalidQna) -> None:
    problems = _check(case)
    got = _triples(problems)
    assert set(case.expected) <= got
    if case.exact:
        assert got == set(case.expected)
        assert len(problems) == len(case.expected)
    line, level, title = case.expected[0]
    first = next(p for p in problems if (p.line, p.level, p.title) == (line, level, title))
    assert MESSAGES[case.name] in first.message
    for problem in problems:
        assert problem.path == case.path
        assert 1 <= problem.line <= problem.end_line <= _lines_in(case.text)


@pytest.fixture
def real_parser(monkeypatch: pytest.MonkeyPatch) -> TaxonomyParser:
    """The taxonomy CI's parser, running the venv's `yamllint` as a subprocess like CI does."""
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    logging.getLogger("instructlab.schema").setLevel(logging.CRITICAL)
    parser = TaxonomyParser(message_format=TaxonomyMessageFormat.LOGGING)
    parser.yq_available = False  # line numbers come from mikefarah's yq; not needed here
    return parser


def test_verdicts_match_the_real_checker(real_parser: TaxonomyParser, tmp_path: Path) -> None:
    """Fail exactly when CI fails (check-yaml.py: parser errors, a crash, or attribution)."""
    for case in CASES:
        file = tmp_path / case.path
        file.parent.mkdir(parents=True)
        text = case.text if isinstance(case.text, bytes) else case.text.encode()
        file.write_bytes(text)
        if case.attribution is not None:
            file.with_name("attribution.txt").write_text(case.attribution)
        try:
            taxonomy = real_parser.parse(file)
            errors, warnings = taxonomy.errors, taxonomy.warnings
            if taxonomy.version > 1 and not case.attribution:
                errors += 1
        except TaxonomyReadingException:
            errors, warnings = 1, 0
        problems = _check(case)
        ours = sum(p.level == "warning" for p in problems)
        assert (failed(problems), ours > 0) == (errors > 0, warnings > 0), case.name


# --------------------------------------------------------------------------------------------
# valid files


def _grounded_lines() -> list[str]:
    return ["---", *skill_lines(default_grounded_seeds())]


VALID: dict[str, str | bytes] = {
    "skill-v3": qna_text(skill_lines()),
    "grounded-skill": qna_text(_grounded_lines()),
    "skill-v3-dumped": skill_qna(default_skill_seeds()),
    "grounded-dumped": skill_qna(default_grounded_seeds()),
    "skill-crlf": qna_text(skill_lines()).replace("\n", "\r\n"),
    "skill-bom": "\ufeff" + qna_text(skill_lines()),
    "skill-utf8-bytes": qna_text(
        skill_lines(
            [
                SkillSeed("Wie viel ist 1 Pfund?", "Ungefähr 454 Gramm – 日本語 🚀"),
                *default_skill_seeds()[1:],
            ]
        )
    ).encode(),
}
VALID_KNOWLEDGE = {
    "knowledge-v3": qna_text(knowledge_lines()),
    "knowledge-v3-dumped": knowledge_qna(default_knowledge_seeds()),
}


@pytest.mark.parametrize("name", sorted(VALID))
def test_valid_skill_has_no_problems(name: str) -> None:
    assert validate_file(SKILL, VALID[name], attribution=ATTRIBUTION) == []


@pytest.mark.parametrize("name", sorted(VALID_KNOWLEDGE))
def test_valid_knowledge_has_no_problems(name: str) -> None:
    assert validate_file(KNOWLEDGE, VALID_KNOWLEDGE[name], attribution=ATTRIBUTION) == []


def test_tabs_inside_a_block_scalar_are_text() -> None:
    lines = skill_lines()
    at = line_of(lines, "  - question", 2)
    lines[at - 1 : at] = ["  - question: |", "      Convert\t5 miles\tto kilometres."]
    assert validate_file(SKILL, qna_text(lines), attribution=ATTRIBUTION) == []


def test_deleted_file_has_nothing_to_check() -> None:
    assert validate_file(SKILL, None, attribution=None) == []


def test_blank_attribution_is_a_warning_only() -> None:
    problems = validate_file(SKILL, qna_text(skill_lines()), attribution=" \n")
    assert _triples(problems) == {(1, "warning", "attribution.txt blank")}


def test_qna_yaml_outside_the_taxonomy_folders_gets_a_warning() -> None:
    problems = validate_file("docs/qna.yaml", "a: [", attribution=None)
    assert _triples(problems) == {(1, "warning", "Not in a taxonomy folder")}
    assert "neither the taxonomy CI nor `ilab` reads it" in problems[0].message


# --------------------------------------------------------------------------------------------
# version handling


def test_changed_files_are_checked_against_the_newest_schema() -> None:
    lines = [line for line in skill_lines() if not line.startswith("version")]
    text = qna_text([line + " " if line.startswith("    answer") else line for line in lines])
    as_ci = validate_file(SKILL, text, attribution=None)
    titles = [p.title for p in as_ci]
    assert titles.count("Trailing spaces") == 5
    assert {"Missing version", "attribution.txt missing"} <= set(titles)
    # as declared (SCHEMA_VERSION=0): no version key means version 1, no lint, no attribution
    assert validate_file(SKILL, text, attribution=None, schema_version=0) == []


def test_declared_old_knowledge_version_is_refused_with_the_schema_message() -> None:
    text = qna_text(knowledge_lines(version="2"))
    problems = validate_file(KNOWLEDGE, text, attribution=ATTRIBUTION, schema_version=0)
    assert _triples(problems) == {(1, "failure", "Unsupported version")}
    expected = "Version 2 is not supported for knowledge. Minimum supported version is 3."
    assert problems[0].message == expected


def test_declared_unknown_version() -> None:
    text = qna_text(skill_lines(version="7"))
    problems = validate_file(SKILL, text, attribution=ATTRIBUTION, schema_version=0)
    assert _triples(problems) == {(1, "failure", "Unknown version")}
    assert "Use `version: 3`" in problems[0].message


# --------------------------------------------------------------------------------------------
# line numbers across encodings and line endings


def test_lines_are_the_same_with_crlf_and_bom() -> None:
    lines = skill_lines()
    at = line_of(lines, "    answer", 4)
    lines[at - 1] = "    answer: 35.67"
    text = qna_text(lines)
    for variant in (text, text.replace("\n", "\r\n"), "\ufeff" + text, text.encode()):
        problems = validate_file(SKILL, variant, attribution=ATTRIBUTION)
        assert _triples(problems) == {(at, "failure", "Wrong kind of value")}


def test_lone_carriage_returns_stay_within_the_file() -> None:
    lines = skill_lines()
    lines[line_of(lines, "    answer", 4) - 1] = "    answer: 35.67"
    text = qna_text(lines).replace("\n", "\r")
    problems = validate_file(SKILL, text, attribution=ATTRIBUTION)
    assert [(p.line, p.title) for p in problems] == [(1, "Wrong kind of value")]


def test_not_utf8_points_at_the_bad_byte() -> None:
    data = qna_text(skill_lines()).encode().replace(b"taxonomy-contributor", b"contrib\xffutor")
    problems = validate_file(SKILL, data, attribution=ATTRIBUTION)
    assert _triples(problems) == {(2, "failure", "Not UTF-8 text")}
    assert "byte 0xff at column 20" in problems[0].message


# --------------------------------------------------------------------------------------------
# hostile input: one clear failure, quickly, never an exception


def _laughs(levels: int) -> str:
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        prev, name = chr(96 + i), chr(97 + i)
        lines.append(f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]")
    return qna_text(lines)


HOSTILE: dict[str, tuple[str | bytes, int, str]] = {
    "10 MB text": ("a: " + "x" * 10_000_000 + "\n", 1, "File too large"),
    "10 MB bytes": (b"a: " + b"x" * 10_000_000, 1, "File too large"),
    "deep flow nesting": (
        "a: " + "[" * 100_000 + "]" * 100_000 + "\n",
        1,
        "YAML nested too deeply",
    ),
    "deep block nesting": (
        "".join(" " * i + f"k{i}:\n" for i in range(200)),
        32,  # the 33rd level starts at k31
        "YAML nested too deeply",
    ),
    "billion laughs": (_laughs(9), 2, "YAML aliases expand too much"),
    "alias chain": (
        "a0: &a0 [x]\n" + "".join(f"a{i}: &a{i} [*a{i - 1}]\n" for i in range(1, 100)),
        1,
        "YAML nested too deeply",
    ),
    "recursive alias": ("version: 3\nseed_examples: &s [*s]\n", 2, "Recursive YAML alias"),
    "recursive merge": ("a: &a\n  <<: *a\n", 1, "Recursive YAML alias"),
    "NUL byte": ("version: 3\ncreated_by: a\x00b\n", 2, "YAML syntax error"),
    "lone surrogate": ("version: 3\ncreated_by: a\ud800b\n", 2, "YAML syntax error"),
    "5000-digit int": ("version: " + "9" * 5000 + "\n", 1, "YAML syntax error"),
    "impossible date": ("version: 3\ncreated_by: 2024-02-30\n", 2, "YAML syntax error"),
    "unhashable key": ("version: 3\n? [a, b]\n: c\n", 2, "YAML syntax error"),
    "python tag": ("version: 3\na: !!python/object/apply:os.system [id]\n", 2, "YAML syntax error"),
    "undefined alias": ("version: 3\na: *nope\n", 2, "YAML syntax error"),
    "second document": ("version: 3\n---\nversion: 3\n", 2, "YAML syntax error"),
    "unclosed quote": (
        'version: 3\ncreated_by: "abc\ntask_description: t\n',
        2,
        "YAML syntax error",
    ),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_input_gives_one_failure(name: str) -> None:
    text, line, title = HOSTILE[name]
    problems = validate_file(SKILL, text, attribution=ATTRIBUTION)
    assert _triples(problems) == {(line, "failure", title)}


def test_many_errors_are_capped_with_a_notice() -> None:
    seeds = "".join(f"  - {{q: q{i}}}\n" for i in range(2000))
    text = f"version: 3\ncreated_by: x\ntask_description: t\nseed_examples:\n{seeds}"
    problems = validate_file(SKILL, text, attribution=ATTRIBUTION)
    *problems, seed_cap = problems  # the bot's own seed count rule comes last
    assert (seed_cap.line, seed_cap.title) == (4, "Too many seed examples")
    assert len(problems) == validation.MAX_PER_STEP + 1
    assert all(p.level == "failure" for p in problems[:-1])
    # three problems per seed example: the 51st is the third of seed example 17, on line 21
    assert (problems[-1].line, problems[-1].level) == (21, "notice")
    assert problems[-1].title == "More problems not shown"
    assert problems[-1].message.startswith("At least 500 more schema problems")


def test_a_repeat_in_a_long_list_is_found_and_pointed_at() -> None:
    seeds = "".join(f"  - {{question: q{i}, answer: a{i}}}\n" for i in range(1500))
    text = f"version: 3\ncreated_by: x\ntask_description: t\nseed_examples:\n{seeds}"
    text += "  - {question: q7, answer: a7}\n"
    problems = validate_file(SKILL, text, attribution=ATTRIBUTION)
    assert _triples(problems) == {
        (1505, "failure", "Duplicate seed example"),
        (4, "notice", "Longer than the README suggests"),  # 3,002 words
        (4, "failure", "Too many seed examples"),  # the bot's own cap
    }
    assert "Seed example 1501 is the same as seed example 8" in problems[0].message


def test_merge_keys_are_followed_for_lines() -> None:
    lines = skill_lines()
    lines[line_of(lines, "  - question", 1) - 1 : line_of(lines, "    answer", 1)] = [
        "  - &first",
        '    question: "How many centimetres are in 12 inches?"',
        '    answer: "12 inches is 30.48 centimetres."',
        "  - <<: *first",
        "    answer: 12.0",
    ]
    problems = validate_file(SKILL, qna_text(lines), attribution=ATTRIBUTION)
    assert _triples(problems) == {(9, "failure", "Wrong kind of value")}


# --------------------------------------------------------------------------------------------
# property tests


PROPERTY = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
FRAGMENTS = [
    "version: 3\n",
    "version: '3'\n",
    "created_by: x\n",
    "seed_examples:\n",
    "task_description: t\n",
    "document:\n",
    "  - ",
    "- ",
    "  ",
    "    ",
    "question: ",
    "answer: ",
    "context: |\n",
    "questions_and_answers:\n",
    "\t",
    "\n",
    "\r\n",
    "\r",
    ": ",
    "? ",
    "&a ",
    "*a ",
    "<<: *a\n",
    "[",
    "]",
    "{",
    "}",
    ", ",
    "'",
    '"',
    "|",
    ">",
    "#",
    "---\n",
    "...\n",
    "!!binary ",
    "!!set ",
    "~",
    "null",
    "35.67",
    "2024-02-30",
    "\ufeff",
    "\x00",
    "\u2028",
    "\x85",
    "日本語",
    "\\",
]


def _assert_sane(text: str | bytes, problems: list[Problem]) -> None:
    count = _lines_in(text)
    for problem in problems:
        assert 1 <= problem.line <= problem.end_line <= count
        assert problem.level in ("failure", "warning", "notice")
        assert problem.title != TITLE_INTERNAL, problem.message
        assert problem.message


@PROPERTY
@given(st.text(max_size=400))
def test_any_text_never_raises_and_stays_within_the_file(text: str) -> None:
    _assert_sane(text, validate_file(SKILL, text, attribution=None))


@PROPERTY
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=60).map("".join))
def test_yaml_like_text_never_raises_and_stays_within_the_file(text: str) -> None:
    _assert_sane(text, validate_file(KNOWLEDGE, text, attribution=ATTRIBUTION))


@PROPERTY
@given(st.binary(max_size=300))
def test_any_bytes_never_raise_and_stay_within_the_file(data: bytes) -> None:
    _assert_sane(data, validate_file(SKILL, data, attribution=b""))


@PROPERTY
@given(
    st.lists(st.text(max_size=40), min_size=1, max_size=8),
    st.lists(st.text(max_size=40), min_size=1, max_size=8),
)
def test_skill_with_any_seed_text_keeps_lines_in_range(
    questions: list[str], answers: list[str]
) -> None:
    seeds = [SkillSeed(q, a) for q, a in zip(questions, answers, strict=False)]
    text = qna_text(skill_lines(seeds))
    _assert_sane(text, validate_file(SKILL, text, attribution=ATTRIBUTION))


KEYS = [
    "version",
    "created_by",
    "task_description",
    "domain",
    "document_outline",
    "document",
    "seed_examples",
    "context",
    "question",
    "answer",
    "questions_and_answers",
    "patterns",
    "x",
]
DATA = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=5), inner, max_size=6)
    ),
    max_leaves=40,
)


@PROPERTY
@given(DATA)
def test_any_data_shape_gets_problems_within_the_file(data: object) -> None:
    text = yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
    for path in (SKILL, KNOWLEDGE):
        _assert_sane(text, validate_file(path, text, attribution=ATTRIBUTION))


# --------------------------------------------------------------------------------------------
# which files, annotations, batches, summary


def test_taxonomy_files_picks_what_ci_checks() -> None:
    changed = [
        "README.md",
        "compositional_skills/a/qna.yaml",
        "compositional_skills/b/qna.yml",
        "compositional_skills/b/notes.YAML",
        "knowledge/c/attribution.txt",
        "knowledge/d/qna.yaml",
        "knowledge/d/attribution.txt",
        "knowledge/d/moon.md",
        "foundational_skills/e/qna.yaml",
        "foundational_skills/e/attribution.txt",
        "docs/template_qna.yaml",
        "/etc/qna.yaml",
    ]
    assert taxonomy_files(changed) == [
        "compositional_skills/a/qna.yaml",
        "compositional_skills/b/notes.YAML",
        "compositional_skills/b/qna.yml",
        "foundational_skills/e/qna.yaml",
        "knowledge/c/qna.yaml",
        "knowledge/d/qna.yaml",
    ]
    assert taxonomy_files([]) == []


def _problem(path: str = SKILL, line: int = 3, **kw: str) -> Problem:
    fields = {"level": "failure", "title": "Too few seed examples", "message": "Add 2 more."}
    fields.update(kw)
    return Problem(path, line, line, fields["level"], fields["message"], fields["title"])  # type: ignore[arg-type]


def test_annotations_have_githubs_shape_and_limits() -> None:
    long = _problem(message="é" * 100_000, title="t" * 1000)
    result = annotations([_problem(), long])
    assert result[0] == {
        "path": SKILL,
        "start_line": 3,
        "end_line": 3,
        "annotation_level": "failure",
        "message": "Add 2 more.",
        "title": "Too few seed examples",
    }
    assert len(str(result[1]["message"]).encode()) <= 64 * 1024
    assert len(str(result[1]["title"])) <= 255
    real = _check(CASES[0])
    assert annotations(real)[0]["start_line"] == real[0].line


def test_batches_of_fifty() -> None:
    assert batches([]) == []
    assert [len(b) for b in batches(list(range(120)))] == [50, 50, 20]
    assert batches(list(range(50))) == [list(range(50))]
    assert batches([1, 2, 3], size=2) == [[1, 2], [3]]
    with pytest.raises(ValueError):
        batches([1], size=0)


def test_summary_counts_and_lists_every_file() -> None:
    problems = [
        *_check(next(c for c in CASES if c.name == "too-few-seed-examples")),
        *_check(next(c for c in CASES if c.name == "trailing-blank-line")),
    ]
    other = "knowledge/fine/qna.yaml"
    title, text = summary(problems, checked=[other])
    assert title == "1 problem to fix in 1 file, 1 warning"
    assert "(3 files checked)" in text
    assert "Failures must be fixed before `generate` or `precheck` can run" in text
    assert f"- ✅ `{other}`: no problems" in text
    assert "| 4 | ❌ failure | **Too few seed examples**: " in text


def test_summary_titles() -> None:
    assert summary([], checked=[SKILL]) == (
        "No problems in the changed taxonomy files",
        "**No problems in the changed taxonomy files** (1 file checked).\n"
        f"- ✅ `{SKILL}`: no problems",
    )
    assert summary([])[1] == "No taxonomy files changed in this pull request."
    assert summary([_problem(level="warning"), _problem(level="notice")])[0] == (
        "Valid, with 1 warning and 1 notice"
    )
    assert summary([_problem(), _problem(line=5)])[0] == "2 problems to fix in 1 file"


def test_summary_escapes_what_comes_from_the_pull_request() -> None:
    path = "knowledge/`x`|y/qna.yaml"
    message = "<script>alert(1)</script> | @octocat [link](http://x)\nsecond line"
    _, text = summary([_problem(path=path, message=message, title="**bold**")])
    assert "<script>" not in text
    assert "@octocat" not in text
    assert "[link](http" not in text
    assert "\\*\\*bold\\*\\*" in text
    assert "`knowledge/'x'|y/qna.yaml`" in text
    row = next(line for line in text.splitlines() if line.startswith("| 3 |"))
    assert row.count(" | ") == 2  # the pipe in the message cannot open a new cell
    assert "\\|" in row
    assert "<br>second line" in row


def test_summary_stays_under_githubs_limit() -> None:
    problems = [_problem(line=i, message="x" * 600) for i in range(1, 2000)]
    _, text = summary(problems)
    assert len(text) <= 65_535
    assert text.rstrip().endswith("more: see the annotations.")
