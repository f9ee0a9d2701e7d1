"""The worker's start-up imports: the idle worker stays under its RSS target
(docs/benchmarks.md, < 80 MB) only while the heavy libraries that one kind of job uses are
imported when such a job runs, not when the worker starts and waits for work."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from tests.fixtures.bot import settings_env
from tests.fixtures.world import World

#: Tens of MB each: the loss plot of `train` (matplotlib, numpy, PIL), the Kubeflow and KServe
#: backends, `test`'s scoring, the S3 store (the worker here stores artifacts in a folder).
HEAVY = (
    "matplotlib",
    "numpy",
    "PIL",
    "kfp",
    "kubernetes_asyncio",
    "rouge_score",
    "nltk",
    "aioboto3",
    "boto3",
)

#: `instruct-lab-bot worker` up to the point where it waits for jobs: the real start-up path
#: (preflight, open_worker), then the loop replaced by a report of what is loaded.
WORKER_UNTIL_IDLE = f"""
import json, sys
from instruct_lab_bot import cli
from instruct_lab_bot.services.worker import app

async def report(self, stop):
    print("HEAVY=" + json.dumps(sorted(h for h in {HEAVY!r} if h in sys.modules)), flush=True)

app.Worker.run = report
sys.exit(cli.main(["worker"]))
"""


async def test_the_idle_worker_starts_without_the_heavy_libraries(
    world: World, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "ILAB_BOT_"))}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        WORKER_UNTIL_IDLE,
        env={**env, **settings_env(world.settings)},
        cwd=tmp_path,  # no developer's .env
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await process.communicate()
    lines = out.decode(errors="replace").splitlines()
    reports = [line.removeprefix("HEAVY=") for line in lines if line.startswith("HEAVY=")]
    assert process.returncode == 0 and reports, "\n".join(lines[-20:])
    assert json.loads(reports[-1]) == []


def test_the_deferred_plot_import_still_loads() -> None:
    """The loss plot's import at first use names modules that exist (a typo would only fail
    in a train job)."""
    from instruct_lab_bot.adapters.plots import loss_curve_png

    assert loss_curve_png([(1, 2.0), (2, 1.5)]).startswith(b"\x89PNG")
