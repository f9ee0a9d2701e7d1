"""Check changed taxonomy files the way the taxonomy's CI does, with a file and line per problem.

The taxonomy repository's CI (`scripts/check-yaml.py` calling `instructlab.schema.taxonomy.
TaxonomyParser`) decides whether a `qna.yaml` is acceptable. The parser cannot serve the bot as
it is: it reads files from disk, prints what it finds, shells out to `yamllint` and, once per
schema error, to mikefarah's `yq` for a line number (line 1 without it), and raises on a YAML
syntax error. So this package runs the same steps in the same order, in process, on text passed
in (`checks`): the file name, a safe YAML load (`yaml_reader`), empty / non-mapping documents,
the schema version (changed files against the newest, as CI does), yamllint with the package's
configuration (`lint`: the caller passes the linter, `adapters.yamllint` runs the real one),
JSON-schema validation with the package's own schema files (`schema`, `schema_problems`),
the README's lengths (`lengths`) and `check-yaml.py`'s `attribution.txt` rule. Every finding
becomes a `Problem` at the line of the offending key or value; `report` turns problems into
GitHub's annotations and summary. The words are in `core.messages.validation`.

Pure and synchronous apart from the `lint` callable: no network, no files, no subprocess.
Hostile input (huge files, deep nesting, alias bombs, recursive aliases, control characters,
bad UTF-8) is capped before it can cost memory or time; the worst case is a few seconds of CPU,
so async callers should run `validate_file` in a thread (`asyncio.to_thread`).
"""

from instruct_lab_bot.core.validation.checks import taxonomy_files, validate_file
from instruct_lab_bot.core.validation.limits import (
    ANNOTATION_MESSAGE_BYTES,
    ANNOTATION_TITLE_CHARS,
    ANNOTATIONS_PER_REQUEST,
    ATTRIBUTION_NAME,
    CI_MESSAGE_CHARS,
    CONTEXT_WORDS,
    MAX_CHARS,
    MAX_DEPTH,
    MAX_FILE_BYTES,
    MAX_NODES,
    MAX_PER_STEP,
    MAX_SEED_EXAMPLES,
    MAX_SEED_QUESTIONS,
    QNA_NAME,
    QNA_WORDS,
    SKILL_TOTAL_WORDS,
    SUMMARY_CHARS,
    TAXONOMY_FOLDERS,
    YAML_SUFFIXES,
)
from instruct_lab_bot.core.validation.lint import Lint, LintFinding, parse_parsable
from instruct_lab_bot.core.validation.problem import Level, Problem
from instruct_lab_bot.core.validation.report import annotations, batches, failed, summary
from instruct_lab_bot.core.validation.rules import (
    DEFAULT_RULES,
    RepoFile,
    Rules,
    commit_problem,
    file_problem,
    pattern_problem,
    repo_url_problem,
)
from instruct_lab_bot.core.validation.yaml_reader import YamlRefused, load_bounded

__all__ = [
    "ANNOTATIONS_PER_REQUEST",
    "ANNOTATION_MESSAGE_BYTES",
    "ANNOTATION_TITLE_CHARS",
    "ATTRIBUTION_NAME",
    "CI_MESSAGE_CHARS",
    "CONTEXT_WORDS",
    "DEFAULT_RULES",
    "MAX_CHARS",
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "MAX_NODES",
    "MAX_PER_STEP",
    "MAX_SEED_EXAMPLES",
    "MAX_SEED_QUESTIONS",
    "QNA_NAME",
    "QNA_WORDS",
    "SKILL_TOTAL_WORDS",
    "SUMMARY_CHARS",
    "TAXONOMY_FOLDERS",
    "YAML_SUFFIXES",
    "Level",
    "Lint",
    "LintFinding",
    "Problem",
    "RepoFile",
    "Rules",
    "YamlRefused",
    "annotations",
    "batches",
    "commit_problem",
    "failed",
    "file_problem",
    "load_bounded",
    "parse_parsable",
    "pattern_problem",
    "repo_url_problem",
    "summary",
    "taxonomy_files",
    "validate_file",
]
