"""Reading real-shaped `ilab data generate` outputs: result files, counts, spread preview."""

from __future__ import annotations

import json
from pathlib import Path

from instruct_lab_bot.core.output_preview import pick_samples
from instruct_lab_bot.core.outputs import layout_of, list_files, summarize
from tests.fixtures.ilab_outputs import DATED, TS, skill_leaf, write_018, write_026


def _names(out: Path) -> set[str]:
    return {p.relative_to(out).as_posix() for p in list_files(out)}


def test_026_layout_counts_per_leaf_and_file_without_checkpoints_or_empty_mix(
    tmp_path: Path,
) -> None:
    haiku, limerick = skill_leaf(), skill_leaf("compositional_skills_writing_limerick", 3)
    root = write_026(tmp_path, [haiku, limerick])
    assert layout_of(tmp_path) == ("0.26", root)
    names = _names(tmp_path)
    assert not any(n.startswith("checkpoints/") for n in names)
    assert not any("knowledge_" in n for n in names)  # skills-only PR: no knowledge noise
    assert f"{DATED}/skills_recipe_{TS}.yaml" in names
    assert f"{DATED}/generated_{TS}/{haiku.name}.jsonl" in names
    summary = summarize(tmp_path)
    assert summary.layout == "0.26"
    assert summary.generated == 16  # train_*.jsonl: (5 + 3 seeds) x 2
    assert {(c.name, c.samples) for c in summary.per_leaf} == {(haiku.name, 10), (limerick.name, 6)}
    per_file = {c.name: c.samples for c in summary.per_file}
    assert per_file[f"{DATED}/train_{TS}.jsonl"] == 16
    assert per_file[f"{DATED}/test_{TS}.jsonl"] == 8
    assert per_file[f"{DATED}/preprocessed_{TS}/{haiku.name}.jsonl"] == 5


def test_preview_is_spread_over_leaves_and_seeds_with_the_seed_question(tmp_path: Path) -> None:
    haiku, limerick = skill_leaf(), skill_leaf("compositional_skills_writing_limerick", 3)
    write_026(tmp_path, [haiku, limerick])
    samples = summarize(tmp_path, preview=6).samples
    # 8 seeds for 6 rows: the interleaved first round (h0 l0 h1 l1 h2 l2 h3 h4) thinned evenly
    assert [(s.leaf, s.seed_question) for s in samples] == [
        (haiku.name, haiku.seeds[0][0]),
        (limerick.name, limerick.seeds[0][0]),
        (haiku.name, haiku.seeds[1][0]),
        (haiku.name, haiku.seeds[2][0]),
        (limerick.name, limerick.seeds[2][0]),
        (haiku.name, haiku.seeds[3][0]),
    ]
    assert len(summarize(tmp_path, preview=10).samples) == 10  # all 8 seeds, then repeats
    first = samples[0]  # the simple pipeline's raw output, split at the first "?" as SDG does
    assert first.question == "Seed question 0 of compositional_skills_writing_haiku variant 0?"
    assert first.answer == f"Answer 0 to {haiku.seeds[0][0]}"


def test_018_layout_reads_node_datasets_in_the_output_folder(tmp_path: Path) -> None:
    leaf = skill_leaf(seeds=5)
    write_018(tmp_path, [leaf])
    summary = summarize(tmp_path, preview=5)
    assert summary.layout == "0.18"
    assert summary.generated == 10
    assert [(c.name, c.samples) for c in summary.per_leaf] == [(leaf.name, 10)]
    assert f"train_merlinite-7b-lab-Q4_K_M_{TS}.jsonl" in _names(tmp_path)
    assert not any(n.startswith("checkpoints/") or "knowledge" in n for n in _names(tmp_path))
    assert [s.seed_question for s in summary.samples] == [q for q, _ in leaf.seeds]


def test_018_knowledge_leaf_counts_its_p07_dataset_only(tmp_path: Path) -> None:
    node = tmp_path / f"node_datasets_{TS}"
    node.mkdir()
    row = {"messages": [{"role": "user", "content": "q?"}, {"role": "assistant", "content": "a"}]}
    for name, rows in (
        ("knowledge_x_p07", 4),
        ("knowledge_x_p10", 9),
        ("mmlubench_knowledge_x", 3),
    ):
        (node / f"{name}.jsonl").write_text((json.dumps(row) + "\n") * rows)
    (tmp_path / f"knowledge_recipe_{TS}.yaml").write_text(
        f"datasets: [{{path: node_datasets_{TS}/knowledge_x_p07.jsonl, sampling_size: 1.0}}]\n"
    )
    summary = summarize(tmp_path)
    assert [(c.name, c.samples) for c in summary.per_leaf] == [("knowledge_x", 4)]
    assert f"knowledge_recipe_{TS}.yaml" in _names(tmp_path)  # a recipe with datasets stays


def test_samples_without_seeds_are_evenly_spaced_not_the_first_rows() -> None:
    rows = [{"user": f"q{i}", "assistant": f"a{i}"} for i in range(1000)]
    samples = pick_samples([("", iter(rows))], 5)
    numbers = [int(s.question[1:]) for s in samples]
    assert len(numbers) == 5 and numbers == sorted(numbers)
    assert numbers[0] == 0 and numbers[-1] >= 500  # spans the file


def test_hostile_or_missing_outputs_do_not_break_the_summary(tmp_path: Path) -> None:
    assert summarize(tmp_path / "absent").generated is None
    (tmp_path / f"train_{TS}.jsonl").write_bytes(b"not json\n\xff\xfe\n[1,2]\n")
    (tmp_path / f"skills_train_msgs_{TS}.jsonl").write_text('{"messages": 3}\n')
    (tmp_path / "outside").symlink_to("/etc/passwd")
    summary = summarize(tmp_path)
    assert summary.generated == 3 and summary.samples == ()
    assert "outside" not in _names(tmp_path)


def test_symlinked_folders_are_never_followed_out(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    write_026(outside, [skill_leaf()])
    out = tmp_path / "out"
    root = write_026(out, [skill_leaf("compositional_skills_mine", 1)])
    (root / "generated_2026-12-06T05_00_00").symlink_to(outside / DATED / f"generated_{TS}")
    (out / "2099-01-01_000000").symlink_to(outside / DATED)  # a newer "dated" folder
    summary = summarize(out)
    assert [c.name for c in summary.per_leaf] == ["compositional_skills_mine"]
    assert summary.generated == 2
    assert all(str(p).startswith(str(out)) and "2099" not in str(p) for p in summary.files)


def test_more_seeds_than_the_preview_are_thinned_evenly(tmp_path: Path) -> None:
    leaf = skill_leaf(seeds=10)
    write_026(tmp_path, [leaf])
    samples = summarize(tmp_path, preview=5).samples
    assert [s.seed_question for s in samples] == [leaf.seeds[i][0] for i in (0, 2, 4, 6, 8)]


def test_a_knowledge_documents_git_folder_is_not_a_result(tmp_path: Path) -> None:
    """0.26 clones the document repository, `.git` and all, into the output: the document is
    shown, git's internals (about 26 files) are not."""
    root = write_026(tmp_path, [skill_leaf()])
    clone = root / f"preprocessed_{TS}" / "documents" / "knowledge_science_abc123"
    (clone / ".git" / "objects").mkdir(parents=True)
    (clone / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (clone / ".git" / "objects" / "pack").write_bytes(b"\0")
    (clone / "photosynthesis.md").write_text("# Photosynthesis\n")
    names = _names(tmp_path)
    assert (
        f"{DATED}/preprocessed_{TS}/documents/knowledge_science_abc123/photosynthesis.md" in names
    )
    assert not any("/.git/" in n for n in names)
