"""The file names the taxonomy CI looks for, and the limits that keep hostile input cheap and
every payload within GitHub's caps."""

from instructlab.schema.taxonomy import DEFAULT_TAXONOMY_FOLDERS

QNA_NAME = "qna.yaml"
ATTRIBUTION_NAME = "attribution.txt"
TAXONOMY_FOLDERS: tuple[str, ...] = tuple(DEFAULT_TAXONOMY_FOLDERS)
YAML_SUFFIXES = (".yaml", ".yml")

MAX_FILE_BYTES = 256 * 1024  # real qna.yaml files are 1-25 KB; bounds the worst case to ~1.5 s
MAX_DEPTH = 32  # a qna.yaml is 6 levels deep; bounds every recursion below
MAX_NODES = 100_000  # expanded through aliases
MAX_CHARS = 4 * MAX_FILE_BYTES  # scalar text, expanded through aliases
MAX_SEED_EXAMPLES = 50  # per file; upstream asks for 5 (the schema's minimum) and sets no maximum
MAX_SEED_QUESTIONS = 100  # per file, counting each knowledge question; precheck asks each one
DEFAULT_KNOWLEDGE_HOSTS: tuple[str, ...] = ("github.com",)
MAX_PER_STEP = 50  # problems reported per step (lint, schema, lengths) and file
ANNOTATION_MESSAGE_BYTES = 64 * 1024
ANNOTATION_TITLE_CHARS = 255
ANNOTATIONS_PER_REQUEST = 50
SUMMARY_CHARS = 65_535
CI_MESSAGE_CHARS = 200  # the parser prints validation_error.message[-200:]

SKILL_TOTAL_WORDS = 2300
CONTEXT_WORDS = 500
QNA_WORDS = 250
