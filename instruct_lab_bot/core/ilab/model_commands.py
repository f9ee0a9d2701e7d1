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
    "SERVE_CONFIG_NAME",
    "ServeRun",
    "serve_argv",
]

#: 0.18 has no --host/--port: the address comes from the config file's `serve.host_port`, so
#: the worker writes this small config (every other key takes ilab's defaults) into the job's
#: folder and points `--config` at it.
SERVE_CONFIG_NAME = "serve-config.yaml"
FlagKind = Literal["flag", "text", "path", "integer"]


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
    return tuple(found)
