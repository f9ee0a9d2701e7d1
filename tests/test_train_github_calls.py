"""GitHub calls of a train job (issue 17, item 4): its check run follows the same policy as
generate's (tests/test_github_calls.py): a redraw that shows the same is not sent, and the
loss curve's link changes only when the picture did."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from instruct_lab_bot.core.jobs import State
from instruct_lab_bot.core.training import TrainRequest, TrainRunResult
from instruct_lab_bot.services.worker.train_backend import OnTrainLine
from tests import test_train_worker
from tests.fixtures.worker import kind
from tests.test_github_calls import skipped, until
from tests.test_train_worker import TrainRig, bar, full_line, write_model

train_rig = test_train_worker.train_rig  # a real Redis and S3 (moto), in-memory GitHub


def progress_updates(r: TrainRig) -> list[dict[str, Any]]:
    return [u for u in r.github.checks.updates if kind(u) == "progress"]


async def test_a_training_redraw_that_shows_the_same_is_not_sent(
    train_rig: Callable[..., TrainRig],
) -> None:
    async def script(
        request: TrainRequest, on_line: OnTrainLine, cancel: asyncio.Event | None
    ) -> TrainRunResult:
        on_line("stderr", full_line(0, 1, 2.5))  # a loss point: the curve is drawn
        on_line("stderr", bar(0, 1, 4))
        await until(lambda: len(progress_updates(r)) == 1)
        on_line("stderr", bar(0, 1, 4))  # the same frame again: nothing new to show
        await until(lambda: skipped(r, "unchanged") >= 1)
        on_line("stderr", bar(0, 2, 4))  # a new frame (the log tail), no new loss point
        await until(lambda: len(progress_updates(r)) == 2)
        write_model(request.output_dir, 8)
        return TrainRunResult("exited", 0, 3.0)

    r = train_rig(script, train_epochs=2)
    job = await r.train_after_generate()

    assert job.state is State.SUCCEEDED, job.error
    assert r.github.checks.kinds() == ["started", "progress", "progress", "completed:success"]
    first, second = (u["output"] for u in progress_updates(r))
    assert first != second
    assert first["title"].startswith("Epoch 1/2, step 1") and first["text"] != second["text"]
    # the picture did not change between the two, so neither did its link
    assert first["images"] == second["images"]
    assert "loss.png" in first["images"][0]["image_url"]
