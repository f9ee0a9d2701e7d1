"""`test`, the pure part: which trained model a request means, how close each answer is to the
contributor's, and the report the reply, the check run and the JSON/HTML files are made of.

Similarity is ROUGE-L F1 (longest common subsequence of words, with stemming) from Google's
`rouge-score`, the implementation the ROUGE-1.5.5 figures are reproduced with.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import cache, cached_property
from typing import Any

from instruct_lab_bot.core.eval_report import EvalItem, EvalReport
from instruct_lab_bot.core.job_lookup import latest_succeeded, named_job
from instruct_lab_bot.core.jobs import Job

#: A difference in score smaller than this is a tie (ROUGE-L of two near-identical answers).
TIE = 0.01
#: The longest text one ROUGE-L comparison reads (its LCS is quadratic in words: about 30 ms
#: for two texts this long, where 4000 characters took 140 ms).
MAX_SCORED_CHARS = 2000


class NoModel(enum.StrEnum):
    """Why `test` has no model to test."""

    NONE_TRAINED = "none_trained"  # no successful train job on this PR
    NOT_THIS_PR = "not_this_pr"  # `--model <id>` is not a successful train job of this PR
    BAD_ARGS = "bad_args"  # arguments other than `--model <id>`


def model_argument(args: Sequence[str]) -> str | None:
    """The job id of `test --model <id>` (or `--model=<id>`); "" for plain `test`; None for
    anything else."""
    words = list(args)
    if not words:
        return ""
    if len(words) == 1 and words[0].startswith("--model="):
        return words[0].split("=", 1)[1] or None
    if len(words) == 2 and words[0] == "--model" and words[1]:
        return words[1]
    return None


def model_to_test(jobs: Sequence[Job], args: Sequence[str]) -> Job | NoModel:
    """The train job `test` uses: the named one (of this PR's `jobs`), else the newest."""
    wanted = model_argument(args)
    if wanted is None:
        return NoModel.BAD_ARGS
    if wanted:
        return named_job(jobs, wanted, "train") or NoModel.NOT_THIS_PR
    return latest_succeeded(jobs, "train") or NoModel.NONE_TRAINED


def served_file(names: Sequence[str]) -> str:
    """Which of a trained model's files (`model.json`'s names) `ilab model serve` is given:
    its GGUF file when it has one (the `simple` pipeline and 0.18 write one; llama-cpp serves
    it on a CPU or a GPU), else "" for the whole folder (Hugging Face safetensors: vLLM)."""
    ggufs = sorted(name for name in names if name.lower().endswith(".gguf"))
    return min(ggufs, key=lambda name: (name.count("/"), name), default="")


@cache
def _scorer() -> Any:
    """Imported on first use: rouge-score pulls in nltk and numpy (~25 MB), which a server
    that only renders this module's messages never needs."""
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def similarity(reference: str, answer: str) -> float:
    """ROUGE-L F1 of `answer` against `reference`, 0.0 … 1.0 (0.0 when either is empty)."""
    reference, answer = reference[:MAX_SCORED_CHARS], answer[:MAX_SCORED_CHARS]
    if not reference.strip() or not answer.strip():
        return 0.0
    score = _scorer().score(reference, answer)["rougeL"]
    return round(float(score.fmeasure), 4)


@dataclass(frozen=True)
class SeedComparison:
    """One seed question, answered by both models."""

    path: str
    question: str
    expected: str  # the contributor's answer
    base: str = ""
    trained: str = ""
    base_error: str = ""
    trained_error: str = ""

    # Computed once per answer (ROUGE-L is quadratic in words; the report reads them often).
    @cached_property
    def base_score(self) -> float | None:
        return similarity(self.expected, self.base) if self.base else None

    @cached_property
    def trained_score(self) -> float | None:
        return similarity(self.expected, self.trained) if self.trained else None

    @property
    def winner(self) -> str:
        """ "trained", "base", "tie", or "" when either model gave no answer."""
        base, trained = self.base_score, self.trained_score
        if base is None or trained is None:
            return ""
        if abs(trained - base) < TIE:
            return "tie"
        return "trained" if trained > base else "base"


@dataclass(frozen=True)
class Evaluation:
    """`ilab model evaluate` on a `*_branch` benchmark, when a judge is configured."""

    benchmark: str
    scores: tuple[tuple[str, str], ...] = ()  # (what, value) as ilab printed them
    error: str = ""


@dataclass(frozen=True)
class ModelTestReport:
    """Everything `test` found; what the reply and the JSON/HTML files show."""

    train_job: str
    base_model: str
    trained_model: str
    answers: tuple[SeedComparison, ...] = ()
    evaluation: Evaluation | None = None

    def score_all(self) -> None:
        """Compute every score now (the worker does it in a thread: it is CPU work)."""
        for answer in self.answers:
            _ = answer.base_score, answer.trained_score

    @property
    def compared(self) -> int:
        return sum(1 for a in self.answers if a.winner)

    def count(self, winner: str) -> int:
        return sum(1 for a in self.answers if a.winner == winner)

    def to_json(self) -> str:
        data: dict[str, Any] = {
            "train_job": self.train_job,
            "base_model": self.base_model,
            "trained_model": self.trained_model,
            "summary": {
                "questions": len(self.answers),
                "compared": self.compared,
                "trained_closer": self.count("trained"),
                "base_closer": self.count("base"),
                "ties": self.count("tie"),
            },
            "answers": [
                {
                    **asdict(a),
                    "base_rouge_l": a.base_score,
                    "trained_rouge_l": a.trained_score,
                    "winner": a.winner,
                }
                for a in self.answers
            ],
            "evaluation": asdict(self.evaluation) if self.evaluation else None,
        }
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


#: The most per-task rows of an evaluation a report keeps.
MAX_EVAL_ROWS = 50


def evaluation_from(benchmark: str, report: EvalReport | None, failure: str) -> Evaluation:
    """What `ilab model evaluate` found (`report`), as the rows the reply shows; without a
    report (ilab prints none when it failed, and still exits 0) the `failure` it gave."""
    if report is None:
        return Evaluation(benchmark, error=failure or "`ilab model evaluate` printed no report")
    rows: list[tuple[str, str]] = []
    for who, score in (("base model", report.base_score), ("trained model", report.score)):
        if score is not None:
            rows.append((who, _of(score, report.max_score)))
    if report.error_rate is not None:
        rows.append(("error rate", f"{report.error_rate:g}"))
    if report.average_delta is not None:
        rows.append(("average change", f"{report.average_delta:+g}"))
    for item in report.items[:MAX_EVAL_ROWS]:
        rows.append((item.task, _change(item)))
    return Evaluation(benchmark, tuple(rows))


def _of(score: float, most: float | None) -> str:
    return f"{score:g}" + (f" / {most:g}" if most is not None else "")


def _change(item: EvalItem) -> str:
    if item.base_score is not None and item.score is not None:
        delta = f" ({item.delta:+g})" if item.delta is not None else ""
        return f"{item.change}: {item.base_score:g} → {item.score:g}{delta}"
    if item.delta is not None:
        return f"{item.change}: {item.delta:+g}"
    return item.change + (f": {item.score:g}" if item.score is not None else "")
