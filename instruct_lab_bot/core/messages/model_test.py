"""`test` texts: the refusals, the progress and the result tables (pure).

Every answer is model output: untrusted, so it goes through `table_cell` (escaped Markdown and
HTML, cut); the worker has redacted it before it gets here.
"""

from __future__ import annotations

from instruct_lab_bot.core.messages.format import escape_md, table_cell
from instruct_lab_bot.core.model_test import ModelTestReport, NoModel, SeedComparison

#: The longest answer a table cell shows (the JSON and HTML files hold them whole).
ANSWER_CELL = 240


def no_model(reason: NoModel, username: str, job_id: str = "") -> str:
    """The reply when `test` has no trained model to test."""
    train = f"`@{username} train`"
    if reason is NoModel.NOT_THIS_PR:
        return (
            f"🤷 `{escape_md(job_id)}` is not a successful `train` job of this pull request, "
            f"so there is no model of it to test. `@{username} status` lists this PR's jobs; "
            f"`@{username} test` alone tests the newest trained model."
        )
    if reason is NoModel.BAD_ARGS:
        return (
            f"🤷 `test` takes no arguments, or `--model <train job id>`: `@{username} test` "
            f"tests this PR's newest trained model."
        )
    return (
        "🤷 There is no trained model for this pull request yet: `test` asks a model trained on "
        f"this PR's data. Run `@{username} generate`, then {train}, then `test` again."
    )


def progress_stage(done: int, total: int) -> str:
    """The check run's title while `test` asks: "Question 3 of 9"."""
    return f"Question {min(done + 1, total)} of {total}" if total else "Starting the models"


def summary_line(report: ModelTestReport) -> str:
    """ "Trained model closer on 7 of 9 questions (base closer on 1, 1 tie)." """
    compared = report.compared
    if not compared:
        return "No question got an answer from both models: nothing to compare."
    line = f"Trained model closer on {report.count('trained')} of {compared} questions"
    extras = []
    if base := report.count("base"):
        extras.append(f"base closer on {base}")
    if ties := report.count("tie"):
        extras.append(f"{ties} tie{'s' if ties > 1 else ''}")
    return line + (f" ({', '.join(extras)})" if extras else "") + "."


def comparison_title(report: ModelTestReport) -> str:
    return summary_line(report).rstrip(".")[:255]


def comparison_tables(report: ModelTestReport, limit: int = 40_000) -> list[str]:
    """The models compared, the summary line, then one table per file, cut to fit a comment."""
    lines = [
        "",
        f"Base model `{_name(report.base_model)}` against the model of train job "
        f"`{_name(report.train_job)}` (`{_name(report.trained_model)}`); each answer scored "
        "against the contributor's with ROUGE-L F1 (0 … 1, higher is closer).",
        "",
        f"**{summary_line(report)}**",
    ]
    size = 0
    for path in dict.fromkeys(a.path for a in report.answers):
        lines += [
            "",
            f"**`{escape_md(path)}`**",
            "",
            "| Question | Contributor's answer | Base model | Trained model "
            "| ROUGE-L base / trained |",
            "|---|---|---|---|---|",
        ]
        for answer in (a for a in report.answers if a.path == path):
            row = _row(answer)
            size += len(row)
            if size > limit:
                lines.append("| … | (more in the files below) | | | |")
                return lines + evaluation_lines(report)
            lines.append(row)
    return lines + evaluation_lines(report)


def _row(answer: SeedComparison) -> str:
    base = _cell(answer.base, answer.base_error)
    trained = _cell(answer.trained, answer.trained_error)
    scores = f"{_score(answer.base_score)} / {_score(answer.trained_score)}"
    mark = {"trained": " ✅", "base": " ⬅️"}.get(answer.winner, "")
    return (
        f"| {table_cell(answer.question, ANSWER_CELL)} | {table_cell(answer.expected, ANSWER_CELL)}"
        f" | {base} | {trained} | {scores}{mark} |"
    )


def _cell(text: str, error: str) -> str:
    if text:
        return table_cell(text, ANSWER_CELL)
    return f"⚠️ {table_cell(error or 'no answer', ANSWER_CELL)}"


def _score(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def _name(text: str) -> str:
    return text.replace("`", "")[:200]


def evaluation_lines(report: ModelTestReport) -> list[str]:
    """`ilab model evaluate`'s scores, when it ran."""
    evaluation = report.evaluation
    if evaluation is None:
        return []
    head = f"**`ilab model evaluate --benchmark {_name(evaluation.benchmark)}`**"
    if evaluation.error:
        return ["", head, "", f"⚠️ {table_cell(evaluation.error, 1000)}"]
    rows = [f"| {table_cell(k, 100)} | {table_cell(v, 100)} |" for k, v in evaluation.scores]
    return ["", head, "", "| Score | Value |", "|---|---|", *rows]


MANIFEST_MISMATCH = (
    "the trained model's files do not match its manifest (`model/model.json`): {detail}. "
    "Run `train` again."
)
NO_SEEDS = "the changed `qna.yaml` files have no seed questions to ask"


def serve_failed(which: str, detail: str) -> str:
    """The `test` job's error when a model server never answered."""
    return f"the {which} model could not be served: {detail}"
