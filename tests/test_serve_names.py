"""The InferenceService name of a PR: DNS-safe, length-safe, collision-free, case-stable."""

from __future__ import annotations

import string

from hypothesis import given
from hypothesis import strategies as st

from instruct_lab_bot.core.refs import RepoRef
from instruct_lab_bot.core.serve_names import (
    ANNOTATION_PULL,
    ANNOTATION_REPO,
    MAX_NAME,
    is_dns_label,
    is_label_value,
    pr_labels,
    pull_from_annotations,
    served_name,
)

_NAME_CHARS = string.ascii_letters + string.digits + "-._"
repo_names = st.text(_NAME_CHARS, min_size=1, max_size=100)
numbers = st.integers(min_value=1, max_value=10**12)


def test_readable_for_a_usual_pr() -> None:
    name = served_name(RepoRef("instructlab", "taxonomy").pull(42))
    assert name.startswith("pr42-taxonomy-")
    assert is_dns_label(name, MAX_NAME)


@given(owner=repo_names, repo=repo_names, number=numbers)
def test_always_a_short_dns_label(owner: str, repo: str, number: int) -> None:
    name = served_name(RepoRef(owner, repo).pull(number))
    assert is_dns_label(name, MAX_NAME), name


@given(owner=repo_names, repo=repo_names, number=numbers)
def test_same_for_every_case_spelling(owner: str, repo: str, number: int) -> None:
    assert served_name(RepoRef(owner, repo).pull(number)) == served_name(
        RepoRef(owner.upper(), repo.upper()).pull(number)
    )


def test_names_that_fold_together_stay_apart() -> None:
    pulls = [
        RepoRef("a.b", "c").pull(1),
        RepoRef("a-b", "c").pull(1),
        RepoRef("org", "my.repo").pull(7),
        RepoRef("org", "my-repo").pull(7),
        RepoRef("org", "x" * 90 + "1").pull(7),
        RepoRef("org", "x" * 90 + "2").pull(7),
        RepoRef("org", "repo").pull(1),
        RepoRef("org", "repo").pull(11),
    ]
    names = {served_name(p) for p in pulls}
    assert len(names) == len(pulls)


@given(owner=repo_names, repo=repo_names, number=numbers)
def test_labels_valid_and_pr_read_back(owner: str, repo: str, number: int) -> None:
    pull = RepoRef(owner, repo).pull(number)
    assert all(is_label_value(v) for v in pr_labels(pull, "instructlab-bot").values())
    annotations = {ANNOTATION_REPO: pull.repo.full_name, ANNOTATION_PULL: str(number)}
    assert pull_from_annotations(annotations) == pull


def test_annotations_naming_no_pr() -> None:
    assert pull_from_annotations({}) is None
    assert pull_from_annotations({ANNOTATION_REPO: "a/b", ANNOTATION_PULL: "x"}) is None
    assert pull_from_annotations({ANNOTATION_REPO: "nope", ANNOTATION_PULL: "3"}) is None
