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

from instruct_lab_bot.core.ilab.versions import IlabProfile
from instruct_lab_bot.core.settings import Settings

__all__ = [
    "CHAT_ENV",
    "BotArgv",
    "FlagUse",
    "GenerateRun",
    "bot_argvs",
    "chat_argv",
    "config_init_argv",
    "generate_run",
    "last_value",
]

#: `model chat` wraps its answer at 80 columns when not on a terminal, unless told wider.
CHAT_ENV = {"COLUMNS": "10000"}
#: What `ilab --version` is asked with (click's eager version option).
VERSION_ARGS = ("--version",)


@dataclass(frozen=True)
class FlagUse:
    """A flag the bot passes, and what it assumes of it: a switch, or one value of a kind."""

    flag: str
    kind: Literal["flag", "text", "path"]


@dataclass(frozen=True)
class BotArgv:
    """One command line the bot builds: the words after the `ilab` executable, split into the
    command path (`data generate`) and its arguments; `expect` holds the parameters click
    must parse them into (by click's parameter name)."""

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
    profile: IlabProfile, settings: Settings, taxonomy: Path, base_ref: str, out_dir: Path
) -> GenerateRun:
    """The `ilab data generate` run of a job. Only paths and configured values: no PR text."""
    args = [*_generate_args(profile, settings, taxonomy, base_ref, out_dir)]
    args += settings.generate_args
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
    for settings in (bare, teacher):
        args = _generate_args(profile, settings, root / "taxonomy", "origin/main", root / "out")
        expect: dict[str, object] = {
            "taxonomy_path": str(root / "taxonomy"),
            "taxonomy_base": "origin/main",
            "output_dir": str(root / "out"),
            "pipeline": settings.generate_pipeline or profile.default_pipeline,
        }
        if settings.teacher_model:
            expect |= {"model": "teacher-model", "model_family": "mixtral"}
            expect["endpoint_url"] = "http://teacher:8000/v1"
        uses = tuple(u for u in _GENERATE_USES if u.flag in args)
        found.append(BotArgv(("data", "generate"), tuple(args), uses, expect))
    chat_uses = (FlagUse("-qq", "flag"), *(FlagUse(f, "flag") for f in profile.chat_plain_flags))
    for question in ("What is 2 + 2?", "--help", "-qq --model x"):
        expect = {"question": [question], "quick_question": True}
        expect |= {f.lstrip("-").replace("-", "_"): True for f in profile.chat_plain_flags}
        args = _chat_args(profile, bare, question)
        found.append(BotArgv(("model", "chat"), tuple(args), chat_uses, expect))
    init_uses = (FlagUse("--non-interactive", "flag"), FlagUse("--taxonomy-path", "path"))
    init_args = _config_init_args(root / "taxonomy")
    init_expect: dict[str, object] = {"interactive": False, "taxonomy_path": str(root / "taxonomy")}
    found.append(BotArgv(("config", "init"), tuple(init_args[2:]), init_uses, init_expect))
    return tuple(found)
