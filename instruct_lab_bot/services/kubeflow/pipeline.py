"""The training pipeline, Kubeflow Pipelines v2, defined with the kfp SDK and compiled to its
IR (what the Data Science Pipelines API of OpenShift AI runs).

Three lightweight Python components, each a call into `steps.py` in the training image (which
has the bot and kfp installed, so kfp is not pip-installed at run time): `fetch-data` →
`train-model` (GPU, tolerations, node selector) → `publish-model`. Every task gets the S3 data
connection's Secret as `AWS_*` variables and is never cached (the same inputs must train
again when asked); fetch and publish are retried (publishing resumes its uploads), training
is not. kfp is the `kubeflow` extra: imported only by this module.
"""

# No `from __future__ import annotations`: kfp reads the components' annotations as objects.

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kfp import compiler, dsl, kubernetes

__all__ = ["PIPELINE_NAME", "PipelineOptions", "compile_pipeline", "training_pipeline"]

PIPELINE_NAME = "instruct-lab-bot-train"
#: The keys of an OpenShift AI S3 data connection Secret, passed to the tasks as variables.
S3_SECRET_KEYS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_DEFAULT_REGION",
    "AWS_S3_ENDPOINT",
)


@dataclass(frozen=True)
class PipelineOptions:
    """What is fixed when the pipeline is compiled: the image and where the training runs."""

    image: str
    gpus: int = 1
    gpu_resource: str = "nvidia.com/gpu"
    node_selector: tuple[str, str] | None = None
    s3_secret: str = ""  # the data connection Secret; "" = the image's own credentials
    memory: str = ""  # e.g. "64G": the training task's memory request and limit


def fetch_data(store_url: str, data_key: str, data: dsl.Output[dsl.Dataset]) -> None:
    """Fetch the generate job's training file from the object store."""
    from instruct_lab_bot.services.kubeflow import steps

    steps.fetch_data(store_url, data_key, data.path)


def train_model(
    store_url: str,
    output_key: str,
    train_plan: str,
    progress_interval: float,
    data: dsl.Input[dsl.Dataset],
    model: dsl.Output[dsl.Model],
) -> None:
    """`ilab model train` on the fetched data; its output lines mirrored for the bot."""
    from instruct_lab_bot.services.kubeflow import steps

    loss = steps.train_model(
        store_url, output_key, train_plan, data.path, model.path, progress_interval
    )
    if loss is not None:
        model.metadata["final_loss"] = loss


def publish_model(
    store_url: str, output_key: str, manifest: str, model: dsl.Input[dsl.Model]
) -> None:
    """Upload the model's files and `model.json` under the train job's `model/` prefix."""
    from instruct_lab_bot.services.kubeflow import steps

    loss = model.metadata.get("final_loss")
    steps.publish_model(store_url, output_key, manifest, model.path, loss)


def _component(func: Any, image: str) -> Any:
    return dsl.component(func, base_image=image, install_kfp_package=False)


def _platform(task: Any, options: PipelineOptions) -> Any:
    task.set_caching_options(False)
    if options.s3_secret:
        keys = {key: key for key in S3_SECRET_KEYS}
        kubernetes.use_secret_as_env(task, options.s3_secret, keys, optional=False)
    return task


def _on_gpus(task: Any, options: PipelineOptions) -> None:
    if options.gpus > 0:
        task.set_accelerator_type(options.gpu_resource).set_accelerator_limit(options.gpus)
        kubernetes.add_toleration(task, key=options.gpu_resource, operator="Exists")
    if options.node_selector:
        kubernetes.add_node_selector(task, *options.node_selector)
    if options.memory:
        task.set_memory_request(options.memory).set_memory_limit(options.memory)


def training_pipeline(options: PipelineOptions) -> Any:
    """The pipeline (a kfp graph component) for these options."""
    fetch = _component(fetch_data, options.image)
    train = _component(train_model, options.image)
    publish = _component(publish_model, options.image)

    description = "Train a model on a PR's generated data"

    @dsl.pipeline(name=PIPELINE_NAME, description=description)  # type: ignore[untyped-decorator]
    def pipeline(
        store_url: str,
        data_key: str,
        output_key: str,
        train_plan: str,
        manifest: str,
        progress_interval: float = 30.0,
    ) -> None:
        fetched = _platform(fetch(store_url=store_url, data_key=data_key), options)
        fetched.set_retry(num_retries=2)  # object store hiccups; training is never retried
        trained = train(
            store_url=store_url,
            output_key=output_key,
            train_plan=train_plan,
            progress_interval=progress_interval,
            data=fetched.outputs["data"],
        )
        _on_gpus(_platform(trained, options), options)
        published = publish(
            store_url=store_url,
            output_key=output_key,
            manifest=manifest,
            model=trained.outputs["model"],
        )
        _platform(published, options).set_retry(num_retries=2)

    return pipeline


def compile_pipeline(options: PipelineOptions) -> dict[str, Any]:
    """The compiled IR as the run API takes it inline: the pipeline spec alone, or
    `{"pipeline_spec": …, "platform_spec": …}` when Kubernetes settings are present."""
    with tempfile.TemporaryDirectory(prefix="kfp-") as tmp:
        path = Path(tmp) / "pipeline.yaml"
        compiler.Compiler().compile(training_pipeline(options), package_path=str(path))
        docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
    if len(docs) == 1:
        return dict(docs[0])
    return {"pipeline_spec": docs[0], "platform_spec": docs[1]}


def run_parameters(
    store_url: str,
    data_key: str,
    output_key: str,
    train_plan: dict[str, object],
    manifest: dict[str, Any],
    progress_interval: float,
) -> dict[str, object]:
    """The runtime parameters of one run."""
    return {
        "store_url": store_url,
        "data_key": data_key,
        "output_key": output_key,
        "train_plan": json.dumps(train_plan),
        "manifest": json.dumps(manifest),
        "progress_interval": float(progress_interval),
    }
