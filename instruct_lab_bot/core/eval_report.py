"""`ilab model evaluate --benchmark mt_bench_branch|mmlu_branch` report → scores (pure).

Both releases print a Markdown-like report on stdout and exit 0 even when the evaluation
library failed (they print its message only), so the report's presence is the success test.

0.26.1 (scores next to each model, before → after per task):
    # SKILL EVALUATION REPORT
    ## BASE MODEL (SCORE)
    /models/base (5.2/10.0)
    ## MODEL (SCORE)
    /models/trained (6.1/10.0)
    ### IMPROVEMENTS (0.0 to 10.0):
    1. compositional_skills/x/qna.yaml: 4.5 -> 7.0 (+2.5)
    ### NO CHANGE (0.0 to 10.0):
    1. compositional_skills/y/qna.yaml (5.0)
    ### ERROR RATE:
    0.12

0.18.4 (names only; deltas only; `### AVERAGE:` `+0.1 (across 3)` for mmlu_branch):
    ## BASE MODEL
    /models/base
    ### IMPROVEMENTS:
    1. compositional_skills/x/qna.yaml (+2.5)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["EvalItem", "EvalReport", "parse_eval_report"]

_HEADER = re.compile(r"^# (SKILL|KNOWLEDGE) EVALUATION REPORT\s*$")
_SECTION = re.compile(r"^#{2,3} ([A-Z][A-Z ]{1,40}?)(?: \(([^)]{0,40})\))?:?\s*$")
_SCORED_MODEL = re.compile(r"^(.{1,2000}) \(([-\d.]{1,20})/([\d.]{1,20})\)$")
_CHANGE = re.compile(
    r"^\d{1,6}\. (.{1,2000}?)(?:: ([-\d.]{1,20}) -> ([-\d.]{1,20}))? \(([+-]?[\d.]{1,20})\)$"
)
_PLAIN = re.compile(r"^\d{1,6}\. (.{1,2000})$")
_AVERAGE = re.compile(r"^([+-]?[\d.]{1,20}) \(across (\d{1,9})\)$")
_RANGE = re.compile(r"0\.0 to ([\d.]{1,20})")
MAX_ITEMS = 1000


@dataclass(frozen=True)
class EvalItem:
    """One task (a qna.yaml for skills, an MMLU task for knowledge) in the report."""

    task: str
    change: str  # improvement | regression | no change | new
    base_score: float | None = None
    score: float | None = None
    delta: float | None = None


@dataclass
class EvalReport:
    kind: str  # skill | knowledge
    model: str = ""
    base_model: str = ""
    score: float | None = None
    base_score: float | None = None
    max_score: float | None = None
    average_delta: float | None = None  # 0.18's mmlu_branch `### AVERAGE:`
    error_rate: float | None = None
    items: list[EvalItem] = field(default_factory=list)

    def by_change(self, change: str) -> list[EvalItem]:
        return [item for item in self.items if item.change == change]


_CHANGES = {
    "IMPROVEMENTS": "improvement",
    "REGRESSIONS": "regression",
    "NO CHANGE": "no change",
    "NEW": "new",
}


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return None


def parse_eval_report(output: str) -> EvalReport | None:
    """The report in `ilab model evaluate`'s stdout, None when it printed none (a failure)."""
    report: EvalReport | None = None
    section = ""
    for raw in output.splitlines():
        line = raw.strip()
        if header := _HEADER.match(line):
            report = EvalReport(kind=header.group(1).lower())
            section = ""
        elif report is None or not line:
            continue
        elif found := _SECTION.match(line):
            section = found.group(1).strip()
            if found.group(2) and (limit := _RANGE.search(found.group(2))):
                report.max_score = _number(limit.group(1))
        else:
            _read_line(report, section, line)
    return report


def _read_line(report: EvalReport, section: str, line: str) -> None:
    if section in ("BASE MODEL", "MODEL"):
        scored = _SCORED_MODEL.match(line)
        name = scored.group(1) if scored else line
        score = _number(scored.group(2)) if scored else None
        if scored:
            report.max_score = _number(scored.group(3))
        if section == "BASE MODEL":
            report.base_model, report.base_score = name[:2000], score
        else:
            report.model, report.score = name[:2000], score
    elif section == "ERROR RATE":
        report.error_rate = _number(line)
    elif section == "AVERAGE":
        if average := _AVERAGE.match(line):
            report.average_delta = _number(average.group(1))
    elif section in _CHANGES and len(report.items) < MAX_ITEMS:
        report.items.append(_item(_CHANGES[section], line))


def _item(change: str, line: str) -> EvalItem:
    if found := _CHANGE.match(line):
        task, before, after, value = found.groups()
        if change == "no change" or change == "new":
            return EvalItem(task, change, score=_number(value))
        return EvalItem(task, change, _number(before), _number(after), _number(value))
    plain = _PLAIN.match(line)
    return EvalItem(plain.group(1) if plain else line[:2000], change)
