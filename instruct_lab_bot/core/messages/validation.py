"""What a contributor reads about a changed taxonomy file: problem titles and messages, and the
check run's Markdown summary (pure).

Messages are plain text (GitHub shows annotation messages verbatim); the summary helpers escape
whatever they put into Markdown. `core.validation` decides what is wrong and where; this module
only words it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from instruct_lab_bot.core.messages.format import escape_md

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
TITLE_REPO = "Knowledge repository not allowed"
TITLE_COMMIT = "Knowledge commit must be a full sha"
TITLE_PATTERN = "Knowledge pattern not allowed"
TITLE_TOO_MANY_SEEDS = "Too many seed examples"
TITLE_TOO_MANY_CHANGED = "Too many changed files"
UNREADABLE_TITLES = {
    "symlink": "Symbolic link",
    "submodule": "Submodule",
    "dir": "Folder, not a file",
    "missing": "File not found at this commit",
    "error": "Could not read this file",
    "file": "File content not available",
}

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

SYNTAX_HINTS = {  # the first key found in PyYAML's problem picks the hint
    "'\\t'": "YAML does not allow tabs for indentation: indent with spaces (tabs are fine "
    "inside `|` text blocks).",
    "could not find expected ':'": "A line among `key: value` lines is not one: a key may be "
    "missing the space after its colon (`seed_examples:` with the items on the next lines), or "
    "a text needs a `|` block or quotes.",
    "mapping values are not allowed": "A value contains `: ` (colon and space): put the whole "
    "value in quotes or write it as a `|` block.",
    "expected <block end>": "The indentation does not line up: keys at the same level must "
    "start in the same column.",
    "single document": "The file holds a second YAML document: remove the `---` line in the "
    "middle of the file.",
    "anchor": "Remove the `&name` / `*name` markers, or give every anchor a unique name.",
    "alias": "A `*name` alias refers to an anchor `&name` that is not defined above it.",
    "special characters": "The file contains a control character that YAML does not allow: "
    "delete it.",
    "end of stream": "A quote or bracket is not closed.",
    "could not read this value": "Quote the value to keep it as text.",
}


def syntax_bad_character(code: int, reason: str) -> str:
    return f"unacceptable character #x{code:04x}: {reason}"  # PyYAML's own words


def syntax_unreadable(error: str) -> str:
    return f"could not read this value ({shorten(error, 100)})"


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
    hint = next((h for key, h in SYNTAX_HINTS.items() if key in problem), SYNTAX_DEFAULT_HINT)
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


def msg_repo_not_text() -> str:
    return "`repo:` must be the https address of a public repository, as text."


def msg_repo_url(url: str, hosts: Sequence[str]) -> str:
    where = " or ".join(f"https://{h}/<owner>/<repo>" for h in hosts) or "(no host is allowed)"
    return (
        f'"{shorten(url, 200)}" is not a repository the bot clones. Use {where}: https only, '
        "with no user name, password, port, query or fragment. The bot does not run `ilab` "
        "until this is fixed."
    )


def msg_commit(commit: object) -> str:
    shown = yaml_scalar(commit) if commit is not None else "missing"
    return (
        f"`commit:` is {shown}; it must be the full 40-character sha of the commit that holds "
        "the documents (not a branch or tag, which can change after review)."
    )


def msg_pattern_empty() -> str:
    return "A pattern must be non-empty text, such as `*.md` or `docs/chapter1.md`."


def msg_pattern_characters(pattern: str) -> str:
    return (
        f'The pattern "{escape_code(shorten(pattern, 200))}" contains a backslash or a control '
        "character. Use `/` between folders."
    )


def msg_pattern_absolute(pattern: str) -> str:
    return (
        f'The pattern "{escape_code(shorten(pattern, 200))}" is an absolute path. Patterns name '
        "files inside the repository: write it relative to the repository's top folder."
    )


def msg_pattern_parent(pattern: str) -> str:
    return (
        f'The pattern "{escape_code(shorten(pattern, 200))}" contains `..`, which points '
        "outside the repository. Write the path from the repository's top folder."
    )


def msg_too_many_seeds(count: int, limit: int) -> str:
    return (
        f"This file has {count:,} seed examples; the bot accepts at most {limit:,} per file "
        "(the taxonomy asks for 5). Keep the best ones."
    )


def msg_too_many_questions(count: int, limit: int) -> str:
    return (
        f"This file has {count:,} seed questions; the bot accepts at most {limit:,} per file "
        "(a knowledge file usually has 5 contexts with 3 questions each). Keep the best ones."
    )


def msg_too_many_changed(limit: int) -> str:
    return (
        f"This pull request changes at least {limit:,} files, more than GitHub lists for one "
        "commit, so the bot cannot check them all and runs nothing. Split it into smaller "
        "pull requests."
    )


def unreadable(kind: str, sha: str, detail: str = "") -> tuple[str, str]:
    """(title, message) for a changed file the bot could not read as a regular file."""
    title = UNREADABLE_TITLES.get(kind, UNREADABLE_TITLES["error"])
    at = f"at commit {sha[:12]}"
    messages = {
        "symlink": f"This path is a symbolic link {at}. Taxonomy files must be regular files: "
        "replace the link with the file itself.",
        "submodule": f"This path is a git submodule {at}. Taxonomy files must be regular files "
        "in this repository.",
        "dir": f"This path is a folder {at}, not a file.",
        "missing": f"The file could not be found {at} (it may have been removed or the branch "
        "force-pushed). Push again to have it checked.",
        "file": f"GitHub did not send the file's content {at} (files over 1 MB have none). "
        "Seed files are a few kilobytes: keep only the seed examples.",
    }
    reason = f" ({shorten(detail, 200)})" if detail else ""
    default = f"The bot could not read this file {at}{reason}, so it cannot pass. Comment a "
    default += "command again or push to have it checked again."
    return title, messages.get(kind, default)


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
WHAT_SKILL_TOTAL = "The text of all seed examples (context, question and answer)"


# -- yamllint ----------------------------------------------------------------------------------


def msg_lint(description: str, rule: str) -> str:
    hint = LINT_HINTS.get(rule, "")
    return f"{sentence(description)}. {hint}".strip()


def msg_yamllint(line: int, column: int, description: str, rule: str) -> str:
    """yamllint's own finding, as CI prints it."""
    return f"yamllint: {line}:{column} {description} ({rule})"


# -- shared wording -----------------------------------------------------------------------------


def sentence(text: str) -> str:
    """`text` with a capital first letter."""
    return text[:1].upper() + text[1:]


def kind_of(value: object) -> str:
    """What a YAML value was read as, in words ("read as a number (3)")."""
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return f"read as true/false ({str(value).lower()}); YAML reads yes/no/on/off that way"
    if isinstance(value, int | float):
        return f"read as a number ({yaml_scalar(value)})"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "a set of keys"
    return f"of YAML type {type(value).__name__} ({shorten(str(value), 40)})"


def yaml_scalar(value: object) -> str:
    """A scalar as it looks in YAML (`true`, not `True`), short enough to quote."""
    return shorten(str(value).lower() if isinstance(value, bool) else str(value), 40)


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
SUMMARY_CELL_CHARS = 600  # of a problem's title or message in a summary table cell
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


def summary_head(title: str, files: int) -> str:
    return SUMMARY_HEAD.format(title=escape_md(title), files=_plural(files, "file"))


def summary_clean(path: str) -> str:
    return SUMMARY_CLEAN.format(path=escape_code(path))


def summary_file(path: str) -> str:
    return SUMMARY_FILE.format(path=escape_code(path))


def summary_row(line: int, level: str, title: str, message: str) -> str:
    return f"| {line} | {LEVEL_LABELS[level]} | **{_cell(title)}**: {_cell(message)} |"


def summary_more(count: int) -> str:
    return "\n" + SUMMARY_MORE.format(count=count)


# -- cutting and escaping ----------------------------------------------------------------------
# `format.cut` appends a sentence about GitHub's limit and `format.table_cell` trims before its
# "…" and keeps lone CRs; titles, quotes and cells here end in a bare "…", so they keep their own.


def shorten(text: str, limit: int) -> str:
    """At most `limit` characters, ending in "…" when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def shorten_bytes(text: str, limit: int) -> str:
    """At most `limit` UTF-8 bytes, ending in "…" when cut."""
    data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return text
    return data[: limit - 3].decode("utf-8", "ignore") + "…"


def escape_code(text: str) -> str:
    """Text for inside a single-backtick code span: no backticks, no line breaks."""
    return text.replace("`", "'").replace("\r", " ").replace("\n", " ")


def _cell(text: str) -> str:
    cell = escape_md(shorten(text.strip(), SUMMARY_CELL_CHARS))
    return cell.replace("\r", "").replace("\n", "<br>")


# -- bounds on one validation (the dispatcher's; see ILAB_BOT_VALIDATE_*) -------------------

TITLE_TOO_MANY_FILES = "Too many taxonomy files"
TITLE_NOT_CHECKED = "Not checked in time"


def msg_too_many_files(count: int, limit: int) -> str:
    return (
        f"This pull request changes {count} taxonomy files; the bot checks at most {limit} "
        "in one pull request, so none of them was checked. Split the change into smaller "
        "pull requests."
    )


def msg_not_checked(seconds: float) -> str:
    return (
        f"The bot could not check this file within {seconds:g} seconds, so it is not "
        "accepted. Push again or ask the bot again later to have it checked."
    )
