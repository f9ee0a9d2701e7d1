"""The training pipeline: its compiled IR (checked against kfp's own protobuf schema), and a
whole run with kfp's own local runner (SubprocessRunner) on the `ilab` stand-in, the data and
the model in a real S3 endpoint (moto)."""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import boto3
import pytest
from google.protobuf import json_format
from kfp import local
from kfp.pipeline_spec import pipeline_spec_pb2

from instruct_lab_bot.core.ilab.versions import PROFILES, IlabProfile
from instruct_lab_bot.core.kubeflow import PROGRESS_NAME, STEP_NAMES, parse_progress
from instruct_lab_bot.core.model_manifest import ModelManifest
from instruct_lab_bot.core.settings import Settings
from instruct_lab_bot.core.training import TrainRequest
from instruct_lab_bot.services.kubeflow.backend import pod_plan
from instruct_lab_bot.services.kubeflow.pipeline import (
    PIPELINE_NAME,
    PipelineOptions,
    compile_pipeline,
    run_parameters,
    training_pipeline,
)
from instruct_lab_bot.services.worker.train_backend import hyperparameters
from testkit.ilab_model import write_hf_model
from tests.fixtures.s3 import S3Server

OPTIONS = PipelineOptions(
    image="quay.io/example/instruct-lab-bot-train:python3.11",
    gpus=2,
    node_selector=("nvidia.com/gpu.present", "true"),
    s3_secret="aws-connection-training",
    memory="64G",
)


def _ir() -> tuple[dict[str, Any], dict[str, Any]]:
    compiled = compile_pipeline(OPTIONS)
    spec, platform = compiled["pipeline_spec"], compiled["platform_spec"]
    json_format.ParseDict(spec, pipeline_spec_pb2.PipelineSpec())  # kfp's own schema
    json_format.ParseDict(platform, pipeline_spec_pb2.PlatformSpec())
    return spec, platform


def test_compiled_ir_has_the_three_steps_in_order_on_the_image() -> None:
    spec, _ = _ir()
    assert spec["pipelineInfo"]["name"] == PIPELINE_NAME
    tasks = spec["root"]["dag"]["tasks"]
    assert sorted(tasks) == sorted(STEP_NAMES)
    assert "dependentTasks" not in tasks["fetch-data"]
    assert tasks["train-model"]["dependentTasks"] == ["fetch-data"]
    assert tasks["publish-model"]["dependentTasks"] == ["train-model"]
    model_in = tasks["publish-model"]["inputs"]["artifacts"]["model"]["taskOutputArtifact"]
    assert model_in == {"outputArtifactKey": "model", "producerTask": "train-model"}
    assert all(task["cachingOptions"].get("enableCache") is not True for task in tasks.values())
    assert "retryPolicy" not in tasks["train-model"]  # a training is never started twice
    assert tasks["publish-model"]["retryPolicy"]["maxRetryCount"] == 2
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert set(params) == {
        "store_url",
        "data_key",
        "output_key",
        "train_plan",
        "manifest",
        "progress_interval",
    }
    for name, executor in spec["deploymentSpec"]["executors"].items():
        container = executor["container"]
        assert container["image"] == OPTIONS.image, name
        # The image has kfp and the bot: nothing is pip-installed when a task starts.
        assert not any("pip install" in part for part in container["command"]), name
        assert any(
            "instruct_lab_bot.services.kubeflow import steps" in p for p in container["command"]
        )


def test_compiled_ir_asks_for_gpus_only_for_training() -> None:
    spec, platform = _ir()
    executors = spec["deploymentSpec"]["executors"]
    resources = executors["exec-train-model"]["container"]["resources"]
    assert resources["accelerator"]["resourceType"] == "nvidia.com/gpu"
    assert resources["accelerator"]["resourceCount"] == "2"
    assert resources["memoryLimit"] == 64.0 or resources.get("resourceMemoryLimit") == "64G"
    assert "resources" not in executors["exec-fetch-data"]["container"]
    k8s = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    train = k8s["exec-train-model"]
    assert train["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists"}]
    assert train["nodeSelector"]["labels"] == {"nvidia.com/gpu.present": "true"}
    for name in ("exec-fetch-data", "exec-train-model", "exec-publish-model"):
        (secret,) = k8s[name]["secretAsEnv"]
        assert secret["secretName"] == "aws-connection-training"
        envs = {item["envVar"] for item in secret["keyToEnv"]}
        assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_S3_ENDPOINT"} <= envs
        assert "nodeSelector" not in k8s[name] or name == "exec-train-model"


def test_without_kubernetes_options_the_ir_is_the_pipeline_spec_alone() -> None:
    compiled = compile_pipeline(PipelineOptions(image="quay.io/example/train:python3.11", gpus=0))
    assert "pipeline_spec" not in compiled
    assert compiled["pipelineInfo"]["name"] == PIPELINE_NAME
    json_format.ParseDict(compiled, pipeline_spec_pb2.PipelineSpec())


# ------------------------------------------------------------------------- kfp.local run


#: GPUs and memory are Kubernetes matters: kfp's local runner says it ignores them.
LOCAL_RUNNER_IGNORES_RESOURCES = pytest.mark.filterwarnings(
    "ignore:Task 'train-model'. settings .* have no effect in the current local runner:UserWarning"
)


@pytest.fixture
def kfp_local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """kfp's local runner, tasks in subprocesses of this venv's Python (no venv per task: the
    bot and kfp are installed here, as in the training image)."""
    root = tmp_path / "kfp-root"
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root))
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}:{Path('/usr/bin')}:{Path('/bin')}")
    yield root


def _answer(i: int) -> dict[str, str]:
    return {"role": "assistant", "content": f"answer {i}"}


def _s3(server: S3Server) -> Any:
    return boto3.client("s3", endpoint_url=server.endpoint_url, region_name=server.region)


def _run_pipeline(
    bucket: str,
    server: S3Server,
    monkeypatch: pytest.MonkeyPatch,
    base: Path,
    mode: str = "ok",
    profile: IlabProfile = PROFILES[1],
) -> dict[str, object]:
    monkeypatch.setenv("AWS_S3_ENDPOINT", server.endpoint_url)  # as a data connection names it
    monkeypatch.setenv("ILAB_STANDIN_DURATION", "0.5")
    monkeypatch.setenv("ILAB_STANDIN_TRAIN_MODE", mode)
    monkeypatch.setenv("ILAB_STANDIN_VERSION", profile.tested)
    data = b"".join(
        json.dumps({"messages": [{"role": "user", "content": f"q{i}"}, _answer(i)]}).encode()
        + b"\n"
        for i in range(8)
    )
    _s3(server).put_object(Bucket=bucket, Key="bot/jobs/gen-1/skills_train_msgs_x.jsonl", Body=data)
    settings = replace(Settings(), kfp_ilab_command=("ilab-standin",))
    write_hf_model(base)  # the base model, as the training image would hold it
    settings = replace(settings, train_epochs=1, train_device="cuda", train_pipeline="accelerated")
    settings = replace(settings, train_base_model=str(base))
    request = TrainRequest(
        job_id="tr-1",
        data_path=Path("/nowhere/on/the/worker.jsonl"),
        data_key="jobs/gen-1/skills_train_msgs_x.jsonl",
        base_model=str(base),
        hyperparameters=hyperparameters(settings),
        output_dir=Path("/nowhere/out"),
        output_key="jobs/tr-1/",
        workspace=Path("/nowhere"),
        timeout=600.0,
    )
    plan = pod_plan(profile, settings, request)
    manifest: dict[str, object] = {"train_job": "tr-1", "data_job": "gen-1"}
    manifest["base_model"] = str(base)
    manifest |= {"ilab_version": profile.tested, "hyperparameters": {"epochs": "1"}}
    params = run_parameters(
        f"s3://{bucket}/bot",
        "jobs/gen-1/skills_train_msgs_x.jsonl",
        "jobs/tr-1/",
        {"argv": plan.argv, "model_glob": plan.model_glob},
        manifest,
        progress_interval=0.2,
    )
    training_pipeline(OPTIONS)(**params)
    return params


@LOCAL_RUNNER_IGNORES_RESOURCES
@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.tested)
def test_the_pipeline_runs_locally_on_the_standin_and_publishes_the_model(
    profile: IlabProfile,
    kfp_local: Path,
    s3_server: S3Server,
    s3_bucket: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    _run_pipeline(s3_bucket, s3_server, monkeypatch, tmp_path / "base", profile=profile)
    s3 = _s3(s3_server)
    raw = s3.get_object(Bucket=s3_bucket, Key="bot/jobs/tr-1/model/model.json")["Body"].read()
    manifest = ModelManifest.from_json(raw)
    assert (manifest.train_job, manifest.data_job, manifest.ilab_version) == (
        "tr-1",
        "gen-1",
        profile.tested,
    )
    assert manifest.files
    assert manifest.final_loss is not None  # the training's last loss, through the artifact
    for entry in manifest.files:
        body = s3.get_object(Bucket=s3_bucket, Key=f"bot/jobs/tr-1/model/{entry.name}")["Body"]
        data = body.read()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (entry.size, entry.sha256)
    progress = parse_progress(
        s3.get_object(Bucket=s3_bucket, Key=f"bot/jobs/tr-1/{PROGRESS_NAME}")["Body"].read()
    )
    assert progress is not None and progress.done and progress.lines


@LOCAL_RUNNER_IGNORES_RESOURCES
@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("fail", "ilab model train ended with exit code 1"),
        ("no-checkpoint", "ilab model train wrote no model"),
    ],
)
def test_a_failed_training_fails_the_run_and_publishes_nothing(
    mode: str,
    reason: str,
    kfp_local: Path,
    s3_server: S3Server,
    s3_bucket: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    with pytest.raises(RuntimeError, match="train-model"):
        _run_pipeline(s3_bucket, s3_server, monkeypatch, tmp_path / "base", mode=mode)
    listed = _s3(s3_server).list_objects_v2(Bucket=s3_bucket, Prefix="bot/jobs/tr-1/model/")
    assert listed.get("KeyCount", 0) == 0
    raw = _s3(s3_server).get_object(Bucket=s3_bucket, Key=f"bot/jobs/tr-1/{PROGRESS_NAME}")
    progress = parse_progress(raw["Body"].read())
    assert progress is not None and progress.done
    assert progress.lines[-1] == ("stderr", f"instruct-lab-bot: {reason}")  # told to the PR
