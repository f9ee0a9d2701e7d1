"""The command lines the worker runs, per profile (pure): built from paths and settings,
never from PR text (a precheck question goes after `--`, as one positional argument).

`bot_argvs` lists every command line shape the bot can build, with the flags it relies on and
what it expects click to make of them: `make ilab-contract` parses each with the real
package's own click commands.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from instruct_lab_bot.core.ilab.model_commands import model_bot_argvs
from instruct_lab_bot.core.ilab.versions import IlabProfile
from instruct_lab_bot.core.settings import Settings

__all__ = [
    "CHAT_ENV",
    "CONFIG_DEFAULT",
    "BotArgv",
    "FlagUse",
    "GenerateRun",
    "bot_argvs",
    "chat_argv",
    "config_init_argv",
    "generate_run",
    "last_value",
    "names_config",
    "with_ilab_config",
]

#: `model chat` wraps its answer at 80 columns when not on a terminal, unless told wider.
CHAT_ENV = {"COLUMNS": "10000"}
#: What `ilab --version` is asked with (click's eager version option).
VERSION_ARGS = ("--version",)
#: ilab's own "no config file": built-in defaults, and the storage folders created under HOME
#: (the job's folder). Without a config every `ilab <group> <command>` exits 2 ("run `ilab
#: config init`"), and `config init` clones the taxonomy from the internet.
CONFIG_DEFAULT = ("--config", "DEFAULT")


@dataclass(frozen=True)
class FlagUse:
    """A flag the bot passes, and what it assumes of it: a switch, or one value of a kind."""

    flag: str
    kind: Literal["flag", "text", "path", "integer", "float", "choice"]


@dataclass(frozen=True)
class BotArgv:
    """One command line the bot builds: the words after the `ilab` executable, split into the
    command path (`data generate`) and its arguments; `expect` holds the value click must
    parse each flag's parameter into (by flag; a positional argument by its name). A switch
    pair's second flag (`--non-interactive` of `--interactive/--non-interactive`) sets False."""

    command: tuple[str, ...]
    args: tuple[str, ...]
    uses: tuple[FlagUse, ...] = ()
    expect: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class GenerateRun:
    """`ilab data generate`'s argv, with the teacher model and pipeline it runs with (the
    free-form ILAB_BOT_GENERATE_ARGS come last, so their values win and are reported)."""

    argv: list[str]
    teacher_model: str
    pipeline: str


_GENERATE_USES = (
    FlagUse("--taxonomy-path", "path"),
    FlagUse("--taxonomy-base", "text"),
    FlagUse("--output-dir", "path"),
    FlagUse("--model", "text"),
    FlagUse("--model-family", "text"),
    FlagUse("--endpoint-url", "text"),
    FlagUse("--pipeline", "text"),
)


def _generate_args(
    profile: IlabProfile, settings: Settings, taxonomy: Path, base_ref: str, out_dir: Path
) -> list[str]:
    args = ["--taxonomy-path", str(taxonomy), "--taxonomy-base", base_ref]
    args += ["--output-dir", str(out_dir)]
    for flag, value in (
        ("--model", settings.teacher_model),
        ("--model-family", settings.teacher_model_family),
        ("--endpoint-url", settings.teacher_endpoint_url),
    ):
        if value:
            args += [flag, value]
    return [*args, "--pipeline", settings.generate_pipeline or profile.default_pipeline]


def generate_run(
    profile: IlabProfile,
    settings: Settings,
    taxonomy: Path,
    base_ref: str,
    out_dir: Path,
    repo_args: Sequence[str] = (),
) -> GenerateRun:
    """The `ilab data generate` run of a job. Only paths and configured values: no PR text.
    `repo_args` (the repository's configuration, within the admin's bounds) come last, so
    they win over ILAB_BOT_GENERATE_ARGS for the same flag."""
    args = [*_generate_args(profile, settings, taxonomy, base_ref, out_dir)]
    args += [*settings.generate_args, *repo_args]
    return GenerateRun(
        argv=[*settings.ilab_command, "data", "generate", *args],
        teacher_model=last_value(args, "--model") or "",
        pipeline=last_value(args, "--pipeline") or profile.default_pipeline,
    )


def chat_argv(profile: IlabProfile, settings: Settings, question: str) -> list[str]:
    """`ilab model chat -qq … -- QUESTION` (run with CHAT_ENV): one answer, as plain text.

    `--` keeps a question such as `--help` a question; `--quick-question=…` would be refused
    (it is a flag, the question is the positional argument)."""
    return [*settings.ilab_command, "model", "chat", *_chat_args(profile, settings, question)]


def _chat_args(profile: IlabProfile, settings: Settings, question: str) -> list[str]:
    return [*settings.precheck_args, "-qq", *profile.chat_plain_flags, "--", question]


def config_init_argv(settings: Settings, taxonomy: Path) -> list[str]:
    """`ilab config init` without prompts. `taxonomy` must be a non-empty folder: given an
    empty or missing one, ilab clones the public taxonomy from the internet."""
    return [*settings.ilab_command, *_config_init_args(taxonomy)]


def _config_init_args(taxonomy: Path) -> list[str]:
    return ["config", "init", "--non-interactive", "--taxonomy-path", str(taxonomy)]


def names_config(ilab_command: Sequence[str]) -> bool:
    """Whether ILAB_BOT_ILAB_COMMAND already gives ilab a configuration (`--config …`)."""
    return any(arg == "--config" or arg.startswith("--config=") for arg in ilab_command)


def with_ilab_config(settings: Settings, *, admin_config: bool) -> Settings:
    """The settings a worker drives ilab with: unless the admin gave ilab a configuration
    (`--config` in ILAB_BOT_ILAB_COMMAND, or a config.yaml under an XDG_CONFIG_HOME passed
    to ilab), every command gets `--config DEFAULT`, so a job's fresh HOME needs no
    `ilab config init`."""
    if admin_config or names_config(settings.ilab_command):
        return settings
    return replace(settings, ilab_command=(*settings.ilab_command, *CONFIG_DEFAULT))


def last_value(args: Sequence[str], flag: str) -> str | None:
    """The value the last `flag V` or `flag=V` in `args` gives (click keeps the last one)."""
    found: str | None = None
    for i, arg in enumerate(args):
        if arg == "--":
            break
        if arg == flag and i + 1 < len(args):
            found = args[i + 1]
        elif arg.startswith(flag + "="):
            found = arg.split("=", 1)[1]
    return found


def bot_argvs(profile: IlabProfile) -> tuple[BotArgv, ...]:
    """Every command line shape the bot builds for `profile` (without the ILAB_BOT_*_ARGS an
    admin adds), with the flags it relies on and the values click must parse them into."""
    root = Path("/work/job")
    bare = Settings()
    teacher = replace(
        bare,
        teacher_model="teacher-model",
        teacher_model_family="mixtral",
        teacher_endpoint_url="http://teacher:8000/v1",
        generate_pipeline="simple",
    )
    found: list[BotArgv] = [BotArgv((), VERSION_ARGS, (FlagUse("--version", "flag"),))]
    config_args = (*CONFIG_DEFAULT, "data", "generate")
    config_uses = (FlagUse("--config", "path"),)
    found.append(BotArgv((), config_args, config_uses, {"--config": "DEFAULT"}))
    for settings in (bare, teacher):
        args = _generate_args(profile, settings, root / "taxonomy", "origin/main", root / "out")
        expect: dict[str, object] = {
            "--taxonomy-path": str(root / "taxonomy"),
            "--taxonomy-base": "origin/main",
            "--output-dir": str(root / "out"),
            "--pipeline": settings.generate_pipeline or profile.default_pipeline,
        }
        if settings.teacher_model:
            expect |= {"--model": "teacher-model", "--model-family": "mixtral"}
            expect["--endpoint-url"] = "http://teacher:8000/v1"
        uses = tuple(u for u in _GENERATE_USES if u.flag in args)
        found.append(BotArgv(("data", "generate"), tuple(args), uses, expect))
    repo_args = ("--sdg-scale-factor", "3", "--pipeline", "full")  # core/repo_config.py's
    args = _generate_args(profile, bare, root / "taxonomy", "origin/main", root / "out")
    repo_uses = (FlagUse("--sdg-scale-factor", "integer"), FlagUse("--pipeline", "text"))
    repo_expect: dict[str, object] = {"--sdg-scale-factor": 3, "--pipeline": "full"}
    found.append(BotArgv(("data", "generate"), (*args, *repo_args), repo_uses, repo_expect))
    chat_uses = (FlagUse("-qq", "flag"), *(FlagUse(f, "flag") for f in profile.chat_plain_flags))
    for question in ("What is 2 + 2?", "--help", "-qq --model x"):
        expect = {"question": [question], "-qq": True}
        expect |= dict.fromkeys(profile.chat_plain_flags, True)
        args = _chat_args(profile, bare, question)
        found.append(BotArgv(("model", "chat"), tuple(args), chat_uses, expect))
    init_uses = (FlagUse("--non-interactive", "flag"), FlagUse("--taxonomy-path", "path"))
    init_args = _config_init_args(root / "taxonomy")
    init_expect: dict[str, object] = {
        "--non-interactive": False,
        "--taxonomy-path": str(root / "taxonomy"),
    }
    found.append(BotArgv(("config", "init"), tuple(init_args[2:]), init_uses, init_expect))
    return (*found, *_model_argvs(profile))


def _model_argvs(profile: IlabProfile) -> tuple[BotArgv, ...]:
    return tuple(
        BotArgv(s.command, s.args, tuple(FlagUse(f, k) for f, k in s.uses), s.expect)
        for s in model_bot_argvs(profile)
    )
