"""Issue 12, findings 1, 3 and 4, and "validation combines today's file list with contents at
the job's sha": each reproduced the way an attacker would, through the real dispatcher (the
spec-validating GitHub emulator, real Redis) where the behaviour is end to end, plus the pure
rules and a property test of the YAML readers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import posixpath
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from instruct_lab_bot.core import validation
from instruct_lab_bot.core.ilab import PROFILES
from instruct_lab_bot.core.precheck import Seed
from instruct_lab_bot.core.settings import Settings
from instruct_lab_bot.core.validation import (
    RepoFile,
    YamlRefused,
    commit_problem,
    file_problem,
    load_bounded,
    pattern_problem,
    repo_url_problem,
    validate_file,
)
from instruct_lab_bot.services import precheck
from testkit.harness import run_bot
from testkit.taxonomy import (
    KnowledgeSeed,
    SkillSeed,
    attribution_txt,
    default_knowledge_seeds,
    default_skill_seeds,
    knowledge_qna,
    leaf_files,
    skill_qna,
)
from tests.fixtures.bot import post_webhook
from tests.fixtures.taxonomy import PR_SKILL_DIR, TaxonomyFactory
from tests.fixtures.world import World, publish_pull

OWNER, REPO, PR = "instructlab", "taxonomy", 7
VALIDATE = "instruct-lab-bot/validate"
GENERATE = "instruct-lab-bot/generate"
QNA = f"{PR_SKILL_DIR}/qna.yaml"
KNOWLEDGE_DIR = "knowledge/science/astronomy/moon"
HOSTS = ("github.com",)


def _lint(text: str) -> list[validation.LintFinding]:
    return []  # yamllint's findings are not what these tests are about


def _annotations(world: World, run: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        a
        for h in world.gh.check_run_history(run["id"])
        for a in (h.get("output") or {}).get("annotations", [])
    ]


async def _generate(world: World, app: Settings | None = None) -> tuple[str, dict[str, Any]]:
    """`generate` on PR 7 through the real dispatcher; (the bot's reply, the validate run)."""

    def answered() -> bool:
        return bool(world.bot_comments() or world.gh.check_runs(OWNER, REPO, name=GENERATE))

    async with run_bot(app or world.settings, workers=0) as bot:
        status, _ = await world.comment(bot)
        assert status == 202
        async with asyncio.timeout(60):
            await world.gh.wait_for(answered)
    assert not world.gh.check_runs(OWNER, REPO, name=GENERATE), "generate was queued"
    (reply,) = [c["body"] for c in world.bot_comments()]
    (run,) = world.gh.check_runs(OWNER, REPO, name=VALIDATE)
    return reply, run


def _line(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


# -- finding 1: knowledge document.repo / document.patterns ----------------------------------

BAD_REPOS = [
    "file:///etc",
    "file:///proc/self/environ",
    "http://169.254.169.254/latest/meta-data",
    "http://github.com/instructlab/taxonomy",
    "https://user:token@github.com/instructlab/taxonomy",
    "https://github.com:8443/instructlab/taxonomy",
    "https://github.com/instructlab/taxonomy?ref=x",
    "https://github.com/instructlab/taxonomy#main",
    "https://github.com.evil.example/instructlab/taxonomy",
    "https://evil.example/instructlab/taxonomy",
    "https://github.com/instructlab",
    "https://github.com/instructlab/taxonomy/tree/main",
    "https://github.com/../etc",
    "https://github.com/instructlab/..",
    "https://github.com/instructlab/taxonomy\n",
    "ssh://git@github.com/instructlab/taxonomy",
    "git@github.com:instructlab/taxonomy.git",
    "ext::sh -c touch% /tmp/pwned",
    "/etc/passwd",
    "",
]
GOOD_REPOS = [
    "https://github.com/instructlab/taxonomy",
    "https://github.com/instructlab/taxonomy.git",
    "https://github.com/instructlab/taxonomy/",
    "https://GitHub.com/instructlab/instructlab.git",
]


@pytest.mark.parametrize("url", BAD_REPOS)
def test_repo_outside_the_allow_list_is_refused(url: str) -> None:
    assert repo_url_problem(url, HOSTS) is not None


@pytest.mark.parametrize("url", GOOD_REPOS)
def test_https_github_repo_is_accepted(url: str) -> None:
    assert repo_url_problem(url, HOSTS) is None


def test_the_host_allow_list_is_the_admins() -> None:
    assert repo_url_problem("https://git.example.org/a/b", ("git.example.org",)) is None
    assert repo_url_problem("https://github.com/a/b", ("git.example.org",)) is not None
    assert repo_url_problem("https://github.com/a/b", ()) is not None


@pytest.mark.parametrize(
    "commit", ["main", "HEAD", "v1.0", "951999a", "951999afdc59c46d325493568193b40bd5439c9e0", ""]
)
def test_commit_must_be_a_full_sha(commit: str) -> None:
    assert commit_problem(commit) is not None
    assert commit_problem("951999afdc59c46d325493568193b40bd5439c9e") is None


@pytest.mark.parametrize(
    "pattern",
    ["../secret.md", "docs/../../x", "..", "/etc/passwd", "~/.ssh/id_rsa", "a\\b.md", "a\0b", " "],
)
def test_pattern_leaving_the_repository_is_refused(pattern: str) -> None:
    assert pattern_problem(pattern) is not None


@pytest.mark.parametrize("pattern", ["*.md", "docs/**/*.md", "a..b.md", "folder/knowledge_doc.md"])
def test_relative_pattern_is_accepted(pattern: str) -> None:
    assert pattern_problem(pattern) is None


def _knowledge(repo: str, commit: str, patterns: tuple[str, ...]) -> str:
    return knowledge_qna(
        default_knowledge_seeds(), document_repo=repo, document_commit=commit, patterns=patterns
    )


def test_document_problems_are_failures_at_their_lines() -> None:
    text = _knowledge("file:///etc", "main", ("moon.md", "../../../../etc/passwd"))
    problems = validate_file(
        f"{KNOWLEDGE_DIR}/qna.yaml", text, attribution=attribution_txt(), lint=_lint
    )
    found = {(p.line, p.level, p.title) for p in problems}
    assert found == {
        (_line(text, "repo:"), "failure", "Knowledge repository not allowed"),
        (_line(text, "commit:"), "failure", "Knowledge commit must be a full sha"),
        (_line(text, "../../../../etc/passwd"), "failure", "Knowledge pattern not allowed"),
    }


async def test_hostile_knowledge_document_never_reaches_ilab(
    world: World, taxonomy_remote: TaxonomyFactory
) -> None:
    """Finding 1 end to end: the check run fails at the lines, and generate is refused."""
    text = _knowledge(
        "http://169.254.169.254/latest/meta-data",
        "0123456789abcdef0123456789abcdef01234567",
        ("../../../../proc/self/environ",),
    )
    remote = taxonomy_remote(pr_files=leaf_files(KNOWLEDGE_DIR, text))
    publish_pull(world.gh, remote)
    reply, run = await _generate(world)
    assert "was not run" in reply
    assert run["conclusion"] == "failure"
    found = {(a["path"], a["start_line"], a["title"]) for a in _annotations(world, run)}
    path = f"{KNOWLEDGE_DIR}/qna.yaml"
    assert found == {
        (path, _line(text, "repo:"), "Knowledge repository not allowed"),
        (path, _line(text, "environ"), "Knowledge pattern not allowed"),
    }


# -- finding 3: validation fails closed ---------------------------------------------------------


def _skill_text() -> str:
    return skill_qna(default_skill_seeds())


def _symlink_outside(world: World, sha: str) -> None:
    world.gh.set_link(OWNER, REPO, QNA, ref=sha, target="../../../../../etc/passwd")


def _symlink_to_a_valid_file(world: World, sha: str) -> None:
    """GitHub answers a link to a file in the repository with that file's content."""
    other = f"{posixpath.dirname(PR_SKILL_DIR)}/elsewhere/qna.yaml"
    world.gh.set_content(OWNER, REPO, other, _skill_text(), ref=sha)
    world.gh.set_link(OWNER, REPO, QNA, ref=sha, target="../elsewhere/qna.yaml")


def _submodule(world: World, sha: str) -> None:
    world.gh.set_link(OWNER, REPO, QNA, ref=sha, submodule_url="https://github.com/a/b.git")


def _over_github_limit(world: World, sha: str) -> None:
    """Over 1 MB the contents API sends no content at all."""
    big = _skill_text() + "#" * (1024 * 1024 + 1) + "\n"
    world.gh.set_content(OWNER, REPO, QNA, big, ref=sha)


def _api_error(world: World, sha: str) -> None:
    world.gh.inject("GET", f"/repos/{OWNER}/{REPO}/contents/{QNA}", status=403, times=None)


CASES = {
    "symlink-outside": (_symlink_outside, "Symbolic link"),
    "symlink-to-a-valid-file": (_symlink_to_a_valid_file, "Symbolic link"),
    "submodule": (_submodule, "Submodule"),
    "over-1-MB": (_over_github_limit, "File too large"),
    "api-error": (_api_error, "Could not read this file"),
}


@pytest.mark.parametrize("case", sorted(CASES))
async def test_unreadable_file_is_a_failure(
    world: World, taxonomy_remote: TaxonomyFactory, case: str
) -> None:
    arrange, title = CASES[case]
    remote = taxonomy_remote(pr_files=leaf_files(PR_SKILL_DIR, _skill_text()))
    publish_pull(world.gh, remote)
    arrange(world, remote.head_sha)
    reply, run = await _generate(world)
    assert "was not run" in reply
    assert run["conclusion"] == "failure"
    found = {
        (a["path"], a["start_line"], a["annotation_level"], a["title"])
        for a in _annotations(world, run)
    }
    assert (QNA, 1, "failure", title) in found


async def test_vanished_file_is_a_failure(world: World, taxonomy_remote: TaxonomyFactory) -> None:
    """Listed as changed at the head, but the contents API answers 404 there."""
    remote = taxonomy_remote(pr_files=leaf_files(PR_SKILL_DIR, _skill_text()))
    world.gh.add_pull(
        OWNER,
        REPO,
        PR,
        head_sha="c" * 40,  # a head whose files the contents API does not have
        head_ref=remote.head_ref,
        files=list(remote.changed_files),
    )
    reply, run = await _generate(world)
    assert "was not run" in reply and run["conclusion"] == "failure"
    titles = {(a["path"], a["title"]) for a in _annotations(world, run)}
    assert (QNA, "File not found at this commit") in titles


async def test_the_size_limit_is_a_setting(world: World, taxonomy_remote: TaxonomyFactory) -> None:
    text = _skill_text()
    padded = text + "".join(f"# padding line {i:04d}\n" for i in range(300))
    remote = taxonomy_remote(pr_files=leaf_files(PR_SKILL_DIR, padded))
    publish_pull(world.gh, remote)
    app = replace(world.settings, validation_max_file_bytes=len(text.encode()) + 1024)
    reply, run = await _generate(world, app)
    assert "was not run" in reply and run["conclusion"] == "failure"
    titles = {(a["path"], a["title"]) for a in _annotations(world, run)}
    assert (QNA, "File too large") in titles


@pytest.mark.parametrize(
    ("found", "title"),
    [
        (RepoFile(QNA, "symlink"), "Symbolic link"),
        (RepoFile(QNA, "submodule"), "Submodule"),
        (RepoFile(QNA, "dir"), "Folder, not a file"),
        (RepoFile(QNA, "missing"), "File not found at this commit"),
        (RepoFile(QNA, "error", detail="HTTP 502"), "Could not read this file"),
        (RepoFile(QNA, "file", 2_000_000), "File too large"),
        (RepoFile(QNA, "file", 10, None), "File content not available"),
        (RepoFile(QNA, "file", 5000, b"x" * 5000), "File too large"),
    ],
)
def test_file_problem_fails_closed(found: RepoFile, title: str) -> None:
    problem = file_problem(found, "a" * 40, 4096)
    assert problem is not None
    assert (problem.level, problem.title, problem.line) == ("failure", title, 1)
    assert file_problem(RepoFile(QNA, "file", 3, b"a:1"), "a" * 40, 4096) is None


# -- the file list and the contents at the same sha ---------------------------------------------


async def test_list_and_contents_are_read_at_the_validated_sha(
    world: World, webhook_example: Any
) -> None:
    """Head A changed a broken file in one folder; the PR has since moved to head B, which
    changes a good file in another. The push event for A must judge A's own files: with
    today's list (B's) read at A, A's broken file was never looked at and A passed."""
    head_a, head_b = "a" * 40, "b" * 40
    bad = skill_qna([SkillSeed("What is 2+2?", "4")] * 2).replace("created_by", "creatd_by")
    good = _skill_text()
    dir_a, dir_b = f"{PR_SKILL_DIR}-a", f"{PR_SKILL_DIR}-b"
    files_a, files_b = leaf_files(dir_a, bad), leaf_files(dir_b, good)
    world.gh.add_pull(OWNER, REPO, PR, head_sha=head_a, head_ref="add-skill", files=list(files_a))
    for path, text in files_a.items():
        world.gh.set_content(OWNER, REPO, path, text, ref=head_a)
    world.gh.update_pull(OWNER, REPO, PR, head_sha=head_b, files=list(files_b))
    for path, text in files_b.items():
        world.gh.set_content(OWNER, REPO, path, text, ref=head_b)
    payload: dict[str, Any] = json.loads(json.dumps(webhook_example("pull_request", "synchronize")))
    payload["installation"] = {"id": world.gh.installation_id}
    payload["repository"].update(name=REPO, full_name=f"{OWNER}/{REPO}")
    payload["repository"]["owner"]["login"] = OWNER
    payload["pull_request"].update(number=PR, state="open", labels=[])
    payload["pull_request"]["head"].update(sha=head_a, ref="add-skill")
    payload["pull_request"]["base"]["ref"] = "main"
    async with run_bot(world.settings, workers=0) as bot:
        async with aiohttp.ClientSession() as session:
            status, _ = await post_webhook(session, bot.webhook_url, "pull_request", payload)
        assert status == 202
        async with asyncio.timeout(60):
            await world.gh.wait_for(
                lambda: any(
                    r["status"] == "completed"
                    for r in world.gh.check_runs(OWNER, REPO, head_sha=head_a, name=VALIDATE)
                )
            )
    (run,) = world.gh.check_runs(OWNER, REPO, head_sha=head_a, name=VALIDATE)
    assert run["conclusion"] == "failure"
    paths = {a["path"] for a in _annotations(world, run)}
    assert paths == {f"{dir_a}/qna.yaml"}


# -- finding 4: seed caps, the precheck deadline, bounded YAML -----------------------------------


def test_too_many_seed_examples_is_a_failure() -> None:
    seeds = [SkillSeed(f"What is {i} + {i}?", str(2 * i)) for i in range(3800)]
    text = skill_qna(seeds)
    problems = validate_file(QNA, text, attribution=attribution_txt(), lint=_lint)
    capped = [p for p in problems if p.title == "Too many seed examples"]
    assert [(p.line, p.level) for p in capped] == [(_line(text, "seed_examples:"), "failure")]


def test_too_many_knowledge_questions_is_a_failure() -> None:
    pairs = tuple((f"Question {i}?", f"Answer {i}.") for i in range(25))
    seeds = [KnowledgeSeed(f"Context {n}.", pairs) for n in range(5)]  # 125 questions
    text = knowledge_qna(seeds)
    path = f"{KNOWLEDGE_DIR}/qna.yaml"
    problems = validate_file(path, text, attribution=attribution_txt(), lint=_lint)
    assert ("failure", "Too many seed examples") in {(p.level, p.title) for p in problems}
    assert validation.MAX_SEED_EXAMPLES == 50 and validation.MAX_SEED_QUESTIONS == 100


async def test_seed_flood_never_reaches_ilab(
    world: World, taxonomy_remote: TaxonomyFactory
) -> None:
    seeds = [SkillSeed(f"What is {i} + {i}?", str(2 * i)) for i in range(400)]
    remote = taxonomy_remote(pr_files=leaf_files(PR_SKILL_DIR, skill_qna(seeds)))
    publish_pull(world.gh, remote)
    reply, run = await _generate(world)
    assert "was not run" in reply and run["conclusion"] == "failure"
    assert "Too many seed examples" in {a["title"] for a in _annotations(world, run)}


BOMB = "\n".join(
    [
        "version: 3",
        "a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]",
        *(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 7)),
        "seed_examples:",
        "  - question: *a6",
        "    answer: boom",
        "",
    ]
)


def test_read_seeds_refuses_an_alias_bomb(tmp_path: Path) -> None:
    (tmp_path / "bomb").mkdir()
    (tmp_path / "bomb" / "qna.yaml").write_text(BOMB, encoding="utf-8")
    seeds = precheck.read_seeds(tmp_path, ["bomb/qna.yaml"])
    assert seeds == []  # 10^7 expanded nodes: refused, not turned into a 60 MB question


def test_read_seeds_asks_at_most_the_cap(tmp_path: Path) -> None:
    seeds = [SkillSeed(f"What is {i} + {i}?", str(2 * i)) for i in range(3800)]
    (tmp_path / "qna.yaml").write_text(skill_qna(seeds), encoding="utf-8")
    assert len(precheck.read_seeds(tmp_path, ["qna.yaml"])) == validation.MAX_SEED_QUESTIONS


async def test_precheck_stops_at_its_deadline(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every question hangs: the whole precheck still ends at its deadline, each question
    reported as not asked (before: each one waited out its own 10-minute timeout)."""
    app = replace(world.settings, precheck_deadline=1.0, precheck_concurrency=2, kill_grace=0.5)
    seeds = [Seed(QNA, f"Question {i}?", "Answer.") for i in range(6)]
    monkeypatch.setenv("ILAB_STANDIN_MODE", "hang")  # passed by the sandbox's allow-list
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    async with asyncio.timeout(30):
        answers = await precheck.ask_all(
            app, seeds, cwd=tmp_path, workspace=workspace, cancel=None, profile=PROFILES[0]
        )
    assert len(answers) == 6
    assert all(not a.answer and a.error.startswith("not asked") for a in answers)


# -- property tests of the YAML readers -----------------------------------------------------------

FAST = settings(max_examples=150, deadline=3000, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(st.text(max_size=2000))
def test_load_bounded_raises_only_its_own_error(text: str) -> None:
    with contextlib.suppress(YamlRefused):
        load_bounded(text)


@st.composite
def alias_documents(draw: st.DrawFn) -> str:
    """Chains of anchors, each aliasing the previous one `width` times (billion laughs), in
    block or flow style, sometimes aliasing itself (recursive)."""
    depth = draw(st.integers(1, 12))
    width = draw(st.integers(1, 12))
    lines = ["a0: &a0 [x]"]
    for i in range(1, depth + 1):
        refs = ", ".join([f"*a{i - 1}"] * width)
        lines.append(f"a{i}: &a{i} [{refs}]")
    if draw(st.booleans()):
        lines.append("r: &r [*r]" if draw(st.booleans()) else "r: &r {k: *a0}")
    lines.append(f"seed_examples: *a{depth}")
    return "\n".join(lines) + "\n"


@FAST
@given(alias_documents())
def test_alias_expansion_is_bounded(text: str) -> None:
    try:
        data = load_bounded(text)
    except YamlRefused:
        data = None
    else:
        assert len(json.dumps(data)) <= 8 * (validation.MAX_NODES + validation.MAX_CHARS)
    problems = validate_file(QNA, text, attribution=attribution_txt(), lint=_lint)
    assert all(isinstance(p, validation.Problem) for p in problems)


@FAST
@given(st.one_of(st.text(max_size=3000), st.binary(max_size=3000)))
def test_validate_file_never_raises(text: str | bytes) -> None:
    problems = validate_file(QNA, text, attribution=attribution_txt(), lint=_lint)
    assert all(p.line >= 1 and p.level in ("failure", "warning", "notice") for p in problems)


_SEGMENTS = st.sampled_from(["a", "b.git", "..", ".", "%2e%2e", "x y", "", "tree", "main"])


@st.composite
def urls(draw: st.DrawFn) -> str:
    scheme = draw(st.sampled_from(["https", "http", "file", "ssh", "git", "HTTPS", "ext"]))
    user = draw(st.sampled_from(["", "u@", "u:p@", "@"]))
    host = draw(st.sampled_from(["github.com", "GITHUB.COM", "github.com.evil", "127.0.0.1", ""]))
    port = draw(st.sampled_from(["", ":443", ":22", ":"]))
    path = "/".join(draw(st.lists(_SEGMENTS, max_size=4)))
    tail = draw(st.sampled_from(["", "?q=1", "#f", "/", "\n", "\\x"]))
    return f"{scheme}://{user}{host}{port}/{path}{tail}"


@FAST
@given(st.one_of(urls(), st.text(max_size=200)))
def test_an_accepted_repo_is_always_plain_https_github(url: str) -> None:
    if repo_url_problem(url, HOSTS) is not None:
        return
    parts = urlsplit(url)
    assert parts.scheme == "https" and (parts.hostname or "") == "github.com"
    assert parts.username is None and parts.password is None and parts.port is None
    assert not parts.query and not parts.fragment and url.isprintable()
    segments = [s for s in parts.path.split("/") if s]
    assert len(segments) == 2 and not {".", ".."} & {segments[0], segments[1].removesuffix(".git")}


@FAST
@given(st.text(alphabet=st.sampled_from(["a", ".", "/", "*", "\\", "~", "\0", " "]), max_size=20))
def test_an_accepted_pattern_stays_inside_the_repository(pattern: str) -> None:
    if pattern_problem(pattern) is not None:
        return
    resolved = posixpath.normpath(posixpath.join("/repo", pattern))
    assert resolved == "/repo" or resolved.startswith("/repo/")
    assert "\\" not in pattern and "\0" not in pattern
