"""A job's scratch folder: the checkout, the outputs and the run log, removed after the job."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from dataclasses import dataclass
from pathlib import Path

from instruct_lab_bot.core.job_outcome import LOG_NAME


@dataclass(frozen=True)
class Workspace:
    """`<work_dir>/<job id>/`: `taxonomy/` (the checkout), `out/` and the log."""

    root: Path

    @property
    def taxonomy(self) -> Path:
        return self.root / "taxonomy"

    @property
    def out_dir(self) -> Path:
        return self.root / "out"

    @property
    def log_path(self) -> Path:
        return self.root / LOG_NAME

    async def fresh(self) -> None:
        """An empty folder (a re-run job finds its previous attempt's files gone)."""
        if self.root.exists():
            await asyncio.to_thread(shutil.rmtree, self.root)
        self.root.mkdir(parents=True)

    async def remove(self) -> None:
        with contextlib.suppress(OSError):
            await asyncio.to_thread(shutil.rmtree, self.root, True)
