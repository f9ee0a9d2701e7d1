"""`test.html`: the whole `test` report for people, every answer in full (pure; no script,
every outside text escaped)."""

from __future__ import annotations

import html

from instruct_lab_bot.core.messages.model_test import summary_line
from instruct_lab_bot.core.model_test import ModelTestReport, SeedComparison

_STYLE = (
    "body{font-family:sans-serif;margin:1em}table{border-collapse:collapse}"
    "td,th{vertical-align:top;border-top:1px solid #ccc;padding:4px;white-space:pre-wrap}"
    ".win{background:#e6ffed}"
)


def render_test_html(report: ModelTestReport) -> str:
    esc = html.escape
    parts = [
        "<!doctype html><meta charset=utf-8><title>test</title>",
        f"<style>{_STYLE}</style>",
        f"<h1>test of train job {esc(report.train_job)}</h1>",
        f"<p>Base model <code>{esc(report.base_model)}</code>, trained model "
        f"<code>{esc(report.trained_model)}</code>. ROUGE-L F1 against the contributor's "
        "answer.</p>",
        f"<p><b>{esc(summary_line(report))}</b></p>",
    ]
    for path in dict.fromkeys(a.path for a in report.answers):
        parts += [
            f"<h2>{esc(path)}</h2><table><tr><th>question</th><th>contributor's answer</th>",
            "<th>base model</th><th>trained model</th><th>ROUGE-L base</th>",
            "<th>ROUGE-L trained</th></tr>",
        ]
        parts += [_row(a) for a in report.answers if a.path == path]
        parts.append("</table>")
    if report.evaluation is not None:
        evaluation = report.evaluation
        parts.append(f"<h2>ilab model evaluate --benchmark {esc(evaluation.benchmark)}</h2>")
        if evaluation.error:
            parts.append(f"<p>{esc(evaluation.error)}</p>")
        rows = "".join(f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>" for k, v in evaluation.scores)
        parts.append(f"<table>{rows}</table>")
    return "\n".join(parts) + "\n"


def _row(answer: SeedComparison) -> str:
    esc = html.escape
    base = answer.base or f"⚠ {answer.base_error}"
    trained = answer.trained or f"⚠ {answer.trained_error}"
    win_base = ' class="win"' if answer.winner == "base" else ""
    win_trained = ' class="win"' if answer.winner == "trained" else ""
    return (
        f"<tr><td>{esc(answer.question)}</td><td>{esc(answer.expected)}</td>"
        f"<td{win_base}>{esc(base)}</td><td{win_trained}>{esc(trained)}</td>"
        f"<td>{_score(answer.base_score)}</td><td>{_score(answer.trained_score)}</td></tr>"
    )


def _score(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"
