"""`ilab model evaluate` with the branch benchmarks: the bot's command line
(core.ilab.evaluate_argv), the stand-in's run of it per release, and core.eval_report reading
each release's report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from instruct_lab_bot.core.eval_report import parse_eval_report
from instruct_lab_bot.core.ilab import EvalParams, evaluate_argv, profile_for
from instruct_lab_bot.core.ilab.versions import IlabVersion
from testkit.ilab_model import write_hf_model

STANDIN = str(Path(sys.executable).parent / "ilab-standin")
SEEDS = [
    ("What is the capital of the Moon base?", "The capital of the Moon base is Tranquility."),
    ("Which crater hosts the Moon base?", "The Moon base sits in the Shackleton crater."),
]
QNA = "compositional_skills/space/moon_base/qna.yaml"


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


@pytest.fixture
def taxonomy(tmp_path: Path) -> Path:
    repo = tmp_path / "taxonomy"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "t@example.com")
    git(repo, "config", "user.name", "t")
    (repo / "README.md").write_text("taxonomy\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "base")
    git(repo, "checkout", "-q", "-b", "pr-head")
    qna = repo / QNA
    qna.parent.mkdir(parents=True)
    examples = "".join(f"  - question: {q}\n    answer: {a}\n" for q, a in SEEDS)
    qna.write_text(
        f"version: 2\ntask_description: moon\ncreated_by: me\nseed_examples:\n{examples}"
    )
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "moon base")
    return repo


def run(
    argv: list[str], tmp_path: Path, version: str, **env: str
) -> subprocess.CompletedProcess[str]:
    full = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "ILAB_STANDIN_VERSION": version}
    return subprocess.run(argv, env={**full, **env}, capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip


def test_evaluate_argv_and_its_missing_inputs(tmp_path: Path) -> None:
    profile = profile_for(IlabVersion(0, 26))
    assert profile is not None
    params = EvalParams("mmlu_branch", "/m/t", "/m/b", tmp_path / "out", tasks_dir=tmp_path)
    assert evaluate_argv(profile, ("ilab",), params) == [
        "ilab", "model", "evaluate", "--benchmark", "mmlu_branch", "--model", "/m/t",
        "--base-model", "/m/b", "--output-dir", str(tmp_path / "out"),
        "--tasks-dir", str(tmp_path),
    ]  # fmt: skip
    with pytest.raises(ValueError, match="judge model"):
        evaluate_argv(profile, ("ilab",), EvalParams("mt_bench_branch", "/m", "/b", tmp_path))
    with pytest.raises(ValueError, match="not mmlu"):
        evaluate_argv(profile, ("ilab",), EvalParams("mmlu", "/m", "/b", tmp_path))


@pytest.mark.parametrize("version", ["0.26.1", "0.18.4"])
def test_mt_bench_branch_shows_the_trained_model_better(
    tmp_path: Path, taxonomy: Path, version: str
) -> None:
    trained = write_hf_model(tmp_path / "trained", SEEDS)
    base = write_hf_model(tmp_path / "base")
    judge = write_hf_model(tmp_path / "judge")
    params = EvalParams("mt_bench_branch", str(trained), str(base), tmp_path / "eval",
                        str(judge), taxonomy, "pr-head", "main")  # fmt: skip
    profile = profile_for(IlabVersion(*map(int, version.split(".")[:2])))
    assert profile is not None
    done = run(evaluate_argv(profile, (STANDIN, "--config", "DEFAULT"), params), tmp_path, version)
    assert done.returncode == 0, done.stdout + done.stderr
    report = parse_eval_report(done.stdout)
    assert report is not None and report.kind == "skill"
    assert (report.model, report.base_model) == (str(trained), str(base))
    [improved] = report.by_change("improvement")
    assert improved.task == QNA and improved.delta is not None and improved.delta > 0
    if version == "0.26.1":
        assert report.score is not None and report.base_score is not None
        assert report.score > report.base_score and report.max_score == 10.0
        assert improved.score == report.score
    else:
        assert report.score is None  # 0.18 prints no scores, only the deltas


@pytest.mark.parametrize("version", ["0.26.1", "0.18.4"])
def test_mmlu_branch_reads_the_generated_tasks(tmp_path: Path, version: str) -> None:
    nodes = tmp_path / "gen" / "node_datasets_x"
    nodes.mkdir(parents=True)
    leaf = "knowledge_moon"
    question, right = SEEDS[0]
    row = {"question": question, "choices": [right, "Mars", "Nothing", "Everything"], "answer": 0}
    (nodes / f"mmlubench_{leaf}.jsonl").write_text(json.dumps(row) + "\n")
    (nodes / f"{leaf}_task.yaml").write_text(f"task: {leaf}\ntag: mmlu_pr\n")
    trained = write_hf_model(tmp_path / "trained", SEEDS)
    base = write_hf_model(tmp_path / "base")
    params = EvalParams("mmlu_branch", str(trained), str(base), tmp_path / "eval",
                        tasks_dir=tmp_path / "gen")  # fmt: skip
    profile = profile_for(IlabVersion(*map(int, version.split(".")[:2])))
    assert profile is not None
    done = run(evaluate_argv(profile, (STANDIN, "--config", "DEFAULT"), params), tmp_path, version)
    report = parse_eval_report(done.stdout)
    assert report is not None and report.kind == "knowledge"
    [improved] = report.by_change("improvement")
    assert improved.task == leaf and improved.delta == 0.75
    if version == "0.18.4":
        assert report.average_delta == 0.75
    else:
        assert (improved.base_score, improved.score, report.max_score) == (0.25, 1.0, 1.0)


def test_a_failed_evaluation_exits_0_without_a_report(tmp_path: Path) -> None:
    model = write_hf_model(tmp_path / "m")
    argv = [STANDIN, "--config", "DEFAULT", "model", "evaluate", "--benchmark", "mmlu_branch"]
    argv += ["--model", str(model), "--base-model", str(model), "--tasks-dir", str(tmp_path)]
    done = run(argv, tmp_path, "0.26.1", ILAB_STANDIN_EVAL_MODE="fail")
    assert done.returncode == 0 and "Failed to connect to the judge" in done.stdout
    assert parse_eval_report(done.stdout) is None
    missing = [*argv[:-4], "--base-model", str(tmp_path / "nope"), "--tasks-dir", str(tmp_path)]
    done = run(missing, tmp_path, "0.26.1")
    assert done.returncode == 1 and "Failed to determine backend" in done.stdout
    done = run([*argv[:6], "dk_bench", *argv[7:]], tmp_path, "0.18.4")
    assert done.returncode == 2 and "is not one of" in done.stderr


def test_reports_as_each_release_prints_them() -> None:
    new = """Evaluating answers for branch pr...
# SKILL EVALUATION REPORT

## BASE MODEL (SCORE)
/models/base (5.2/10.0)

## MODEL (SCORE)
/models/trained (6.1/10.0)

### IMPROVEMENTS (0.0 to 10.0):
1. compositional_skills/a/qna.yaml: 4.5 -> 7.0 (+2.5)

### REGRESSIONS (0.0 to 10.0):
1. compositional_skills/b/qna.yaml: 6.0 -> 5.0 (-1.0)

### NO CHANGE (0.0 to 10.0):
1. compositional_skills/c/qna.yaml (5.0)

### NEW (0.0 to 10.0):
1. compositional_skills/d/qna.yaml (8.0)

### ERROR RATE:
0.12
"""
    report = parse_eval_report(new)
    assert report is not None
    assert (report.base_score, report.score, report.error_rate) == (5.2, 6.1, 0.12)
    assert [(i.change, i.base_score, i.score, i.delta) for i in report.items] == [
        ("improvement", 4.5, 7.0, 2.5),
        ("regression", 6.0, 5.0, -1.0),
        ("no change", None, 5.0, None),
        ("new", None, 8.0, None),
    ]
    old = "# KNOWLEDGE EVALUATION REPORT\n\n## BASE MODEL\nb\n\n## MODEL\nm\n\n### AVERAGE:\n"
    old += "-0.05 (across 2)\n\n### REGRESSIONS:\n1. task_a (-0.1)\n\n### NO CHANGE:\n1. task_b\n"
    report = parse_eval_report(old)
    assert report is not None and report.average_delta == -0.05
    assert [(i.task, i.change, i.delta) for i in report.items] == [
        ("task_a", "regression", -0.1),
        ("task_b", "no change", None),
    ]
    assert parse_eval_report("Failed to connect to the judge\n") is None
