"""Parse the bot's `ilab` command lines with the real package's own click commands.

Runs inside a throwaway venv holding a real `instructlab` release (and only what its CLI
modules need to import), so it imports nothing of the bot: it reads the bot's command lines as
JSON on stdin (`python -m testkit.ilab_contract` writes them from `core.ilab.bot_argvs`) and
writes one result per command line as JSON on stdout. The functions also take any click
command tree, which is how the tests plant a renamed flag.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import PurePath
from typing import Any

import click

KINDS = {
    "text": "text",
    "path": "path",
    "integer": "integer",
    "float": "float",
    "choice": "choice",
}  # the bot's value kinds -> click's ParamType.name


class Lab:
    """What ilab's root callback leaves in `ctx.obj` (0.26's ConfigOption reads `.config`)."""

    def __init__(self, config: Any) -> None:
        self.config = config


def find_command(
    root: click.Command, words: Sequence[str], default_map: Any, obj: Any = None
) -> click.Context:
    """The context of `ilab <words…>`'s command, set up as ilab's own callbacks set it: the
    root's default map is the whole config (and `obj` the loaded config), and each group passes
    the whole map on (`ctx.default_map = ctx.parent.default_map`), so a command reads its
    section."""
    ctx = click.Context(root, info_name="ilab", default_map=default_map, obj=obj)
    for word in words:
        group = ctx.command
        if not isinstance(group, click.Group):
            raise click.UsageError(f"{ctx.command_path} has no subcommands", ctx)
        command = group.get_command(ctx, word)
        if command is None:
            raise click.UsageError(f"No such command {word!r} under {ctx.command_path}", ctx)
        ctx = click.Context(command, parent=ctx, info_name=word)
        if isinstance(command, click.Group):
            ctx.default_map = default_map
    return ctx


def option(command: click.Command, flag: str) -> click.Option | None:
    for param in command.params:
        if isinstance(param, click.Option) and flag in (*param.opts, *param.secondary_opts):
            return param
    return None


def flag_problems(command: click.Command, uses: Sequence[Mapping[str, str]]) -> list[str]:
    """What differs between the flags the bot relies on and the command's definition."""
    problems: list[str] = []
    for use in uses:
        flag, kind = use["flag"], use["kind"]
        found = option(command, flag)
        if found is None:
            problems.append(f"{flag}: no such option")
            continue
        if kind == "flag":
            if not found.is_flag:
                problems.append(f"{flag}: takes a value ({found.type.name}), the bot passes none")
            continue
        if found.is_flag or found.count:
            problems.append(f"{flag}: is a switch, the bot passes it a value")
        elif found.type.name != KINDS[kind]:
            problems.append(f"{flag}: takes a {found.type.name}, the bot passes a {kind}")
        if found.multiple or found.nargs != 1:
            problems.append(f"{flag}: multiple={found.multiple} nargs={found.nargs}, bot: one")
    return problems


def param_name(command: click.Command, key: str) -> str:
    """The parameter a flag (`--model`) sets, or a positional argument by its name."""
    found = option(command, key) if key.startswith("-") else None
    return found.name or key if found is not None else key


def plain(value: object) -> object:
    if isinstance(value, tuple | list):
        return [plain(v) for v in value]
    if isinstance(value, PurePath):
        return str(value)
    return value


def check_one(
    root: click.Command, spec: Mapping[str, Any], default_map: Any, obj: Any = None
) -> dict[str, Any]:
    """Parse one command line; its flag and value problems and what it printed."""
    out = io.StringIO()
    problems: list[str] = []
    try:
        parent = find_command(root, spec["command"], default_map, obj)
        command = parent.command
        problems += flag_problems(command, spec["uses"])
        with contextlib.redirect_stdout(out):
            if spec["command"]:
                ctx = command.make_context(
                    parent.info_name, list(spec["args"]), parent=parent.parent
                )
            else:
                ctx = command.make_context("ilab", list(spec["args"]))  # its map: the callback's
        for key, expected in spec["expect"].items():
            got = plain(ctx.params.get(param_name(command, key), "<missing>"))
            if got != expected:
                problems.append(f"parsed {key} as {got!r}, the bot means {expected!r}")
    except click.exceptions.Exit as done:  # --version prints, then exits
        if done.exit_code:
            problems.append(f"exited with {done.exit_code}")
    except click.ClickException as exc:
        problems.append(f"click refused it: {exc.format_message()}")
    return {
        "command": spec["command"],
        "args": spec["args"],
        "problems": problems,
        "stdout": out.getvalue(),
    }


def check_all(
    root: click.Command, specs: Sequence[Mapping[str, Any]], default_map: Any, obj: Any = None
) -> list[dict[str, Any]]:
    return [check_one(root, spec, default_map, obj) for spec in specs]


def real_ilab() -> tuple[click.Command, Any, Lab]:
    """The installed release's `ilab` group, the default map its default config gives, and
    the config object its commands find in `ctx.obj`."""
    configuration: Any = importlib.import_module("instructlab.configuration")
    lab: Any = importlib.import_module("instructlab.lab")
    configuration.ensure_storage_directories_exist()  # as `--config DEFAULT` does (HOME moved)
    config = configuration.get_default_config()
    default_map = configuration.get_dict(config)
    # ilab's root callback fills the training library's options it keeps in
    # train.additional_args (--learning-rate, --warmup-steps, …) with their defaults
    train = default_map.get("train") or {}
    train["additional_args"] = configuration.finish_additional_train_args(
        train.get("additional_args") or {}
    )
    return lab.ilab, default_map, Lab(config)


def rename(root: click.Command, words: Sequence[str], old: str, new: str) -> None:
    """Plant a fault: `ilab <words…>`'s `old` flag renamed `new` (in this process only)."""
    found = option(find_command(root, words, None).command, old)
    if found is None:
        raise SystemExit(f"cannot plant: {old} is not an option of {' '.join(words)}")
    found.opts = [new if opt == old else opt for opt in found.opts]
    found.secondary_opts = [new if opt == old else opt for opt in found.secondary_opts]


def main(argv: Sequence[str]) -> None:
    """`check.py [--rename WORDS… OLD NEW]` < command lines (JSON) > results (JSON)."""
    request = json.load(sys.stdin)
    root, default_map, obj = real_ilab()
    if argv[:1] == ["--rename"]:
        rename(root, argv[1:-2], argv[-2], argv[-1])
    print(json.dumps(check_all(root, request, default_map, obj)))


if __name__ == "__main__":
    main(sys.argv[1:])
