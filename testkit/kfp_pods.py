"""The pipeline's pods for the KFP API emulator: each task runs the pipeline's own step code
(`services/kubeflow/steps.py`, as the training image's components call it) in a thread, with
the run's parameters, and passes its artifacts to the next task through local folders, as
KFP passes them through its pipeline root."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from instruct_lab_bot.services.kubeflow import steps
from testkit.kfp_emulator import EmulatedRun


class StepPods:
    """`KfpEmulator.pods`: run a task; True when it succeeded (the step exited 0)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.failures: list[str] = []

    async def __call__(self, run: EmulatedRun, task: str) -> bool:
        folder = self.root / run.run_id
        folder.mkdir(parents=True, exist_ok=True)
        try:
            await asyncio.to_thread(self._step, run.parameters, task, folder)
        except (Exception, SystemExit) as exc:  # a step's failure is its pod's exit code
            self.failures.append(f"{task}: {type(exc).__name__}: {exc}")
            return False
        return True

    @staticmethod
    def _step(params: dict[str, object], task: str, folder: Path) -> None:
        store, output = str(params["store_url"]), str(params["output_key"])
        data, model, meta = folder / "data", folder / "model", folder / "model-metadata.json"
        if task == "fetch-data":
            steps.fetch_data(store, str(params["data_key"]), str(data))
        elif task == "train-model":
            plan, interval = str(params["train_plan"]), float(str(params["progress_interval"]))
            loss = steps.train_model(store, output, plan, str(data), str(model), interval)
            meta.write_text(json.dumps({"final_loss": loss}))
        elif task == "publish-model":
            loss = json.loads(meta.read_text())["final_loss"]
            steps.publish_model(store, output, str(params["manifest"]), str(model), loss)
        else:
            raise ValueError(f"no such step: {task}")
