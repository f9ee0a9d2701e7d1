"""The taxonomy remote builder: GitHub-shaped refs, exact file bytes, reproducible SHAs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from testkit.taxonomy import (
    KnowledgeSeed,
    SkillSeed,
    add_pr_commit,
    build_taxonomy_remote,
    checkout_pr,
    default_grounded_seeds,
    default_knowledge_seeds,
    default_skill_seeds,
    dump_qna,
    git,
    knowledge_qna,
    leaf_files,
    skill_qna,
)
from tests.fixtures.taxonomy import BASE_SKILL_DIR, PR_SKILL_DIR, TaxonomyFactory

HOSTILE = [
    "--help",
    "-qq",
    "it's \"quoted\" and 'single'",
    "$(touch /tmp/pwned) `id`; rm -rf / && echo",
    "first line\nsecond line\n",
    "Ünïcødé 日本語 🚀 — “curly”",
    "  padded  ",
    "- looks like a list",
    "key: value # not a comment",
    "\ttab\tseparated",
    "null",
    "yes",
    "007",
    "a\r\nb",
    "ends with blank lines\n\n",
]


def _refs(bare: Path) -> dict[str, str]:
    out = git(f"--git-dir={bare}", "for-each-ref", "--format=%(refname) %(objectname)")
    return dict(line.split(" ", 1) for line in out.splitlines())


def test_remote_exposes_base_branch_and_pull_ref_only(taxonomy_remote: TaxonomyFactory) -> None:
    remote = taxonomy_remote(owner="acme", repo="tax", pr_number=12, head_ref="feature")
    assert remote.bare_path == Path(remote.git_url_base.removeprefix("file://")) / "acme/tax.git"
    assert remote.clone_url == f"{remote.git_url_base}/acme/tax.git"
    assert _refs(remote.bare_path) == {
        "refs/heads/main": remote.base_sha,
        "refs/pull/12/head": remote.head_sha,
    }
    gd = f"--git-dir={remote.bare_path}"
    assert git(gd, "rev-parse", f"{remote.head_sha}^") == remote.base_sha
    changed = git(gd, "diff", "--name-only", remote.base_sha, remote.head_sha).splitlines()
    assert tuple(changed) == remote.changed_files
    assert remote.changed_files == (f"{PR_SKILL_DIR}/attribution.txt", f"{PR_SKILL_DIR}/qna.yaml")
    base_tree = git(gd, "ls-tree", "-r", "--name-only", remote.base_sha).splitlines()
    assert f"{BASE_SKILL_DIR}/qna.yaml" in base_tree and "README.md" in base_tree


def test_file_bytes_survive_exactly(tmp_path: Path) -> None:
    crlf = "created_by: x\r\nversion: 3\r\n"  # real taxonomy files have CRLF, no final newline
    remote = build_taxonomy_remote(
        tmp_path,
        "o",
        "r",
        base_files={"knowledge/a/attribution.txt": crlf},
        pr_number=1,
        pr_files={"knowledge/a/qna.yaml": b"\xef\xbb\xbfno newline", "knowledge/a/b.txt": crlf},
    )
    gd = f"--git-dir={remote.bare_path}"
    blob = git(gd, "rev-parse", f"{remote.head_sha}:knowledge/a/qna.yaml")
    assert git(gd, "hash-object", "--stdin", stdin=b"\xef\xbb\xbfno newline") == blob
    assert git(gd, "cat-file", "blob", f"{remote.base_sha}:knowledge/a/attribution.txt") == (
        crlf.strip()  # git() strips its output
    )


def test_same_inputs_give_same_shas(tmp_path: Path) -> None:
    files = leaf_files(PR_SKILL_DIR, skill_qna(default_skill_seeds()))
    first = build_taxonomy_remote(
        tmp_path / "a", "o", "r", base_files={}, pr_number=3, pr_files=files
    )
    second = build_taxonomy_remote(
        tmp_path / "b", "o", "r", base_files={}, pr_number=3, pr_files=files
    )
    assert (first.base_sha, first.head_sha) == (second.base_sha, second.head_sha)


def test_new_push_moves_the_pull_ref(taxonomy_remote: TaxonomyFactory, tmp_path: Path) -> None:
    remote = taxonomy_remote()
    new_qna = skill_qna(list(reversed(default_skill_seeds())))
    new_head = add_pr_commit(remote, remote.pr_number, {f"{PR_SKILL_DIR}/qna.yaml": new_qna})
    gd = f"--git-dir={remote.bare_path}"
    assert git(gd, "rev-parse", remote.pull_ref) == new_head
    assert git(gd, "rev-parse", f"{new_head}^") == remote.head_sha
    work = checkout_pr(remote, tmp_path / "ws")
    assert git("-C", str(work), "rev-parse", "HEAD") == new_head
    assert (work / PR_SKILL_DIR / "qna.yaml").read_text(encoding="utf-8") == new_qna
    assert git("-C", str(work), "rev-parse", "origin/main") == remote.base_sha


def test_git_ignores_user_configuration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / ".gitconfig").write_text("[user]\n\tname = Someone Else\n[commit]\n\tgpgsign = true\n")
    monkeypatch.setenv("HOME", str(home))
    remote = build_taxonomy_remote(
        tmp_path / "r", "o", "r", base_files={}, pr_number=1, pr_files={}
    )
    author = git(
        f"--git-dir={remote.bare_path}", "log", "-1", "--format=%an <%ae>", remote.head_sha
    )
    assert author == "Taxonomy Contributor <contributor@example.invalid>"


def _check_skill(doc: dict[str, Any], grounded: bool) -> None:
    assert doc["version"] == 3
    assert doc["created_by"] and doc["task_description"]
    assert len(doc["seed_examples"]) >= 5
    for example in doc["seed_examples"]:
        keys = {"context", "question", "answer"} if grounded else {"question", "answer"}
        assert set(example) == keys and all(isinstance(v, str) and v for v in example.values())


def test_qna_shapes_follow_the_schema_rules() -> None:
    _check_skill(yaml.safe_load(skill_qna(default_skill_seeds())), grounded=False)
    _check_skill(yaml.safe_load(skill_qna(default_grounded_seeds())), grounded=True)
    knowledge = yaml.safe_load(knowledge_qna(default_knowledge_seeds()))
    assert set(knowledge) == {
        "version",
        "created_by",
        "domain",
        "document_outline",
        "seed_examples",
        "document",
    }
    assert set(knowledge["document"]) == {"repo", "commit", "patterns"}
    assert len(knowledge["seed_examples"]) >= 5
    for example in knowledge["seed_examples"]:
        assert example["context"] and len(example["questions_and_answers"]) >= 3


def test_hostile_text_round_trips_exactly() -> None:
    seeds = [SkillSeed(f"Q {text}", f"A {text}", text) for text in HOSTILE]
    doc = yaml.safe_load(skill_qna(seeds))
    assert [(e["question"], e["answer"], e["context"]) for e in doc["seed_examples"]] == [
        (s.question, s.answer, s.context) for s in seeds
    ]
    pairs = tuple((text, text + "!") for text in HOSTILE)
    knowledge = yaml.safe_load(knowledge_qna([KnowledgeSeed("ctx\n" + HOSTILE[0], pairs)] * 5))
    qas = knowledge["seed_examples"][0]["questions_and_answers"]
    assert [(qa["question"], qa["answer"]) for qa in qas] == list(pairs)


def test_multiline_text_uses_block_scalars() -> None:
    text = dump_qna({"seed_examples": [{"question": "one\ntwo", "answer": "plain"}]})
    assert "  - question: |-\n      one\n      two\n" in text
