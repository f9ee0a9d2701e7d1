"""Texts of `train` (pure): why a request was refused, the check run while training runs (with
its loss curve) and the model part of the result: links, the one-line download, how to chat
with it, what comes next."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass

from instruct_lab_bot.core.jobs import Job
from instruct_lab_bot.core.messages.format import (
    CHECK_OUTPUT_LIMIT,
    code_block,
    cut,
    escape_md,
    format_duration,
    format_size,
    short_sha,
)
from instruct_lab_bot.core.train_status import TrainStatus
from instruct_lab_bot.core.training import TrainDecision, TrainRefusal


def train_refused(decision: TrainDecision, username: str, max_per_repo: int) -> str:
    """The reply to a `train` request that queued nothing."""
    refusal = decision.refusal
    if refusal is TrainRefusal.BAD_ARGS:
        return (
            f"⚠️ Use `@{username} train` (the newest successful `generate` of this PR's head) "
            f"or `@{username} train --from <generate job id>`. Nothing was queued."
        )
    if refusal is TrainRefusal.PR_BUSY and decision.busy is not None:
        busy = decision.busy
        return (
            f"⏳ A training of this PR is already {busy.state} (job `{busy.id}`, requested by "
            f"@{busy.requester}); one runs at a time. `@{username} cancel` stops it."
        )
    if refusal is TrainRefusal.REPO_BUSY:
        return (
            f"⏳ This repository already has {max_per_repo} trainings queued or running, the "
            "most an admin allows at once (`ILAB_BOT_TRAIN_MAX_PER_REPO`). Ask again when one "
            "has finished. Nothing was queued."
        )
    if refusal is TrainRefusal.NOT_THIS_PR:
        return (
            "⚠️ `train --from` must name a successful `generate` job of **this** pull request "
            f"(`@{username} status` lists them). Nothing was queued."
        )
    return (
        "⚠️ There is no successful `generate` for this PR's current head yet, and training "
        f"needs its data: run `@{username} generate` first, then `@{username} train` once it "
        f"has succeeded (or `@{username} train --from <job id>` for an older one)."
    )


def train_progress_title(status: TrainStatus) -> str:
    parts = []
    if status.epoch is not None:
        parts.append(f"Epoch {status.epoch + 1}" + (f"/{status.epochs}" if status.epochs else ""))
    if status.step is not None:
        parts.append(
            f"step {status.step}" + (f"/{status.total_steps}" if status.total_steps else "")
        )
    if status.loss is not None:
        parts.append(f"loss {status.loss:.4g}")
    if status.eta_seconds is not None:
        parts.append(f"ETA {format_duration(status.eta_seconds)}")
    return (", ".join(parts) or "Training")[:255]


def check_run_training(
    job: Job, status: TrainStatus, tail: Sequence[str], *, image_url: str = "", resumed: str = ""
) -> dict[str, object]:
    """The check run while training runs: its numbers, the loss curve and the newest lines."""
    summary = [
        f"Training on the data of `generate` job `{escape_md(job.source_job)}` "
        f"({short_sha(job.head_sha)}) for {format_duration(job.duration)}.",
        "",
    ]
    if resumed:
        summary += [f"♻️ Resumed from the last uploaded checkpoint, `{escape_md(resumed)}`.", ""]
    summary += [f"- **{label}:** {value}" for label, value in status_rows(status)]
    output: dict[str, object] = {
        "title": train_progress_title(status),
        "summary": cut("\n".join(summary), CHECK_OUTPUT_LIMIT),
        "text": "### Log (newest lines)\n\n" + code_block(tail, CHECK_OUTPUT_LIMIT - 100),
    }
    if image_url:
        output["images"] = [{"alt": "Training loss", "image_url": image_url}]
    return {"status": "in_progress", "output": output}


def status_rows(status: TrainStatus) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    if status.epoch is not None:
        rows.append(
            ("Epoch", f"{status.epoch + 1}" + (f" of {status.epochs}" if status.epochs else ""))
        )
    if status.step is not None:
        rows.append(
            ("Step", f"{status.step}" + (f" of {status.total_steps}" if status.total_steps else ""))
        )
    if status.loss is not None:
        rows.append(("Loss", f"{status.loss:.4g}"))
    if status.throughput is not None:
        rows.append(("Throughput", f"{status.throughput:.3g} samples/s"))
    if status.eta_seconds is not None:
        rows.append(("ETA", format_duration(status.eta_seconds)))
    return rows


@dataclass(frozen=True)
class ModelLink:
    name: str
    url: str
    size: int


@dataclass(frozen=True)
class TrainSummary:
    """The model a train job stashed, for its result comment."""

    data_job: str
    base_model: str
    files: Sequence[ModelLink]
    manifest_url: str
    final_loss: float | None
    s3_uri: str = ""  # `s3://bucket/prefix/model/` when the store is S3
    resumed: str = ""  # the checkpoint a taken-over job resumed from
    loss_curve_url: str = ""
    bot: str = "instruct-lab-bot"  # the bot's username, for the next commands


def fetch_command(summary: TrainSummary) -> str:
    """One line that downloads the whole model into `./model`."""
    if summary.s3_uri:
        return f"aws s3 cp --recursive {shlex.quote(summary.s3_uri)} ./model"
    parts = ["mkdir -p model && cd model"]
    parts += [
        f"curl -fSL -o {shlex.quote(f.name)} {shlex.quote(f.url)}"
        for f in summary.files
        if "/" not in f.name
    ]
    return " && ".join(parts)


def train_title(summary: TrainSummary, duration: float) -> str:
    loss = f", final loss {summary.final_loss:.4g}" if summary.final_loss is not None else ""
    return f"Trained in {format_duration(duration)}{loss}"


def train_details(summary: TrainSummary) -> list[str]:
    """The model part of a successful train job's result."""
    lines = [""]
    facts = [f"trained on `generate` job `{escape_md(summary.data_job)}`"]
    if summary.base_model:
        facts.append(f"base model `{escape_md(summary.base_model)}`")
    if summary.final_loss is not None:
        facts.append(f"final loss **{summary.final_loss:.4g}**")
    lines.append("**Model:** " + " · ".join(facts))
    if summary.resumed:
        lines += [
            "",
            f"♻️ Resumed from checkpoint `{escape_md(summary.resumed)}` after a worker was lost.",
        ]
    if summary.loss_curve_url:
        lines += ["", f"![Training loss]({summary.loss_curve_url})"]
    lines += ["", "| File | Size |", "|---|---:|"]
    lines += [f"| [{escape_md(f.name)}]({f.url}) | {format_size(f.size)} |" for f in summary.files]
    lines += ["", f"[`model.json`]({summary.manifest_url}) lists every file with its sha256."]
    lines += ["", "Download the whole model:", "", code_block([fetch_command(summary)], 20_000)]
    lines += ["", "Chat with it locally:", "", code_block(["ilab model chat --model ./model"], 200)]
    username = summary.bot
    lines += [
        "",
        f"Next: `@{username} test` compares its answers to the seed questions with the base "
        f"model's; `@{username} serve` puts it online for a while.",
    ]
    return lines
