"""The stand-in's `ilab model evaluate` for the branch benchmarks the bot runs.

`mt_bench_branch` (skills): the qna.yaml files that differ between `--base-branch` and
`--branch` of the taxonomy git folder; each model answers their seed questions (the stand-in's
models answer from the pairs they learned, testkit/ilab_model.py) and the "judge" scores each
answer 0-10 by its word overlap with the reference answer. `mmlu_branch` (knowledge): each
`*_task.yaml` under `--tasks-dir` with its `mmlubench_*.jsonl` questions, scored 0.25 (chance)
to 1.0. The report is printed in each release's format (0.26 shows scores, 0.18 only deltas),
and, like the real command, a failure of the evaluation library is printed and exits 0.

Switches: ILAB_STANDIN_EVAL_MODE = ok (default) | fail (prints the library's error, exit 0)
| hang.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from testkit.ilab_model import answer, is_gguf, is_hf_model, learned_pairs

if TYPE_CHECKING:
    from testkit.fake_ilab import Run

RED, RESET = "\033[31m", "\033[0m"
_WORDS = re.compile(r"[a-z0-9]+")
BENCHMARKS = {
    "0.18": ("mmlu", "mmlu_branch", "mt_bench", "mt_bench_branch"),
    "0.26": ("mmlu", "mmlu_branch", "mt_bench", "mt_bench_branch", "dk_bench"),
}

Scores = dict[str, float]


def _overlap(a: str, b: str) -> float:
    wa, wb = set(_WORDS.findall(a.lower())), set(_WORDS.findall(b.lower()))
    return len(wa & wb) / len(wa | wb) if wa | wb else 0.0


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise EvalFailed(f"git {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


class EvalFailed(Exception):
    """instructlab-eval's EvalError: ilab prints the message and exits 0."""


def _qna_questions(taxonomy: Path, branch: str, base: str) -> dict[str, list[tuple[str, str]]]:
    import yaml

    fork = _git(taxonomy, "merge-base", base, branch).strip()
    names = _git(taxonomy, "diff", "--name-only", "--diff-filter=d", fork, branch).split()
    found: dict[str, list[tuple[str, str]]] = {}
    for name in sorted(n for n in names if n.endswith("qna.yaml")):
        contents = yaml.safe_load(_git(taxonomy, "show", f"{branch}:{name}")) or {}
        pairs = []
        for seed in contents.get("seed_examples") or []:
            if isinstance(seed, dict) and "question" in seed:
                pairs.append((str(seed["question"]), str(seed.get("answer", ""))))
        if pairs:
            found[name] = pairs
    if not found:
        raise EvalFailed(f"Found no qna files changed in branch {branch}")
    return found


def _model_name(model: str) -> str:
    return Path(os.path.normpath(model)).name


def _skill_scores(model: str, questions: Mapping[str, list[tuple[str, str]]]) -> Scores:
    pairs = learned_pairs(Path(model))
    return {
        qna: round(
            10 * sum(_overlap(answer(pairs, _model_name(model), q), a) for q, a in qa) / len(qa),
            2,
        )
        for qna, qa in questions.items()
    }


def _knowledge_scores(model: str, tasks_dir: Path) -> Scores:
    import yaml

    pairs = learned_pairs(Path(model))
    scores: Scores = {}
    for task_file in sorted(tasks_dir.rglob("*_task.yaml"))[:100]:
        task = yaml.safe_load(task_file.read_text(encoding="utf-8")) or {}
        name = str(task.get("task") or task_file.stem)
        rows_file = task_file.parent / f"mmlubench_{name}.jsonl"
        rows = [json.loads(x) for x in rows_file.read_text().splitlines() if x.strip()]
        right = sum(
            _overlap(answer(pairs, "m", str(r["question"])), str(r["choices"][r["answer"]])) >= 0.5
            for r in rows
        )
        scores[name] = round(0.25 + 0.75 * right / len(rows), 2) if rows else 0.25
    if not scores:
        raise EvalFailed(f"Found no MMLU task files in {tasks_dir}")
    return scores


def _check_model(model: str) -> None:
    path = Path(model)
    if not (is_hf_model(path) or is_gguf(path)):
        raise ValueError(
            f"Cannot determine which backend to use: The model file {model} is not a GGUF "
            "format nor a directory containing huggingface safetensors files."
        )


def evaluate(run: Run, opts: Mapping[str, Any]) -> int:
    """`ilab model evaluate`: the branch benchmarks; the exit code the release gives."""
    line = "0.26" if run.profile.version.startswith("0.26") else "0.18"
    benchmark = str(opts["benchmark"] or "")
    run.record.update({"command": "model evaluate", "benchmark": benchmark})
    run.write_record()
    if benchmark not in BENCHMARKS[line]:
        listed = ", ".join(repr(b) for b in BENCHMARKS[line])
        sys.stderr.write(
            "Usage: ilab model evaluate [OPTIONS]\nTry 'ilab model evaluate --help' for help.\n\n"
            f"Error: Invalid value for '--benchmark': {benchmark!r} is not one of {listed}.\n"
        )
        return 2
    mode = os.environ.get("ILAB_STANDIN_EVAL_MODE") or "ok"
    if mode == "hang":
        run.hang_forever()
    model, base = str(opts["model"] or ""), str(opts["base_model"] or "")
    try:
        for needed in (model, base, *([opts["judge_model"] or ""] if "mt" in benchmark else [])):
            _check_model(str(needed))
    except ValueError as exc:
        sys.stdout.write(f"{RED}Failed to determine backend: {exc}{RESET}\n")
        return 1
    try:
        if mode == "fail":
            raise EvalFailed("Failed to connect to the judge model server (stand-in fail mode)")
        if benchmark == "mt_bench_branch":
            _mt_bench_branch(run, opts, model, base)
        elif benchmark == "mmlu_branch":
            _mmlu_branch(run, opts, model, base)
        else:
            raise EvalFailed(f"the stand-in runs only the branch benchmarks, not {benchmark}")
    except EvalFailed as exc:
        sys.stdout.write(f"{exc}\n")  # instructlab-eval's EvalError: printed, exit 0
    return 0


def _mt_bench_branch(run: Run, opts: Mapping[str, Any], model: str, base: str) -> None:
    taxonomy = Path(opts["taxonomy_path"] or ".")
    branch, base_branch = str(opts["branch"] or "HEAD"), str(opts["base_branch"] or "main")
    for name in (branch, base_branch):
        generating = (
            f"Generating questions and reference answers from qna files for branch {name}..."
        )
        if run.profile.version.startswith("0.26"):
            run.log("INFO", "instructlab.model.evaluate:259", generating)
        else:
            sys.stdout.write(generating + "\n")
    questions = _qna_questions(taxonomy, branch, base_branch)
    for name in (branch, base_branch):
        sys.stdout.write(f"Evaluating answers for branch {name}...\n")
    scores, base_scores = _skill_scores(model, questions), _skill_scores(base, questions)
    _report(run, "SKILL", (model, base), (scores, base_scores), "10.0")


def _mmlu_branch(run: Run, opts: Mapping[str, Any], model: str, base: str) -> None:
    tasks_dir = Path(opts["tasks_dir"] or ".")
    scores, base_scores = _knowledge_scores(model, tasks_dir), _knowledge_scores(base, tasks_dir)
    _report(run, "KNOWLEDGE", (model, base), (scores, base_scores), "1.0")


def _mean(scores: Scores) -> float:
    return sum(scores.values()) / len(scores)


def _report(
    run: Run, kind: str, models: tuple[str, str], scores: tuple[Scores, Scores], top: str
) -> None:
    new = run.profile.version.startswith("0.26")
    (model, base), (mine, theirs) = models, scores
    out = [f"# {kind} EVALUATION REPORT\n"]
    if new:
        out += ["## BASE MODEL (SCORE)", f"{base} ({round(_mean(theirs), 2)}/{top})"]
        out += ["\n## MODEL (SCORE)", f"{model} ({round(_mean(mine), 2)}/{top})"]
    else:
        out += ["## BASE MODEL", base, "\n## MODEL", model]
        if kind == "KNOWLEDGE":
            delta = round(_mean(mine) - _mean(theirs), 2)
            shown = f"+{delta}" if delta >= 0 else str(delta)
            out += ["\n### AVERAGE:", f"{shown} (across {len(mine)})"]
    groups: dict[str, list[str]] = {"IMPROVEMENTS": [], "REGRESSIONS": [], "NO CHANGE": []}
    for task, score in sorted(mine.items(), key=lambda kv: kv[1] - theirs[kv[0]], reverse=True):
        before, delta = theirs[task], round(score - theirs[task], 2)
        group = "IMPROVEMENTS" if delta > 0 else "REGRESSIONS" if delta < 0 else "NO CHANGE"
        if group == "NO CHANGE":
            text = f"{task} ({score})" if new else task
        else:
            sign = "+" if delta > 0 else ""
            text = (
                f"{task}: {before} -> {score} ({sign}{delta})" if new else f"{task} ({sign}{delta})"
            )
        groups[group].append(text)
    for title, items in groups.items():
        if items:
            out.append(f"\n### {title} (0.0 to {top}):" if new else f"\n### {title}:")
            out += [f"{i}. {text}" for i, text in enumerate(items, start=1)]
    sys.stdout.write("\n".join(out) + "\n")
    if new:
        done = "MTBenchBranch" if kind == "SKILL" else "MMLUBranch"
        run.log(
            "INFO",
            "instructlab.model.evaluate:345",
            f"\nᕦ(òᴗóˇ)ᕤ Model evaluate with {done} completed! ᕦ(òᴗóˇ)ᕤ",
        )
