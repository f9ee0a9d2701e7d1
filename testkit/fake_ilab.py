"""A stand-in for InstructLab's `ilab` CLI, for tests and `make demo`.

The bot runs `ilab data generate` (and, for prechecks, `ilab model chat --quick-question`) as a
subprocess and only sees its argv handling, exit code, output streams and files. This program
reproduces exactly those, modelled on ilab 0.18 / instructlab-sdg 0.2 (Aug 2024), without a
model: command-line parsing follows click 8.1 (so a value that starts with `--` is taken or
refused exactly as the real CLI would), stderr carries ilab's log lines and tqdm/datasets bars,
and the output files have the real names and record shapes, with samples derived verbatim
from the seed examples so tests can prove what reached it.

Environment switches (read at run time, never at import):
  ILAB_STANDIN_MODE         ok (default) | fail | hang | hang-ignore-term | flood |
                            crash-parent (SIGKILLs the process that started it, 40% in: a
                            poison job that takes its worker down every time) | leak-secrets
  ILAB_STANDIN_DURATION     seconds spread over the progress steps (default 3)
  ILAB_STANDIN_FLOOD_LINES  lines printed in flood mode (default 100000)
  ILAB_STANDIN_FAIL_MESSAGE error text in fail mode
  ILAB_STANDIN_RECORD       file to append one JSON line per invocation
  ILAB_STANDIN_CHILD=1      also spawn a grandchild `sleep` in the same process group
  ILAB_STANDIN_LEAK_FILE    in leak-secrets mode: a file of secret values, one a line, that
                            the run prints in every way ilab prints (log lines, a progress bar,
                            plain output, the failure message, a chat answer), as a tool that
                            found them would
  ILAB_STANDIN_MODE=attack-environ|attack-files|attack-network|attack-fork: behave like a
                            hostile ilab instead (testkit/ilab_attacks.py says what each tries)
"""

from __future__ import annotations

import difflib
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, NoReturn, TextIO

from testkit.ilab_attacks import ATTACKS, run_attack

ILAB_VERSION = "0.18.4"
DEFAULT_GENERATE_MODEL = "~/.cache/instructlab/models/mistral-7b-instruct-v0.2.Q4_K_M.gguf"
DEFAULT_CHAT_MODEL = "~/.cache/instructlab/models/merlinite-7b-lab-Q4_K_M.gguf"
DEFAULT_TAXONOMY = "~/.local/share/instructlab/taxonomy"
DEFAULT_DATASETS = "~/.local/share/instructlab/datasets"
DEFAULT_SERVER = "http://127.0.0.1:8000/v1"
DEFAULT_SCALE_FACTOR = 30  # ilab's DEFAULTS.SDG_SCALE_FACTOR
NUM_PROC = 8  # instructlab-sdg hard-codes num_procs = 8
TAXONOMY_FOLDERS = ("compositional_skills", "knowledge")
SYSTEM_PROMPT = (
    "You are an AI language model developed by IBM Research. You are a cautious assistant. "
    "You carefully follow instructions. You are helpful and harmless and you follow ethical "
    "guidelines and promote positive behavior."
)
SYNTHESIZING = (
    "Synthesizing new instructions. If you aren't satisfied with the generated instructions, "
    "interrupt training (Ctrl-C) and try adjusting your YAML files. Adding more examples may help."
)
CHAT_COMMAND_WORDS = frozenset(
    {"/q", "quit", "exit", "/h", "/a", "/c", "/m", "/n", "/d", "/p", "/md", "/s", "/l", "/lc"}
)
MODES = (
    "ok",
    "fail",
    "hang",
    "hang-ignore-term",
    "flood",
    "crash-parent",
    "leak-secrets",
    *ATTACKS,
)
STOPPING_MODES = ("fail", "hang", "hang-ignore-term", "crash-parent", "leak-secrets")  # 40% in
READER = "instructlab.sdg.utils.taxonomy"
NOT_A_MAPPING = "The top-level element is not an object with key-value pairs."


# --------------------------------------------------------------------------------------------
# click 8.1-compatible command-line parsing


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


ILAB = Command(
    "ilab",
    "CLI for interacting with InstructLab.",
    (
        Opt("config", ("--config",), "path"),
        Opt("verbose", ("-v", "--verbose"), "count"),
        Opt("version", ("--version",), "flag"),
    ),
    subcommands=("config", "data", "model", "system", "taxonomy"),
)
DATA = Command(
    "ilab data",
    "Command Group for Interacting with the Data generated by InstructLab.",
    (),
    subcommands=("generate",),
)
MODEL = Command(
    "ilab model",
    "Command Group for Interacting with the Models in InstructLab.",
    (),
    subcommands=("chat",),
)
GENERATE = Command(
    "ilab data generate",
    "Generates synthetic data to enhance your example data",
    (
        Opt("model", ("--model",)),
        Opt("num_cpus", ("--num-cpus",), "int"),
        Opt("chunk_word_count", ("--chunk-word-count",), "int"),
        Opt("num_instructions", ("--num-instructions",), "int"),
        Opt("sdg_scale_factor", ("--sdg-scale-factor",), "int"),
        Opt("taxonomy_path", ("--taxonomy-path",), "path"),
        Opt("taxonomy_base", ("--taxonomy-base",)),
        Opt("output_dir", ("--output-dir",), "path"),
        Opt("rouge_threshold", ("--rouge-threshold",), "float"),
        Opt("quiet", ("--quiet",), "flag"),
        Opt("endpoint_url", ("--endpoint-url",)),
        Opt("api_key", ("--api-key",)),
        Opt("yaml_rules", ("--yaml-rules",), "path"),
        Opt("server_ctx_size", ("--server-ctx-size",), "int"),
        Opt("tls_insecure", ("--tls-insecure",), "flag"),
        Opt("tls_client_cert", ("--tls-client-cert",), "path"),
        Opt("tls_client_key", ("--tls-client-key",), "path"),
        Opt("tls_client_passwd", ("--tls-client-passwd",)),
        Opt("model_family", ("--model-family",)),
        Opt("pipeline", ("--pipeline",)),
        Opt("batch_size", ("--batch-size",), "int", minimum=0),
        Opt("enable_serving_output", ("--enable-serving-output",), "flag"),
        Opt("gpus", ("--gpus",), "int", minimum=0),
        Opt("max_num_tokens", ("--max-num-tokens",), "int", minimum=512),
        Opt("detached", ("-dt", "--detached"), "flag"),
    ),
)
CHAT = Command(
    "ilab model chat",
    "Runs a chat using the modified model",
    (
        Opt("model", ("-m", "--model")),
        Opt("context", ("-c", "--context")),
        Opt("session", ("-s", "--session"), "path"),
        Opt("quick_question", ("-qq", "--quick-question"), "flag"),
        Opt("max_tokens", ("--max-tokens",), "int"),
        Opt("endpoint_url", ("--endpoint-url",)),
        Opt("api_key", ("--api-key",)),
        Opt("tls_insecure", ("--tls-insecure",), "flag"),
        Opt("tls_client_cert", ("--tls-client-cert",), "path"),
        Opt("tls_client_key", ("--tls-client-key",), "path"),
        Opt("tls_client_passwd", ("--tls-client-passwd",)),
        Opt("model_family", ("--model-family",)),
        Opt("serving_log_file", ("--serving-log-file",), "path"),
        Opt("temperature", ("-t", "--temperature"), "float"),
    ),
    arguments="[QUESTION]...",
)


# --------------------------------------------------------------------------------------------
# Output: ilab's log format and tqdm bars


class IlabLog:
    """Lines in ilab's log format: `INFO 2024-07-30 19:57:44,987 instructlab.sdg:375: msg`."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    @staticmethod
    def timestamp() -> str:
        now = time.time()
        return (
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now))
            + f",{int(now * 1000) % 1000:03d}"
        )

    def __call__(self, level: str, where: str, message: str) -> None:
        """`where` is `logger:lineno`, as ilab's format prints it."""
        self.stream.write(f"{level} {self.timestamp()} {where}: {message}\n")
        self.stream.flush()


def _interval(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:d}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def format_meter(desc: str, n: int, total: int, elapsed: float, unit: str = "it") -> str:
    """tqdm's default meter, 10-cell unicode bar (what a non-terminal stderr gets)."""
    frac = n / total if total else 0.0
    cells, part = divmod(int(frac * 10 * 8), 8)
    bar = "█" * min(cells, 10)
    if cells < 10:
        bar += " ▏▎▍▌▋▊▉"[part] + " " * (10 - cells - 1)
    rate = n / elapsed if n and elapsed > 0 else None
    if rate is None:
        rate_fmt = f"?{unit}/s"
    elif 1 / rate > 1:
        rate_fmt = f"{1 / rate:5.2f}s/{unit}"
    else:
        rate_fmt = f"{rate:5.2f}{unit}/s"
    remaining = _interval((total - n) / rate) if rate and total >= n else "?"
    prefix = f"{desc}: " if desc else ""
    return (
        f"{prefix}{frac * 100:3.0f}%|{bar}| {n}/{total} "
        f"[{_interval(elapsed)}<{remaining}, {rate_fmt}]"
    )


class ProgressBar:
    """Redraws with `\\r` like tqdm does on a pipe; the closing redraw ends with a newline."""

    def __init__(self, stream: TextIO, desc: str, total: int, unit: str = "it") -> None:
        self.stream, self.desc, self.total, self.unit = stream, desc, total, unit
        self.n = 0
        self.started = time.monotonic()
        self._width = 0
        self._draw()

    def _draw(self, end: str = "") -> None:
        line = format_meter(
            self.desc, self.n, self.total, time.monotonic() - self.started, self.unit
        )
        pad = " " * max(self._width - len(line), 0)
        self._width = len(line)
        self.stream.write(f"\r{line}{pad}{end}")
        self.stream.flush()

    def update(self, k: int = 1) -> None:
        self.n += k
        self._draw()

    def close(self) -> None:
        self._draw("\n")


# --------------------------------------------------------------------------------------------
# Behaviour switches and the invocation record


@dataclass
class Behaviour:
    mode: str
    duration: float
    flood_lines: int
    fail_message: str
    record: Path | None
    child: bool
    leak_file: Path | None = None

    def leaks(self) -> list[str]:
        """The secret values leak-secrets mode prints (none in any other mode)."""
        if self.mode != "leak-secrets" or self.leak_file is None:
            return []
        return [line for line in self.leak_file.read_text(encoding="utf-8").splitlines() if line]

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Behaviour:
        record = env.get("ILAB_STANDIN_RECORD")
        return cls(
            mode=env.get("ILAB_STANDIN_MODE", "ok") or "ok",
            duration=max(0.0, float(env.get("ILAB_STANDIN_DURATION", "3") or 3)),
            flood_lines=int(env.get("ILAB_STANDIN_FLOOD_LINES", "100000") or 100000),
            fail_message=env.get(
                "ILAB_STANDIN_FAIL_MESSAGE",
                "There was a problem connecting to the server Connection error.",
            ),
            record=Path(record) if record else None,
            child=env.get("ILAB_STANDIN_CHILD") == "1",
            leak_file=Path(env["ILAB_STANDIN_LEAK_FILE"])
            if env.get("ILAB_STANDIN_LEAK_FILE")
            else None,
        )


@dataclass
class Run:
    """State of one invocation: behaviour, the grandchild and the pending record."""

    behaviour: Behaviour
    argv: list[str]
    log: IlabLog
    record: dict[str, Any] = field(default_factory=dict)
    child: subprocess.Popen[bytes] | None = None
    _recorded: bool = False

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    def write_record(self) -> None:
        """Append the record once (before hanging, so a killed run still left it)."""
        if self._recorded or self.behaviour.record is None:
            return
        self._recorded = True
        entry = {
            "argv": self.argv,
            "cwd": str(Path.cwd()),
            "env": sorted(os.environ),
            "pid": os.getpid(),
            "child_pid": self.child.pid if self.child else None,
            "seeds": [],
            **self.record,
        }
        data = (json.dumps(entry) + "\n").encode()
        fd = os.open(self.behaviour.record, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)

    def hang_forever(self) -> NoReturn:
        self.write_record()
        if self.behaviour.mode == "hang-ignore-term":
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        while True:
            time.sleep(3600)

    def reap_child(self) -> None:
        if self.child is not None and self.child.poll() is None:
            self.child.terminate()
            self.child.wait()

    def flood(self, where: str) -> None:
        stamp = IlabLog.timestamp()
        total = self.behaviour.flood_lines
        chunk: list[str] = []
        for i in range(1, total + 1):
            chunk.append(
                f"INFO {stamp} {where}: [flood {i}/{total}] "
                "Dataset({features: ['task_description', 'seed_question', 'seed_response'], "
                "num_rows: 5})\n"
            )
            if len(chunk) == 2000:
                sys.stderr.write("".join(chunk))
                chunk.clear()
        sys.stderr.write("".join(chunk))
        sys.stderr.flush()


# --------------------------------------------------------------------------------------------
# Reading the taxonomy like instructlab-sdg's taxonomy reader


class TaxonomyError(Exception):
    """Errors reported as SystemExit(message): the text goes to stderr, exit code 1."""


class TaxonomyReadingError(Exception):
    """A qna.yaml that does not parse; the real CLI dies with this traceback."""


@dataclass(frozen=True)
class Seed:
    """One seed question/answer pair with where it came from."""

    path: str
    kind: Literal["freeform_skill", "grounded_skill", "knowledge"]
    question: str
    answer: str
    context: str
    task_description: str
    taxonomy_path: str


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=False
    )


def _is_taxonomy_file(name: str) -> bool:
    path = Path(name)
    return path.suffix == ".yaml" and bool(path.parts) and path.parts[0] in TAXONOMY_FOLDERS


def changed_taxonomy_files(taxonomy: Path, base: str) -> list[str]:
    """New or changed taxonomy YAML since `base`, including uncommitted and untracked files.

    Like the real reader: diff from the newest ancestor of HEAD that `base` contains to the
    working tree, deleted files excluded, plus untracked files; `empty` means every file.
    """
    untracked = _git(taxonomy, "ls-files", "-z", "--others", "--exclude-standard")
    names = set(filter(None, untracked.stdout.split("\0")))
    if base == "empty":
        tracked = _git(taxonomy, "ls-files", "-z")
        names |= set(filter(None, tracked.stdout.split("\0")))
    else:
        fork = _git(taxonomy, "merge-base", base, "HEAD")
        if fork.returncode != 0:
            raise TaxonomyError(
                f'Couldn\'t find the taxonomy base branch "{base}" from the current HEAD'
            )
        diff = _git(
            taxonomy,
            "diff",
            "-z",
            "--name-only",
            "--no-renames",
            "--diff-filter=d",
            fork.stdout.strip(),
        )
        names |= set(filter(None, diff.stdout.split("\0")))
    return sorted(name for name in names if _is_taxonomy_file(name))


def _validation_errors(contents: Mapping[str, Any], schema: str) -> list[str]:
    """The schema rules a stand-in needs: shape, required strings and minimum counts."""
    errors: list[str] = []
    seeds = contents.get("seed_examples")
    if not isinstance(seeds, list):
        return ["[.] 'seed_examples' is a required property"]
    if contents.get("version", 1) != 1 and len(seeds) < 5:
        errors.append("[.seed_examples] Value must have at least 5 items")
    pairs_key = "questions_and_answers" if schema == "knowledge" else None
    for i, seed in enumerate(seeds):
        where = f".seed_examples[{i}]"
        if not isinstance(seed, Mapping):
            errors.append(f"[{where}] {seed!r} is not of type 'object'")
            continue
        if pairs_key is None:
            items: list[tuple[str, Any]] = [(where, seed)]
        else:
            if not isinstance(seed.get("context"), str):
                errors.append(f"[{where}] 'context' is a required property")
            pairs = seed.get(pairs_key)
            if not isinstance(pairs, list):
                errors.append(f"[{where}] '{pairs_key}' is a required property")
                continue
            if len(pairs) < 3:
                errors.append(f"[{where}.{pairs_key}] Value must have at least 3 items")
            items = [(f"{where}.{pairs_key}[{j}]", pair) for j, pair in enumerate(pairs)]
        for item_where, item in items:
            if not isinstance(item, Mapping):
                errors.append(f"[{item_where}] {item!r} is not of type 'object'")
                continue
            for key in ("question", "answer"):
                if key not in item:
                    errors.append(f"[{item_where}] '{key}' is a required property")
                elif not isinstance(item[key], str):
                    errors.append(f"[{item_where}.{key}] {item[key]!r} is not of type 'string'")
    return errors


def read_seeds(taxonomy: Path, names: Sequence[str], log: IlabLog) -> list[Seed]:
    import yaml  # deferred so `model chat` and usage errors start fast

    seeds: list[Seed] = []
    warnings = errors = 0
    for name in names:
        file_path = (taxonomy / name).resolve()
        try:
            contents = yaml.safe_load(file_path.read_text(encoding="utf-8"))
        except Exception as exc:  # yaml.YAMLError, UnicodeDecodeError, OSError
            raise TaxonomyReadingError(f"Exception {exc} raised in {file_path}") from exc
        if not contents:
            log("WARNING", f"{READER}:238", f"Skipping {file_path} because it is empty!")
            warnings += 1
            continue
        if not isinstance(contents, Mapping):
            log("ERROR", f"{READER}:243", f"{file_path} is not valid. {NOT_A_MAPPING}")
            errors += 1
            continue
        schema = Path(name).parts[0]
        problems = _validation_errors(contents, schema)
        for problem in problems:
            log("ERROR", f"{READER}:188", f"Validation error in {name}: {problem}")
        if problems:
            errors += 1
            continue
        seeds.extend(_seeds_of(name, schema, contents))
    if warnings:
        unusable = "due to taxonomy files that were not (fully) usable."
        log("WARNING", f"{READER}:397", f"{warnings} warnings (see above) {unusable}")
    if errors:
        raise TaxonomyError(f"{errors} taxonomy files with errors! Exiting.")
    return seeds


def _seeds_of(name: str, schema: str, contents: Mapping[str, Any]) -> Iterator[Seed]:
    taxonomy_path = "->".join(Path(name).parent.parts)
    description = str(contents.get("task_description") or contents.get("domain") or "")
    for example in contents["seed_examples"]:
        if schema == "knowledge":
            for pair in example["questions_and_answers"]:
                yield Seed(
                    name,
                    "knowledge",
                    pair["question"],
                    pair["answer"],
                    example["context"],
                    description,
                    taxonomy_path,
                )
        else:
            context = example.get("context") or ""
            kind: Literal["grounded_skill", "freeform_skill"] = (
                "grounded_skill" if context else "freeform_skill"
            )
            yield Seed(
                name,
                kind,
                example["question"],
                example["answer"],
                context,
                description,
                taxonomy_path,
            )


# --------------------------------------------------------------------------------------------
# `ilab data generate`


class GenerateError(Exception):
    """instructlab-sdg's GenerateException: reported as the CLI's failure line, exit 1."""


BLOCKS = {
    "freeform_skill": (
        "gen_skill_freeform",
        ["task_description", "seed_question", "seed_response"],
    ),
    "grounded_skill": (
        "gen_skill_grounded",
        ["task_description", "seed_context", "seed_question", "seed_response"],
    ),
    "knowledge": (
        "gen_knowledge",
        ["task_description", "document", "domain", "question_1", "response_1"],
    ),
}


def _user_text(question: str, context: str) -> str:
    return question + ("\n" + context if context else "")


def _write_jsonl(path: Path, records: Sequence[Mapping[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as out:
        for record in records:
            out.write(json.dumps(record, ensure_ascii=False) + "\n")


def _synthesize(seed: Seed, i: int, scale: int) -> dict[str, Any]:
    """A generated sample that embeds the seed text verbatim, so tests can trace it."""
    suffix = f" (synthetic variant {i} of {scale})"
    return {
        "instruction": seed.question + suffix,
        "input": seed.context,
        "output": seed.answer + suffix,
        "taxonomy_path": seed.taxonomy_path,
        "task_description": seed.task_description,
        "document": None,
    }


def generate(run: Run, opts: Mapping[str, Any]) -> int:
    log = run.log
    model = str(opts["model"] or Path(DEFAULT_GENERATE_MODEL).expanduser())
    taxonomy = Path(opts["taxonomy_path"] or Path(DEFAULT_TAXONOMY).expanduser())
    base = str(opts["taxonomy_base"] or "origin/main")
    output_dir = Path(opts["output_dir"] or Path(DEFAULT_DATASETS).expanduser())
    pipeline = str(opts["pipeline"] or "simple")
    scale = (
        opts["sdg_scale_factor"] if opts["sdg_scale_factor"] is not None else DEFAULT_SCALE_FACTOR
    )
    run.record.update({"command": "data generate", "taxonomy_base": base})

    log("INFO", "numexpr.utils:161", f"NumExpr defaulting to {NUM_PROC} threads.")
    log("INFO", "datasets:58", "PyTorch version 2.3.1 available.")
    run.sleep(run.behaviour.duration * 0.05)
    api_base = opts["endpoint_url"]
    if not api_base:
        connecting = f"Trying to connect to model server at {DEFAULT_SERVER}"
        log("INFO", "instructlab.model.backends.llama_cpp:103", connecting)
        run.sleep(run.behaviour.duration * 0.05)
        no_batching = "Disabling SDG batching - unsupported with llama.cpp serving"
        log("WARNING", "instructlab.data.generate:287", no_batching)
        api_base = DEFAULT_SERVER
    sys.stdout.write(
        f"Generating synthetic data using '{pipeline}' pipeline, '{model}' model, "
        f"'{taxonomy}' taxonomy, against {api_base} server\n"
    )
    sys.stdout.flush()
    started = time.monotonic()
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        if not taxonomy.exists():
            raise GenerateError(f"Error: taxonomy ({taxonomy}) does not exist.")
        names = [taxonomy.name] if taxonomy.is_file() else changed_taxonomy_files(taxonomy, base)
        root = taxonomy.parent if taxonomy.is_file() else taxonomy
        seeds = read_seeds(root, names, log)
        run.record["seeds"] = [
            {"path": s.path, "question": s.question, "answer": s.answer, "context": s.context}
            for s in seeds
        ]
        run.write_record()
        if not seeds:
            raise GenerateError("Error: No new leaf nodes found in the taxonomy.")
        if pipeline not in ("simple", "full") and not Path(pipeline).is_dir():
            raise GenerateError(f"Error: pipeline ({pipeline}) is not supported.")
        return _run_pipeline(run, opts, seeds, output_dir, model, scale, started)
    except GenerateError as exc:
        sys.stdout.write(f"Generating dataset failed with the following error: {exc}\n")
        return 1


def _run_pipeline(
    run: Run,
    opts: Mapping[str, Any],
    seeds: Sequence[Seed],
    output_dir: Path,
    model: str,
    scale: int,
    started: float,
) -> int:
    log = run.log
    behaviour = run.behaviour
    name = Path(model).stem
    date_suffix = datetime.now().replace(microsecond=0).isoformat().replace(":", "_")
    test_file = output_dir / f"test_{name}_{date_suffix}.jsonl"
    _write_jsonl(
        test_file,
        [
            {
                "system": SYSTEM_PROMPT,
                "user": _user_text(s.question, s.context),
                "assistant": s.answer,
            }
            for s in seeds
        ],
    )
    if behaviour.mode == "flood":
        run.flood("instructlab.sdg.pipeline:198")
    if not opts["quiet"]:
        log("INFO", "instructlab.sdg:375", SYNTHESIZING)

    leaves: dict[str, list[Seed]] = {}
    for seed in seeds:
        leaves.setdefault(seed.path, []).append(seed)
    ticks = len(seeds) * scale
    tick_sleep = behaviour.duration * 0.8 / ticks if ticks else 0.0
    generated: list[dict[str, Any]] = []
    done = 0
    for leaf_number, leaf in enumerate(leaves.values(), start=1):
        block, features = BLOCKS[leaf[0].kind]
        log("INFO", "instructlab.sdg.pipeline:153", "Running pipeline single-threaded")
        log("INFO", "instructlab.sdg.llmblock:51", "LLM server supports batched inputs: False")
        log("INFO", "instructlab.sdg.pipeline:197", f"Running block: {block}")
        dataset = f"Dataset({{\n    features: {features},\n    num_rows: {len(leaf)}\n}})"
        log("INFO", "instructlab.sdg.pipeline:198", dataset)
        bar = ProgressBar(sys.stderr, f"{block} Prompt Generation", len(leaf) * scale)
        for seed in leaf:
            for i in range(1, scale + 1):
                run.sleep(tick_sleep)
                generated.append(_synthesize(seed, i, scale))
                bar.update()
                done += 1
                if behaviour.mode in STOPPING_MODES and done * 5 >= ticks * 2:
                    bar.close()
                    return _stop_midway(run)
        bar.close()
        mapped = ProgressBar(
            sys.stderr, f"Map (num_proc={NUM_PROC})", len(leaf) * scale, " examples"
        )
        run.sleep(behaviour.duration * 0.05 / len(leaves))
        mapped.update(len(leaf) * scale)
        mapped.close()
        log("INFO", "instructlab.sdg:411", f"Generated {leaf_number} samples")

    train = [
        {
            "system": SYSTEM_PROMPT,
            "user": _user_text(g["instruction"], g["input"]),
            "assistant": g["output"],
        }
        for g in generated
    ]
    messages = [
        {
            "messages": [
                {"content": t["user"], "role": "user"},
                {"content": t["assistant"], "role": "assistant"},
            ],
            "metadata": json.dumps({"system": SYSTEM_PROMPT}),
        }
        for t in train
    ]
    _write_jsonl(output_dir / f"train_{name}_{date_suffix}.jsonl", train)
    _write_jsonl(output_dir / f"messages_{name}_{date_suffix}.jsonl", messages)
    with (output_dir / f"generated_{name}_{date_suffix}.json").open("w", encoding="utf-8") as out:
        json.dump(generated, out, indent=4)
    run.sleep(behaviour.duration * 0.05)
    discarded = output_dir / f"discarded_{name}_{date_suffix}.log"
    summary = (
        f"{len(generated)} instructions generated, 0 discarded due to format (see {discarded}), "
        "0 discarded due to rouge score"
    )
    log("INFO", "instructlab.sdg:466", summary)
    log("INFO", "instructlab.sdg:469", f"Generation took {time.monotonic() - started:.2f}s")
    return 0


def _leak(run: Run) -> int:
    """Print each secret as ilab would print text it came across, then fail quoting them."""
    secrets = run.behaviour.leaks()
    for secret in secrets:
        run.log("INFO", "instructlab.sdg.llmblock:51", f"Using credentials {secret}")
        sys.stderr.write(f"{secret} Prompt Generation:  50%|█████     | 1/2 [00:01<00:01]\r")
        sys.stdout.write(f"request failed: {secret}\n")
    sys.stderr.write("\n")
    sys.stdout.write(f"Generating dataset failed with the following error: {' '.join(secrets)}\n")
    return 1


def _stop_midway(run: Run) -> int:
    if run.behaviour.mode == "leak-secrets":
        return _leak(run)
    if run.behaviour.mode == "fail":
        sys.stdout.write(
            f"Generating dataset failed with the following error: {run.behaviour.fail_message}\n"
        )
        return 1
    if run.behaviour.mode == "crash-parent":
        sys.stderr.flush()
        os.kill(os.getppid(), signal.SIGKILL)  # the worker dies; this process is orphaned
        return 1
    return run.hang_forever()


# --------------------------------------------------------------------------------------------
# `ilab model chat`


def chat(run: Run, opts: Mapping[str, Any], words: Sequence[str]) -> int:
    question = " ".join(words)
    run.record.update({"command": "model chat", "question": question})
    run.write_record()
    if run.behaviour.mode == "flood":
        run.flood("instructlab.model.chat:412")
    if run.behaviour.mode in ("hang", "hang-ignore-term"):
        run.hang_forever()
    if run.behaviour.mode == "fail":
        sys.stdout.write(
            "Executing chat failed with: API issue found while executing chat: "
            f"{run.behaviour.fail_message}\n"
        )
        return 1
    if not opts["quick_question"]:
        sys.stderr.write("ilab-standin: interactive chat is not supported; use --quick-question\n")
        return 2
    if not question.strip() or question.split()[0].lower() in CHAT_COMMAND_WORDS:
        return 0  # the real chat treats these as chat commands (or nothing) and answers nothing
    model = str(opts["model"] or Path(DEFAULT_CHAT_MODEL).expanduser())
    model_name = Path(os.path.normpath(model)).name
    run.sleep(min(run.behaviour.duration, 0.2))
    sys.stdout.write(f"[{model_name}] This is a stand-in answer to: {question}\n")
    for secret in run.behaviour.leaks():
        sys.stdout.write(f"The server said: {secret}\n")
    return 0


# --------------------------------------------------------------------------------------------
# Entry point


def _utf8(stream: TextIO) -> TextIO:
    if isinstance(stream, io.TextIOWrapper):
        stream.reconfigure(encoding="utf-8", errors="backslashreplace")
    return stream


def _subcommand(
    group: Command, argv: Sequence[str], before: Callable[[dict[str, Any]], None] | None = None
) -> tuple[str, list[str]]:
    """Parse a group's options, run its callback, then pick its subcommand (or print help)."""
    parsed = parse_args(group, argv)
    values = convert(group, parsed)
    if before is not None:
        before(values)
    if not parsed.args:
        print_help(group)
        raise Exit(0)
    name, rest = parsed.args[0], parsed.args[1:]
    if name not in group.subcommands:
        raise UsageError(f"No such command {name!r}.", group)
    return name, rest


def _config_error(config: str | None) -> str | None:
    """ilab defers a bad --config until a command group needs it (then a usage error)."""
    if config is None or config == "DEFAULT":
        return None
    path = Path(config)
    if not path.is_file():
        return (
            f"`{config}` does not exist or is not a readable file.\n"
            "Please run `ilab config init` or point to a valid configuration file using "
            "`--config=<path>`."
        )
    import yaml

    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        return f"Configuration file {config} is not valid YAML: {exc}"
    if loaded is not None and not isinstance(loaded, Mapping):
        return f"Configuration file {config} is not valid: the top level is not a mapping"
    return None


def _dispatch(run: Run, argv: Sequence[str]) -> int:
    config: list[str | None] = []

    def top_level(values: dict[str, Any]) -> None:
        if values["version"]:  # click's eager --version
            sys.stdout.write(f"ilab, version {ILAB_VERSION}\n")
            raise Exit(0)
        config.append(values["config"])

    group_name, rest = _subcommand(ILAB, argv, top_level)
    group = {"data": DATA, "model": MODEL}.get(group_name)
    if group is None:
        sys.stderr.write(f"ilab-standin: `ilab {group_name}` is not part of the stand-in\n")
        return 2

    def check_config(_: dict[str, Any]) -> None:
        error = _config_error(config[0])
        if error:
            raise UsageError(error, group)

    name, rest = _subcommand(group, rest, check_config)
    command = GENERATE if name == "generate" else CHAT
    parsed = parse_args(command, rest)
    opts = convert(command, parsed)
    if command is GENERATE:
        return generate(run, opts)
    return chat(run, opts, parsed.args)


def _traceback(exc: TaxonomyReadingError) -> None:
    sys.stderr.write(
        "Traceback (most recent call last):\n"
        '  File "/opt/app-root/lib64/python3.11/site-packages/instructlab/sdg/utils/'
        'taxonomy.py", line 337, in _read_taxonomy_file\n'
        '    raise TaxonomyReadingException(f"Exception {e} raised in {file_path}") from e\n'
        f"instructlab.sdg.utils.taxonomy.TaxonomyReadingException: {exc}\n"
    )


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Run the stand-in; `argv` defaults to sys.argv[1:]. Always exits the process."""
    args = list(sys.argv[1:] if argv is None else argv)
    _utf8(sys.stdout)
    _utf8(sys.stderr)
    try:
        behaviour = Behaviour.from_env(os.environ)
    except ValueError as exc:
        sys.stderr.write(f"ilab-standin: bad ILAB_STANDIN_* setting: {exc}\n")
        sys.exit(3)
    if behaviour.mode not in MODES:
        sys.stderr.write(f"ilab-standin: unknown ILAB_STANDIN_MODE {behaviour.mode!r}\n")
        sys.exit(3)
    run = Run(behaviour, args, IlabLog(sys.stderr))
    if behaviour.mode in ATTACKS:
        run.write_record()
        out = args[args.index("--output-dir") + 1] if "--output-dir" in args[:-1] else None
        sys.exit(run_attack(behaviour.mode, Path(out) if out else None))
    if behaviour.child:
        run.child = subprocess.Popen(
            ["sleep", "3600"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    code = 1
    try:
        code = _dispatch(run, args)
    except UsageError as err:
        show_usage_error(err)
        code = 2
    except Exit as done:
        code = done.code
    except TaxonomyError as err:
        sys.stderr.write(f"{err}\n")
        code = 1
    except TaxonomyReadingError as err:
        _traceback(err)
        code = 1
    finally:
        run.write_record()
        run.reap_child()
        sys.stdout.flush()
        sys.stderr.flush()
    sys.exit(code)


if __name__ == "__main__":
    main()
