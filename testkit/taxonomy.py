"""Taxonomy git repositories with a pull request, built the way GitHub exposes them.

Tests and `make demo` need a remote the worker can clone over `file://` whose base branch holds
some taxonomy and whose `refs/pull/<n>/head` adds or changes `qna.yaml` files, exactly the refs
a GitHub repository serves. Commits are written with git plumbing straight into a bare
repository (no work tree, no push), with a fixed identity and fixed dates and with the user's
git configuration ignored, so the same inputs always give the same SHAs.

The qna.yaml helpers emit the three real shapes (version 3 freeform skill, grounded skill with
`context`, knowledge with `document`/`document_outline`) from seed texts passed in, through
`yaml.safe_dump`, and re-parse the result so any text, hostile or not, round-trips exactly.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

GIT_NAME = "Taxonomy Contributor"
GIT_EMAIL = "contributor@example.invalid"
BASE_EPOCH = 1_719_792_000  # 2024-07-01T00:00:00Z: fixed so SHAs are reproducible
README = """\
# Taxonomy

Skills and knowledge for InstructLab, one `qna.yaml` per leaf node under
`compositional_skills/` and `knowledge/`.
"""
LAYOUT = {
    "README.md": README,
    "compositional_skills/README.md": "Compositional skills: one qna.yaml per leaf node.\n",
    "knowledge/README.md": "Knowledge: one qna.yaml per leaf node, with its documents.\n",
}

FileContent = str | bytes
FREEFORM_TASK = "Convert everyday measurements between metric and imperial units."
GROUNDED_TASK = "Answer a question using only the facts given in the context."


@dataclass(frozen=True)
class TaxonomyRemote:
    """A bare repository at `<root>/<owner>/<repo>.git` with one pull request ref."""

    git_url_base: str
    bare_path: Path
    owner: str
    repo: str
    base_branch: str
    base_sha: str
    pr_number: int
    head_ref: str
    head_sha: str
    changed_files: tuple[str, ...]

    @property
    def clone_url(self) -> str:
        return f"{self.git_url_base}/{self.owner}/{self.repo}.git"

    @property
    def pull_ref(self) -> str:
        return f"refs/pull/{self.pr_number}/head"


# --------------------------------------------------------------------------------------------
# git plumbing


def git_env(**extra: str) -> dict[str, str]:
    """The environment every git call here uses: no user/system config, fixed identity."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_TERMINAL_PROMPT="0",
        GIT_AUTHOR_NAME=GIT_NAME,
        GIT_AUTHOR_EMAIL=GIT_EMAIL,
        GIT_COMMITTER_NAME=GIT_NAME,
        GIT_COMMITTER_EMAIL=GIT_EMAIL,
    )
    env.update(extra)
    return env


def git(*args: str, stdin: bytes | None = None, env: Mapping[str, str] | None = None) -> str:
    """Run git with argv only; return stdout (stripped); raise with stderr on failure."""
    proc = subprocess.run(
        ["git", "-c", "commit.gpgsign=false", "-c", "core.hooksPath=/dev/null", *args],
        input=stdin,
        capture_output=True,
        env=git_env(**(env or {})),
        check=False,
    )
    if proc.returncode != 0:
        error = proc.stderr.decode(errors="replace")
        raise RuntimeError(f"git {' '.join(args)} failed ({proc.returncode}): {error}")
    return proc.stdout.decode().strip()


def _commit(
    bare: Path,
    parent: str | None,
    files: Mapping[str, FileContent],
    message: str,
    epoch: int,
) -> str:
    """Write `files` over the parent's tree (or an empty one) and return the new commit."""
    gd = f"--git-dir={bare}"
    entries = []
    for path, content in sorted(files.items()):
        if not path or path.startswith("/") or "\0" in path or ".." in Path(path).parts:
            raise ValueError(f"bad repository path: {path!r}")
        data = content.encode() if isinstance(content, str) else content
        blob = git(gd, "hash-object", "-w", "--stdin", stdin=data)
        entries.append(f"100644 blob {blob}\t{path}\0")
    with tempfile.TemporaryDirectory(prefix="taxonomy-index-") as tmp:
        index = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        git(gd, "read-tree", *([parent] if parent else ["--empty"]), env=index)
        git(gd, "update-index", "-z", "--index-info", stdin="".join(entries).encode(), env=index)
        tree = git(gd, "write-tree", env=index)
    date = f"{epoch} +0000"
    parents = ["-p", parent] if parent else []
    dates = {"GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date}
    return git(gd, "commit-tree", tree, *parents, "-m", message, env=dates)


def _message(verb: str, files: Mapping[str, FileContent]) -> str:
    dirs = sorted({str(Path(p).parent) for p in files if Path(p).name == "qna.yaml"})
    title = f"{verb} {', '.join(dirs)}" if dirs else f"{verb} taxonomy files"
    return f"{title}\n\nSigned-off-by: {GIT_NAME} <{GIT_EMAIL}>\n"


def build_taxonomy_remote(
    root: Path,
    owner: str,
    repo: str,
    *,
    base_files: Mapping[str, FileContent],
    pr_number: int,
    pr_files: Mapping[str, FileContent],
    base_branch: str = "main",
    head_ref: str = "add-skill",
) -> TaxonomyRemote:
    """Create `root/<owner>/<repo>.git`: `base_branch` holds the layout plus `base_files`, and
    `refs/pull/<pr_number>/head` is one commit on top adding/changing `pr_files`.

    Only the pull ref is published (as for a PR from a fork); `head_ref` is the branch name
    the PR payload would carry. Clone with `git clone <clone_url>` then
    `git fetch origin refs/pull/<n>/head`.
    """
    root = Path(root).resolve()
    bare = root / owner / f"{repo}.git"
    bare.parent.mkdir(parents=True, exist_ok=True)
    git("init", "--quiet", "--bare", f"--initial-branch={base_branch}", str(bare))
    gd = f"--git-dir={bare}"
    base_sha = _commit(bare, None, {**LAYOUT, **base_files}, "Initial taxonomy\n", BASE_EPOCH)
    git(gd, "update-ref", f"refs/heads/{base_branch}", base_sha)
    head_sha = _commit(bare, base_sha, pr_files, _message("Add", pr_files), BASE_EPOCH + 3600)
    git(gd, "update-ref", f"refs/pull/{pr_number}/head", head_sha)
    return TaxonomyRemote(
        git_url_base=f"file://{root}",
        bare_path=bare,
        owner=owner,
        repo=repo,
        base_branch=base_branch,
        base_sha=base_sha,
        pr_number=pr_number,
        head_ref=head_ref,
        head_sha=head_sha,
        changed_files=tuple(sorted(pr_files)),
    )


def add_pr_commit(remote: TaxonomyRemote, pr_number: int, files: Mapping[str, FileContent]) -> str:
    """Push-equivalent: a new commit on `refs/pull/<n>/head` changing `files`; its SHA."""
    gd = f"--git-dir={remote.bare_path}"
    ref = f"refs/pull/{pr_number}/head"
    parent = git(gd, "rev-parse", "--verify", f"{ref}^{{commit}}")
    epoch = int(git(gd, "log", "-1", "--format=%ct", parent)) + 3600
    sha = _commit(remote.bare_path, parent, files, _message("Update", files), epoch)
    git(gd, "update-ref", ref, sha, parent)
    return sha


def add_pulls(remote: TaxonomyRemote, numbers: Iterable[int]) -> dict[int, str]:
    """More PRs with the remote's PR changes, each its own commit (so its own head sha, as
    check runs are per sha) on `refs/pull/<n>/head`; {number: head sha}."""
    gd = f"--git-dir={remote.bare_path}"
    tree = git(gd, "rev-parse", f"{remote.head_sha}^{{tree}}")
    heads: dict[int, str] = {}
    for number in numbers:
        message = f"Add a skill (PR {number})\n\nSigned-off-by: {GIT_NAME} <{GIT_EMAIL}>\n"
        heads[number] = git(gd, "commit-tree", tree, "-p", remote.base_sha, "-m", message)
    updates = "".join(f"update refs/pull/{n}/head {sha}\n" for n, sha in heads.items())
    git(gd, "update-ref", "--stdin", stdin=updates.encode())
    return heads


def checkout_pr(remote: TaxonomyRemote, dest: Path, pr_number: int | None = None) -> Path:
    """Clone the remote into `dest` and check out the PR head (detached), as a worker would."""
    number = remote.pr_number if pr_number is None else pr_number
    git("clone", "--quiet", remote.clone_url, str(dest))
    git("-C", str(dest), "fetch", "--quiet", "origin", f"refs/pull/{number}/head")
    git("-C", str(dest), "checkout", "--quiet", "--detach", "FETCH_HEAD")
    return dest


# --------------------------------------------------------------------------------------------
# qna.yaml text


@dataclass(frozen=True)
class SkillSeed:
    """A skill seed example; with `context` it is a grounded skill."""

    question: str
    answer: str
    context: str | None = None


@dataclass(frozen=True)
class KnowledgeSeed:
    """A knowledge seed example: a context chunk and at least three Q&A pairs about it."""

    context: str
    questions_and_answers: tuple[tuple[str, str], ...]


class _QnaDumper(yaml.SafeDumper):
    """safe_dump with `|` block scalars for multi-line text and indented sequences, as
    contributors write them."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_QnaDumper.add_representer(str, _represent_str)


def dump_qna(document: Mapping[str, Any]) -> str:
    """YAML text for `document`; refuses to return text that would not parse back equal.

    PyYAML falls back to a quoted style whenever a block scalar cannot hold the text (trailing
    spaces, control characters, ...), so any string survives.
    """
    text = yaml.dump(
        dict(document),
        Dumper=_QnaDumper,
        sort_keys=False,
        allow_unicode=True,
        width=80,
        indent=2,
    )
    if yaml.safe_load(text) != document:
        raise ValueError("qna.yaml text does not round-trip")
    return text


def skill_qna(
    seeds: Sequence[SkillSeed],
    *,
    created_by: str = "taxonomy-contributor",
    task_description: str | None = None,
    version: int = 3,
) -> str:
    """A compositional skill (grounded when seeds carry `context`)."""
    if task_description is None:
        grounded = any(seed.context is not None for seed in seeds)
        task_description = GROUNDED_TASK if grounded else FREEFORM_TASK
    examples: list[dict[str, str]] = []
    for seed in seeds:
        example = {"context": seed.context} if seed.context is not None else {}
        examples.append({**example, "question": seed.question, "answer": seed.answer})
    return dump_qna(
        {
            "version": version,
            "created_by": created_by,
            "task_description": task_description,
            "seed_examples": examples,
        }
    )


def knowledge_qna(
    seeds: Sequence[KnowledgeSeed],
    *,
    created_by: str = "taxonomy-contributor",
    domain: str = "astronomy",
    document_outline: str = "Facts about the Moon: its orbit, phases and surface.",
    document_repo: str = "https://github.com/example/knowledge-docs",
    document_commit: str = "0123456789abcdef0123456789abcdef01234567",
    patterns: Sequence[str] = ("moon.md",),
) -> str:
    """A version 3 knowledge contribution with its `document` reference."""
    return dump_qna(
        {
            "version": 3,
            "created_by": created_by,
            "domain": domain,
            "document_outline": document_outline,
            "seed_examples": [
                {
                    "context": seed.context,
                    "questions_and_answers": [
                        {"question": q, "answer": a} for q, a in seed.questions_and_answers
                    ],
                }
                for seed in seeds
            ],
            "document": {
                "repo": document_repo,
                "commit": document_commit,
                "patterns": list(patterns),
            },
        }
    )


def attribution_txt(
    title: str = "Self-authored examples",
    link: str = "-",
    license: str = "Apache-2.0",
    creator: str = "taxonomy-contributor",
) -> str:
    """The attribution.txt the taxonomy's CI requires next to a version 2/3 qna.yaml."""
    return (
        f"Title of work: {title}\nLink to work: {link}\n"
        f"License of the work: {license}\nCreator names: {creator}\n"
    )


def leaf_files(directory: str, qna_text: str, attribution: str | None = None) -> dict[str, str]:
    """`{dir}/qna.yaml` and `{dir}/attribution.txt`, ready for base_files/pr_files."""
    directory = directory.strip("/")
    return {
        f"{directory}/qna.yaml": qna_text,
        f"{directory}/attribution.txt": attribution
        if attribution is not None
        else attribution_txt(),
    }


def default_skill_seeds() -> list[SkillSeed]:
    conversions = [
        ("How many centimetres are in 12 inches?", "12 inches is 30.48 centimetres."),
        ("Convert 5 miles to kilometres.", "5 miles is about 8.05 kilometres."),
        ("What is 100 degrees Fahrenheit in Celsius?", "100 °F is about 37.8 °C."),
        ("How many pounds is 3 kilograms?", "3 kilograms is about 6.61 pounds."),
        ("Convert 2 US gallons to litres.", "2 US gallons is about 7.57 litres."),
    ]
    return [SkillSeed(q, a) for q, a in conversions]


def default_grounded_seeds() -> list[SkillSeed]:
    texts = [
        (
            "The meeting moved from Tuesday to Thursday at 3 pm.",
            "When is the meeting now?",
            "Thursday at 3 pm.",
        ),
        (
            "Alice ordered two coffees and a muffin for $9.50.",
            "What did Alice pay?",
            "She paid $9.50.",
        ),
        (
            "The library closes at 8 pm on weekdays and 5 pm on Saturdays.",
            "When does the library close on Saturday?",
            "At 5 pm.",
        ),
        (
            "Train 42 departs platform 3 at 07:15 and arrives at 09:40.",
            "How long is the journey on train 42?",
            "2 hours and 25 minutes.",
        ),
        (
            "The recipe needs 200 g flour, 2 eggs and 100 ml milk.",
            "How many eggs does the recipe need?",
            "Two eggs.",
        ),
    ]
    return [SkillSeed(q, a, c) for c, q, a in texts]


def default_knowledge_seeds() -> list[KnowledgeSeed]:
    chunks = [
        (
            "The Moon orbits Earth once every 27.3 days (a sidereal month).\n"
            "Because Earth also moves around the Sun, its phases repeat every 29.5 days.",
            [
                ("How long does the Moon take to orbit Earth?", "About 27.3 days."),
                ("How often do the Moon's phases repeat?", "Every 29.5 days."),
                ("What is a sidereal month?", "The Moon's 27.3-day orbit relative to the stars."),
            ],
        ),
        (
            "The Moon is on average 384,400 km from Earth, about 30 Earth diameters.",
            [
                ("How far away is the Moon?", "About 384,400 km on average."),
                ("How many Earth diameters away is the Moon?", "About 30."),
                ("Is the Moon's distance constant?", "No, 384,400 km is an average."),
            ],
        ),
        (
            "The dark plains on the near side, called maria, are ancient basalt flows.",
            [
                ("What are the lunar maria?", "Dark plains made of ancient basalt."),
                ("Where are most maria?", "On the near side of the Moon."),
                ("What rock forms the maria?", "Basalt from ancient lava flows."),
            ],
        ),
        (
            "Ocean tides on Earth are raised mainly by the Moon's gravity, with a smaller "
            "contribution from the Sun.",
            [
                ("What mainly causes ocean tides?", "The Moon's gravity."),
                ("Does the Sun affect tides?", "Yes, but less than the Moon does."),
                ("Which body contributes most to tides?", "The Moon."),
            ],
        ),
        (
            "Apollo 11 landed on the Moon on 20 July 1969; Neil Armstrong stepped out first.",
            [
                ("When did Apollo 11 land on the Moon?", "On 20 July 1969."),
                ("Who first walked on the Moon?", "Neil Armstrong."),
                ("Which mission first landed people on the Moon?", "Apollo 11."),
            ],
        ),
    ]
    return [KnowledgeSeed(context, tuple(pairs)) for context, pairs in chunks]


# --------------------------------------------------------------------------------------------
# Invalid qna.yaml files, one per way INVALID.md lists (added for instruct_lab_bot.core.validation)


@dataclass(frozen=True)
class InvalidQna:
    """A qna.yaml broken in one way that `../shared/taxonomy/INVALID.md` lists (modelled on its
    real cases, not copied), and the problems the validator must report for it.

    `expected` holds (line, level, title) triples; with `exact` the file has no other problem.
    Each case has its own directory, so all of them fit in one pull request.
    """

    name: str
    section: str  # INVALID.md section
    path: str
    text: str | bytes
    attribution: str | None
    expected: tuple[tuple[int, str, str], ...]
    exact: bool = True

    def files(self) -> dict[str, FileContent]:
        """The case as PR files (`path`, plus attribution.txt unless it is missing)."""
        files: dict[str, FileContent] = {self.path: self.text}
        if self.attribution is not None:
            files[str(Path(self.path).with_name("attribution.txt"))] = self.attribution
        return files


def qna_text(lines: Sequence[str], *, final_newline: bool = True) -> str:
    """Lines joined as a file, so a test can point at line `i + 1` of `lines`."""
    return "\n".join(lines) + ("\n" if final_newline else "")


def line_of(lines: Sequence[str], needle: str, nth: int = 1) -> int:
    """1-based number of the `nth` line of `lines` that starts with `needle`."""
    hits = [i + 1 for i, line in enumerate(lines) if line.startswith(needle)]
    return hits[nth - 1]


def skill_lines(
    seeds: Sequence[SkillSeed] | None = None, *, version: str = "3", header: Sequence[str] = ()
) -> list[str]:
    """A version 3 skill written the way contributors write it, one string per line."""
    import json

    lines = [*header, f"version: {version}", "created_by: taxonomy-contributor"]
    lines.append(f"task_description: {FREEFORM_TASK}")
    lines.append("seed_examples:")
    for seed in default_skill_seeds() if seeds is None else seeds:
        if seed.context is not None:
            lines += ["  - context: |", *(f"      {c}" for c in seed.context.splitlines())]
            lines.append(f"    question: {json.dumps(seed.question, ensure_ascii=False)}")
        else:
            lines.append(f"  - question: {json.dumps(seed.question, ensure_ascii=False)}")
        lines.append(f"    answer: {json.dumps(seed.answer, ensure_ascii=False)}")
    return lines


def knowledge_lines(
    seeds: Sequence[KnowledgeSeed] | None = None, *, version: str = "3"
) -> list[str]:
    """A version 3 knowledge file with `|` contexts, one string per line."""
    import json

    lines = [
        f"version: {version}",
        "domain: astronomy",
        "created_by: taxonomy-contributor",
        "document_outline: Facts about the Moon, its orbit, phases and surface.",
        "seed_examples:",
    ]
    for seed in default_knowledge_seeds() if seeds is None else seeds:
        lines += ["  - context: |", *(f"      {c}" for c in seed.context.splitlines())]
        lines.append("    questions_and_answers:")
        for question, answer in seed.questions_and_answers:
            lines.append(f"      - question: {json.dumps(question, ensure_ascii=False)}")
            lines.append(f"        answer: {json.dumps(answer, ensure_ascii=False)}")
    lines += [
        "document:",
        "  repo: https://github.com/example/knowledge-docs",
        "  commit: 0123456789abcdef0123456789abcdef01234567",
        "  patterns:",
        "    - moon.md",
    ]
    return lines


def invalid_qna_cases() -> list[InvalidQna]:
    """One case per way INVALID.md lists; titles are those of instruct_lab_bot.validation."""
    att = attribution_txt()
    cases: list[InvalidQna] = []

    def add(
        name: str,
        section: str,
        lines: Sequence[str] | str | bytes,
        expected: Sequence[tuple[int, str, str]],
        *,
        kind: str = "compositional_skills",
        attribution: str | None = att,
        file_name: str = "qna.yaml",
        exact: bool = True,
    ) -> None:
        text = lines if isinstance(lines, str | bytes) else qna_text(lines)
        path = f"{kind}/invalid/{name.replace('-', '_')}/{file_name}"
        cases.append(InvalidQna(name, section, path, text, attribution, tuple(expected), exact))

    fail, warn, note = "failure", "warning", "notice"
    five = default_skill_seeds()

    # 1. fewer than 5 seed examples (PR #1155: three); identical seed examples (uniqueItems)
    lines = skill_lines(five[:3])
    add(
        "too-few-seed-examples",
        "1",
        lines,
        [(line_of(lines, "seed_examples:"), fail, "Too few seed examples")],
    )
    lines = skill_lines([*five[:4], five[1]])
    add(
        "duplicate-seed-example",
        "1",
        lines,
        [(line_of(lines, "  - question", 5), fail, "Duplicate seed example")],
    )

    # 2. created_by missing, misspelt, empty, dotted (PR #224), spaced (PR #1269)
    lines = [line for line in skill_lines() if not line.startswith("created_by")]
    add("created-by-missing", "2", lines, [(1, fail, "Missing created_by")])
    lines = skill_lines(header=["# Unit conversions, for a unit test", ""])
    lines[line_of(lines, "created_by") - 1] = "createdby: taxonomy-contributor"
    add(
        "created-by-misspelt",
        "2",
        lines,
        [
            (line_of(lines, "createdby"), fail, "Unexpected key createdby"),
            (3, fail, "Missing created_by"),
        ],
    )
    lines = knowledge_lines()
    lines.remove("created_by: taxonomy-contributor")
    lines.insert(0, "created_by:")
    add("created-by-empty", "2", lines, [(1, fail, "Missing value")], kind="knowledge")
    lines = [
        line.replace("created_by", "created.by")
        .replace("task_description", "task.description")
        .replace("seed_examples", "seed.examples")
        for line in skill_lines()
    ]
    add(
        "dotted-keys",
        "2",
        lines,
        [
            (1, fail, "Missing created_by"),
            (1, fail, "Missing task_description"),
            (1, fail, "Missing seed_examples"),
            (line_of(lines, "created.by"), fail, "Unexpected key created.by"),
            (line_of(lines, "task.description"), fail, "Unexpected key task.description"),
            (line_of(lines, "seed.examples"), fail, "Unexpected key seed.examples"),
        ],
    )
    lines = [line.replace("seed_examples:", "seed examples:") for line in knowledge_lines()]
    add(
        "seed-examples-with-space",
        "2",
        lines,
        [
            (1, fail, "Missing seed_examples"),
            (line_of(lines, "seed examples:"), fail, "Unexpected key seed examples"),
        ],
        kind="knowledge",
    )

    # 3. version: 2 (as the README says for skills), missing, quoted; knowledge version 2
    add("version-2-skill", "3", skill_lines(version="2"), [(1, fail, "Wrong version")])
    lines = skill_lines(header=["# no version key: version 1 as declared"])[:]
    lines.remove("version: 3")
    add("version-missing", "3", lines, [(2, fail, "Missing version")])
    add(
        "version-quoted",
        "3",
        skill_lines(version='"3"'),
        [(1, fail, "Wrong kind of value"), (1, fail, "Wrong version")],
    )
    old = [
        "version: 2",
        "task_description: Facts about the Moon.",
        "created_by: taxonomy-contributor",
        "domain: astronomy",
        "seed_examples:",
        *[f"  - question: Moon question {i}?\n    answer: Moon answer {i}." for i in range(5)],
        "document:",
        "  repo: https://github.com/example/knowledge-docs",
        "  commit: 0123456789abcdef0123456789abcdef01234567",
        "  patterns:",
        "    - moon.md",
    ]
    add(
        "knowledge-version-2",
        "3",
        qna_text(old),
        [
            (1, fail, "Wrong version"),
            (2, fail, "Unexpected key task_description"),
            (1, fail, "Missing document_outline"),
            (6, fail, "Unexpected key question"),
            (6, fail, "Missing context"),
        ],
        kind="knowledge",
        exact=False,
    )

    # 4. tabs (a YAML syntax error before yamllint), yamllint errors and warnings
    lines = skill_lines()
    at = line_of(lines, "  - question", 2)
    lines[at - 1] = "\t" + lines[at - 1].lstrip()
    add("tab-indentation", "4", lines, [(at, fail, "YAML syntax error")])
    lines = skill_lines()
    at = line_of(lines, "    answer", 3)
    lines[at - 1] += "  "
    add("trailing-spaces", "4", lines, [(at, fail, "Trailing spaces")])
    lines = skill_lines()
    add(
        "no-final-newline",
        "4",
        qna_text(lines, final_newline=False),
        [(len(lines), fail, "No newline at end of file")],
    )
    lines = skill_lines()
    at = line_of(lines, "    answer", 2)
    lines.insert(at, "    answer: A second answer for the same question.")
    add("duplicate-key", "4", lines, [(at + 1, fail, "Duplicate key")])
    lines = skill_lines()
    lines[line_of(lines, "seed_examples:") - 1] = "seed_examples:xx"
    add(
        "missing-space-after-colon",
        "4",
        lines,
        [(line_of(lines, "seed_examples:xx"), fail, "YAML syntax error")],
    )
    lines = [*skill_lines(), ""]
    add("trailing-blank-line", "4", lines, [(len(lines), warn, "Extra blank lines")])
    lines = [line.replace("    - moon.md", "  - moon.md") for line in knowledge_lines()]
    add(
        "inconsistent-indentation",
        "4",
        lines,
        [(line_of(lines, "  - moon.md"), warn, "Inconsistent indentation")],
        kind="knowledge",
    )

    # 5. knowledge: 2 Q&A pairs in a seed example (docs/template_qna.yaml), empty context,
    #    bare `question:`, seed examples without questions_and_answers (PR #1474)
    seeds = default_knowledge_seeds()
    short = KnowledgeSeed(seeds[3].context, seeds[3].questions_and_answers[:2])
    lines = knowledge_lines([*seeds[:3], short, seeds[4]])
    add(
        "too-few-questions-and-answers",
        "5",
        lines,
        [(line_of(lines, "    questions_and_answers:", 4), fail, "Too few questions and answers")],
        kind="knowledge",
    )
    lines = knowledge_lines()
    at = line_of(lines, "  - context: |", 2)
    while not lines[at].startswith("    questions_and_answers"):
        del lines[at]
    add("empty-context", "5", lines, [(at, fail, "Empty value")], kind="knowledge")
    lines = knowledge_lines()
    at = line_of(lines, "      - question", 7)
    lines[at - 1] = "      - question:"
    add("bare-question", "5", lines, [(at, fail, "Missing value")], kind="knowledge")
    lines = knowledge_lines()
    starts = [line_of(lines, "  - context: |", n) for n in (3, 4, 5)]
    kept: list[str] = []
    dropping = False
    for i, line in enumerate(lines, start=1):
        if line.startswith("    questions_and_answers") and i > starts[0]:
            dropping = True
        elif dropping and not line.startswith("      "):
            dropping = False
        if not dropping and not line.startswith("    - moon.md") and line != "  patterns:":
            kept.append(line)
    add(
        "missing-questions-and-answers",
        "5",
        kept,
        [
            *[
                (line_of(kept, "  - context: |", n), fail, "Missing questions_and_answers")
                for n in (3, 4, 5)
            ],
            (line_of(kept, "document:"), fail, "Missing patterns"),
        ],
        kind="knowledge",
    )

    # 6. longer than the README's word limits: notices only, CI passes such files
    words = " ".join(["measure"] * 480)
    long = [SkillSeed(s.question, f"{s.answer} {words}") for s in five]
    lines = skill_lines(long)
    add(
        "long-seed-text",
        "6",
        lines,
        [(line_of(lines, "seed_examples:"), note, "Longer than the README suggests")],
    )
    big = KnowledgeSeed(" ".join(["lunar"] * 520), seeds[0].questions_and_answers)
    lines = knowledge_lines([big, *seeds[1:]])
    add(
        "long-context",
        "6",
        lines,
        [(line_of(lines, "  - context: |"), note, "Longer than the README suggests")],
        kind="knowledge",
    )

    # 7. other real failures: qna.yml (PR #1074), a number answer (PR #382), a top-level
    #    list, an empty file (a warning), attribution.txt missing or empty (PR #1345)
    add(
        "qna-yml",
        "7",
        skill_lines(),
        [(1, fail, "File must be named qna.yaml")],
        file_name="qna.yml",
    )
    lines = skill_lines()
    at = line_of(lines, "    answer", 4)
    lines[at - 1] = "    answer: 35.67"
    add("number-answer", "7", lines, [(at, fail, "Wrong kind of value")])
    add(
        "top-level-list",
        "7",
        qna_text(["# a list, not a mapping", '["a", "b"]']),
        [(2, fail, "Not a set of keys")],
    )
    add("empty-file", "7", qna_text(["# nothing here yet"]), [(1, warn, "Empty file")])
    add(
        "attribution-missing",
        "7",
        skill_lines(),
        [(1, fail, "attribution.txt missing")],
        attribution=None,
    )
    add(
        "attribution-empty",
        "7",
        skill_lines(),
        [(1, fail, "attribution.txt empty")],
        attribution="",
    )
    return cases


def file_at(remote: TaxonomyRemote, sha: str, path: str) -> str:
    """A file's exact text at a commit of the bare taxonomy remote (for the contents API)."""
    shown = subprocess.run(
        ["git", "--git-dir", str(remote.bare_path), "show", f"{sha}:{path}"],
        capture_output=True,
        check=True,
        env=git_env(),
    )
    return shown.stdout.decode()
