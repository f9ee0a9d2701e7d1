"""click 8.1-compatible command-line parsing for the `ilab` stand-in.

Enough of click's OptionParser and type conversion that a value starting with `--` is taken
or refused, and messages and exit codes come out, exactly as the real CLI's would.
"""

from __future__ import annotations

import difflib
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

OptKind = Literal["text", "path", "int", "float", "flag", "count"]


@dataclass(frozen=True)
class Opt:
    """One click option: its names in declaration order and how its value converts."""

    dest: str
    names: tuple[str, ...]
    kind: OptKind = "text"
    minimum: int | None = None

    @property
    def takes_value(self) -> bool:
        return self.kind not in ("flag", "count")


@dataclass(frozen=True)
class Command:
    """A click command or group, enough to parse argv and print click's messages."""

    path: str
    summary: str
    options: tuple[Opt, ...]
    arguments: str | None = None
    subcommands: tuple[str, ...] = ()

    @property
    def is_group(self) -> bool:
        return bool(self.subcommands)

    def usage(self) -> str:
        if self.is_group:
            return f"Usage: {self.path} [OPTIONS] COMMAND [ARGS]..."
        suffix = f" {self.arguments}" if self.arguments else ""
        return f"Usage: {self.path} [OPTIONS]{suffix}"


HELP = Opt("help", ("--help",), "flag")
HELP_TEXT = "Show this message and exit."


class UsageError(Exception):
    """click's UsageError: printed to stderr, exit code 2; usage lines only with a command."""

    def __init__(self, message: str, command: Command | None) -> None:
        super().__init__(message)
        self.message = message
        self.command = command


class Exit(Exception):
    """Leave with an exit code after the output has been written."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def _is_long(name: str) -> bool:
    # click treats every name that is not `-x` as a long option (so `-qq` and `-dt` are long).
    return not (len(name) == 2 and name[0] == "-" and name[1] != "-")


@dataclass
class Parsed:
    values: dict[str, Any]
    args: list[str]


def parse_args(command: Command, argv: Sequence[str]) -> Parsed:
    """Parse like click's OptionParser; groups stop at the first non-option (the subcommand)."""
    options = (*command.options, HELP)
    long_opts = {name: opt for opt in options for name in opt.names if _is_long(name)}
    short_opts = {name: opt for opt in options for name in opt.names if not _is_long(name)}
    raw: dict[str, Any] = {}
    rargs = list(argv)
    largs: list[str] = []

    def take_value(name: str) -> str:
        if not rargs:
            raise UsageError(f"Option {name!r} requires an argument.", None)
        return rargs.pop(0)  # click takes the next word even when it looks like an option

    def store(opt: Opt, value: str | None) -> None:
        if opt.kind == "count":
            raw[opt.dest] = int(raw.get(opt.dest, 0)) + 1
        elif opt.kind == "flag":
            raw[opt.dest] = True
        else:
            raw[opt.dest] = value

    def match_short(arg: str) -> None:
        for i, char in enumerate(arg[1:], start=2):
            name = f"{arg[0]}{char}"
            opt = short_opts.get(name)
            if opt is None:
                raise UsageError(f"No such option: {name}", command)
            if opt.takes_value:
                if i < len(arg):
                    rargs.insert(0, arg[i:])
                store(opt, take_value(name))
                return
            store(opt, None)

    while rargs:
        arg = rargs.pop(0)
        if arg == "--":
            break
        if arg[:1] == "-" and len(arg) > 1:
            name, has_value, explicit = arg.partition("=")
            opt = long_opts.get(name)
            if opt is None:
                if arg[:2] != "--":
                    match_short(arg)
                    continue
                close = difflib.get_close_matches(name, list(long_opts))
                raise UsageError(f"No such option: {name}{_suggest(close)}", command)
            if opt.takes_value:
                if has_value:
                    rargs.insert(0, explicit)
                store(opt, take_value(name))
            elif has_value:
                raise UsageError(f"Option {name!r} does not take a value.", None)
            else:
                store(opt, None)
        elif command.is_group:
            rargs.insert(0, arg)
            break
        else:
            largs.append(arg)
    return Parsed(raw, largs + rargs)


def _suggest(possibilities: list[str]) -> str:
    if not possibilities:
        return ""
    if len(possibilities) == 1:
        return f" Did you mean {possibilities[0]}?"
    return f" (Possible options: {', '.join(sorted(possibilities))})"


def convert(command: Command, parsed: Parsed) -> dict[str, Any]:
    """Apply click's type conversion in declaration order, then refuse extra arguments."""
    if parsed.values.get("help"):
        print_help(command)
        raise Exit(0)
    values: dict[str, Any] = {}
    for opt in command.options:
        value = parsed.values.get(opt.dest)
        if value is None or opt.kind in ("text", "path", "flag", "count"):
            values[opt.dest] = value
            continue
        hint = " / ".join(repr(name) for name in opt.names)
        try:
            number: int | float = int(value) if opt.kind == "int" else float(value)
        except ValueError:
            kind = "integer" if opt.kind == "int" else "float"
            msg = f"Invalid value for {hint}: {value!r} is not a valid {kind}."
            raise UsageError(msg, command) from None
        if opt.minimum is not None and number < opt.minimum:
            msg = f"Invalid value for {hint}: {number} is not in the range x>={opt.minimum}."
            raise UsageError(msg, command)
        values[opt.dest] = number
    if parsed.args and not command.is_group and command.arguments is None:
        plural = "argument" if len(parsed.args) == 1 else "arguments"
        raise UsageError(f"Got unexpected extra {plural} ({' '.join(parsed.args)})", command)
    return values


def print_help(command: Command) -> None:
    lines = [command.usage(), "", f"  {command.summary}", "", "Options:"]
    metavars = {"text": " TEXT", "path": " PATH", "int": " INTEGER", "float": " FLOAT"}
    for opt in command.options:
        lines.append(f"  {', '.join(opt.names)}{metavars.get(opt.kind, '')}")
    lines.append(f"  --help  {HELP_TEXT}")
    if command.is_group:
        lines += ["", "Commands:", *(f"  {name}" for name in command.subcommands)]
    sys.stdout.write("\n".join(lines) + "\n")


def show_usage_error(err: UsageError) -> None:
    if err.command is not None:
        sys.stderr.write(f"{err.command.usage()}\nTry '{err.command.path} --help' for help.\n\n")
    sys.stderr.write(f"Error: {err.message}\n")
