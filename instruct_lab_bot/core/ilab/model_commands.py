"""The `ilab model …` command lines past generation, per profile (pure): `model serve`
(`serve_argv`), `model train` (`train_run`) and `model evaluate` (`evaluate_argv`).

Only paths and configured values go in, never PR text. Facts from the released packages
(../shared/ilab/CLI.md §6, §8, §9); `make ilab-contract` parses every shape built here with
the real releases' click commands (`model_bot_argvs`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Literal

from instruct_lab_bot.core.ilab.versions import IlabProfile

__all__ = [
    "CKPT_DIR",
    "SERVE_CONFIG_NAME",
    "SIMPLE_GGUF",
    "ServeRun",
    "TrainInput",
    "TrainParams",
    "TrainRun",
    "TrainUnsupported",
    "serve_argv",
    "train_run",
]

#: 0.18 has no --host/--port: the address comes from the config file's `serve.host_port`, so
#: the worker writes this small config (every other key takes ilab's defaults) into the job's
#: folder and points `--config` at it.
SERVE_CONFIG_NAME = "serve-config.yaml"
FlagKind = Literal["flag", "text", "path", "integer", "float", "choice"]


@dataclass(frozen=True)
class ServeRun:
    """`ilab model serve` for one model on one address.

    Before starting it, write `config_text` to `config_file` when it is not None (0.18).
    `ilab model serve` exits 0 even when the server could not start (port taken, bad model):
    it is ready when GET `models_url` lists `model_id`, the id to send as `model`."""

    argv: list[str]
    base_url: str  # http://host:port/v1, what an OpenAI client takes
    model_id: str  # the served id: the model path as ilab was given it
    config_file: Path | None
    config_text: str | None

    @property
    def models_url(self) -> str:
        return f"{self.base_url}/models"

    @property
    def chat_url(self) -> str:
        return f"{self.base_url}/chat/completions"


def _serve_args(profile: IlabProfile, model_path: PurePath, host: str, port: int) -> list[str]:
    args = ["--model-path", str(model_path)]
    if profile.serve_address_flags:
        args += ["--host", host, "--port", str(port)]
    return args


def serve_config_text(host: str, port: int) -> str:
    """0.18's config for `model serve` on host:port (ilab fills every other key)."""
    return f'serve:\n  host_port: "{host}:{port}"\n'


def serve_argv(
    profile: IlabProfile,
    ilab_command: Sequence[str],
    model_path: Path,
    host: str,
    port: int,
    workdir: Path,
) -> ServeRun:
    """Serve `model_path` (a GGUF file: llama-cpp; a folder of HF safetensors: vLLM, picked by
    ilab) on host:port. `ilab_command` is ILAB_BOT_ILAB_COMMAND as the worker runs it (with
    `--config DEFAULT` added when the admin gave no config); on 0.18 a `--config` naming a
    file in `workdir` comes after it (click keeps the last), the only way to set the port."""
    command = [*ilab_command]
    config_file: Path | None = None
    config_text: str | None = None
    if not profile.serve_address_flags:
        config_file = workdir / SERVE_CONFIG_NAME
        config_text = serve_config_text(host, port)
        command += ["--config", str(config_file)]
    argv = [*command, "model", "serve", *_serve_args(profile, model_path, host, port)]
    return ServeRun(
        argv=argv,
        base_url=f"http://{_url_host(host)}:{port}/v1",
        model_id=str(PurePath(model_path)),
        config_file=config_file,
        config_text=config_text,
    )


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


# --------------------------------------------------------------------------------------------
# `ilab model train`

#: Where the `simple` pipeline leaves its final model, under ilab's data home
#: (`$XDG_DATA_HOME`, default `~/.local/share`): always this name, the previous one deleted.
SIMPLE_GGUF = "instructlab/checkpoints/ggml-model-f16.gguf"
CKPT_DIR = "checkpoints"  # --ckpt-output-dir, in the job's folder
TRAIN_DATA_DIR = "train-data"  # --data-output-dir (the tokenised data.jsonl)
Resume = Literal["full-state", "model-path", "restart"]


class TrainUnsupported(ValueError):
    """The pipeline/device pair the admin chose cannot run on this release (the message says
    why and what works)."""


@dataclass(frozen=True)
class TrainParams:
    """What to train with (from ILAB_BOT_TRAIN_*): the base model (a local HF folder or an
    HF id), pipeline (`simple` | `full` | `accelerated`), device, and hyperparameters (None:
    ilab's default)."""

    base_model: str
    pipeline: str = "simple"
    device: str = "cpu"
    epochs: int = 1
    effective_batch_size: int | None = None
    learning_rate: float | None = None


@dataclass(frozen=True)
class TrainInput:
    """Where the generate job's data sits in the train job's folder (`workdir`): the mixed
    `*_train_msgs_*.jsonl` (full, accelerated) and the folder holding its `train_*.jsonl` and
    `test_*.jsonl` (simple). `resume_model`: a checkpoint to continue from (resume
    "model-path"), having done `epochs_done` epochs."""

    messages_file: Path
    generate_dir: Path
    workdir: Path
    resume_model: Path | None = None
    epochs_done: int = 0


@dataclass(frozen=True)
class TrainRun:
    """`ilab model train` for one job, and where its outputs appear (globs relative to
    `cwd`, the job's folder; run it there: `simple` writes `./training_results`).

    - `checkpoint_globs`: folders written as training goes (upload each when it appears);
    - `model_glob`: the final model folder (the highest-numbered match); `simple` also leaves
      its GGUF at SIMPLE_GGUF under ilab's data home, and deletes the folder's safetensors;
    - `resume`: how a taken-over job continues: "full-state" (restore `checkpoints/full_state/`
      and run the same argv: the training library loads the latest epoch), "model-path" (pass
      the last `hf_format/samples_*` as TrainInput.resume_model), "restart" (LoRA adapters
      only: start again);
    - `exit_code_trusted`: False on 0.18's training library, which exits 0 after "Operation
      failed": success is a `hf_format/samples_*` folder with a model in it."""

    argv: list[str]
    cwd: Path
    pipeline: str
    checkpoint_globs: tuple[str, ...]
    model_glob: str
    gguf_in_data_home: str | None
    resume: Resume
    exit_code_trusted: bool


def _check_pipeline(profile: IlabProfile, params: TrainParams) -> None:
    pipeline, device = params.pipeline, params.device
    if profile.train_pipelines:
        if pipeline not in profile.train_pipelines:
            raise TrainUnsupported(f"ilab {profile.name} has no --pipeline {pipeline}")
        if pipeline == "accelerated" and device not in ("cuda", "hpu"):
            raise TrainUnsupported("--pipeline accelerated needs --device cuda (or hpu)")
        if pipeline == "full" and device not in ("cpu", "mps"):
            raise TrainUnsupported("--pipeline full runs on --device cpu (or mps); use accelerated")
    elif pipeline == "full":
        raise TrainUnsupported(f"ilab {profile.name} has no full pipeline: simple or accelerated")
    elif pipeline == "accelerated" and device != "cuda":
        raise TrainUnsupported(f"ilab {profile.name}'s training library needs --device cuda")


def _train_args(profile: IlabProfile, params: TrainParams, data: TrainInput) -> list[str]:
    model = str(data.resume_model or params.base_model)
    epochs = max(params.epochs - data.epochs_done, 1)
    work = data.workdir
    args = ["--model-path", model, "--num-epochs", str(epochs)]
    args += ["--ckpt-output-dir", str(work / CKPT_DIR)]
    args += ["--data-output-dir", str(work / TRAIN_DATA_DIR)]
    if params.pipeline == "simple":
        args += ["--input-dir", str(data.generate_dir)]
        return [*args, *(["--pipeline", "simple"] if profile.train_pipelines else ["--legacy"]),
                "--device", params.device]  # fmt: skip
    args += ["--data-path", str(data.messages_file)]
    if params.effective_batch_size is not None:
        args += ["--effective-batch-size", str(params.effective_batch_size)]
    if params.learning_rate is not None:
        args += ["--learning-rate", repr(params.learning_rate)]
    if profile.train_pipelines:
        args += ["--pipeline", params.pipeline, "--device", params.device]
    return args


def train_run(
    profile: IlabProfile, ilab_command: Sequence[str], params: TrainParams, data: TrainInput
) -> TrainRun:
    """The `ilab model train` run of a job; TrainUnsupported for a pipeline/device pair the
    release refuses (0.26: accelerated needs cuda/hpu, full runs on cpu/mps; 0.18: simple is
    `--legacy`, accelerated is its default path and needs CUDA, there is no full)."""
    _check_pipeline(profile, params)
    argv = [*ilab_command, "model", "train", *_train_args(profile, params, data)]
    samples = f"{CKPT_DIR}/hf_format/samples_*"
    if params.pipeline == "simple":
        return TrainRun(argv, data.workdir, "simple", ("training_results/checkpoint-*",),
                        "training_results/final", SIMPLE_GGUF, "restart", True)  # fmt: skip
    if params.pipeline == "full":
        return TrainRun(argv, data.workdir, "full", (samples,), samples, None, "model-path", True)
    new_library = bool(profile.train_pipelines)  # instructlab-training 0.10 (0.26) vs 0.4
    globs = (samples, f"{CKPT_DIR}/full_state/epoch_*") if new_library else (samples,)
    resume: Resume = "full-state" if new_library else "model-path"
    return TrainRun(argv, data.workdir, "accelerated", globs, samples, None, resume, new_library)


@dataclass(frozen=True)
class ModelArgv:
    """A `model …` command line for the contract check: like commands.BotArgv (kept apart so
    the two modules do not import each other): command path, arguments, the flags relied on
    (flag, kind) and what click must parse each into."""

    command: tuple[str, ...]
    args: tuple[str, ...]
    uses: tuple[tuple[str, FlagKind], ...]
    expect: dict[str, object]


def model_bot_argvs(profile: IlabProfile) -> tuple[ModelArgv, ...]:
    """Every `model serve/train/evaluate` shape the bot builds for `profile`."""
    root = Path("/work/job")
    run = serve_argv(profile, (), root / "model", "127.0.0.1", 8123, root)
    at = run.argv.index("serve") + 1
    found: list[ModelArgv] = []
    if run.config_file is not None:
        config = ("--config", "DEFAULT", *run.argv[: at - 2], "model", "serve")
        expect: dict[str, object] = {"--config": str(run.config_file)}
        found.append(ModelArgv((), config, (("--config", "path"),), expect))
    uses: list[tuple[str, FlagKind]] = [("--model-path", "path")]
    expect = {"--model-path": str(root / "model")}
    if profile.serve_address_flags:
        uses += [("--host", "text"), ("--port", "integer")]
        expect |= {"--host": "127.0.0.1", "--port": 8123}
    found.append(ModelArgv(("model", "serve"), tuple(run.argv[at:]), tuple(uses), expect))
    return (*found, *_train_shapes(profile, root))


_TRAIN_KINDS: dict[str, FlagKind] = {
    "--model-path": "path",
    "--num-epochs": "integer",
    "--ckpt-output-dir": "path",
    "--data-output-dir": "path",
    "--input-dir": "path",
    "--data-path": "path",
    "--effective-batch-size": "integer",
    "--learning-rate": "float",
    "--pipeline": "choice",
    "--device": "choice",
    "--legacy": "flag",
}


def _train_shapes(profile: IlabProfile, root: Path) -> list[ModelArgv]:
    data = TrainInput(root / "gen" / "msgs.jsonl", root / "gen", root)
    found: list[ModelArgv] = []
    pairs = (("simple", "cpu"), ("full", "cpu"), ("accelerated", "cuda"))
    for pipeline, device in pairs:
        params = TrainParams("/models/base", pipeline, device, 3, 16, 2e-5)
        try:
            run = train_run(profile, (), params, data)
        except TrainUnsupported:
            continue
        args = tuple(run.argv[2:])
        flags = [a for a in args if a.startswith("--")]
        uses = tuple((f, _TRAIN_KINDS[f]) for f in flags)
        expect: dict[str, object] = {}
        for flag, kind in uses:
            value = True if kind == "flag" else args[args.index(flag) + 1]
            converters = {"integer": int, "float": float}
            expect[flag] = converters[kind](value) if kind in converters else value
        found.append(ModelArgv(("model", "train"), args, uses, expect))
    return found
