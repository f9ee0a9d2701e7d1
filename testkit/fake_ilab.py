"""A stand-in for InstructLab's `ilab` CLI, for tests and `make demo`.

The bot runs `ilab data generate` (and, for prechecks, `ilab model chat --quick-question`) as a
subprocess and only sees its argv handling, exit code, output streams and files. This program
reproduces exactly those for ilab 0.26.1 (instructlab-sdg 0.8) or 0.18.4 (sdg 0.2), without a
model (testkit/ilab_profiles.py says what differs): command-line parsing follows click 8.1 (so
a value that starts with `--` is taken or refused exactly as the real CLI would, and a flag the
release lacks is a usage error, exit 2), a missing config is the real usage error, log lines go
to stderr and tqdm/datasets bars where the release draws them, and the output files have the
real names, folders and record keys (held to the layout recorded from the real 0.26.1 by
tests/test_ilab_layout.py), with samples derived verbatim from the seed examples so tests can
prove what reached it.

Environment switches (read at run time, never at import):
  ILAB_STANDIN_VERSION      0.26.1 (default) | 0.18.4: the release to play
  ILAB_STANDIN_CONFIG       required (default: like ilab, no config.yaml is exit 2) | optional
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
  ILAB_STANDIN_SERVE_*, …   `model serve`'s own switches: testkit/ilab_serve.py
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, NoReturn, TextIO

from testkit.ilab_attacks import ATTACKS, run_attack
from testkit.ilab_click import (
    Command,
    Exit,
    UsageError,
    convert,
    parse_args,
    print_help,
    show_usage_error,
)
from testkit.ilab_config import config_error, config_init
from testkit.ilab_outputs import Run as OutputRun
from testkit.ilab_outputs import Sample, write_checkpoint, write_results, write_test
from testkit.ilab_profiles import Profile, profile_from_env
from testkit.ilab_serve import serve

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
BATCHING = "Running pipeline with multi-threaded batching. Using 10 workers for batches of size 8"
NOT_A_MAPPING = "The top-level element is not an object with key-value pairs."


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


def format_meter(
    desc: str, n: int, total: int, elapsed: float, unit: str = "it", ascii: bool = False
) -> str:
    """tqdm's default meter, 10-cell bar: unicode on a UTF-8 stream, `#` on a stream without
    an encoding (0.26's tee of stdout, which tqdm cannot tell supports unicode)."""
    frac = n / total if total else 0.0
    charset = " 123456789#" if ascii else " ▏▎▍▌▋▊▉█"
    steps = len(charset) - 1
    cells, part = divmod(int(frac * 10 * steps), steps)
    bar = charset[-1] * min(cells, 10)
    if cells < 10:
        bar += charset[part] + " " * (10 - cells - 1)
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

    def __init__(
        self, stream: TextIO, desc: str, total: int, unit: str = "it", ascii: bool = False
    ) -> None:
        self.stream, self.desc, self.total, self.unit = stream, desc, total, unit
        self.ascii = ascii
        self.n = 0
        self.started = time.monotonic()
        self._width = 0
        self._draw()

    def _draw(self, end: str = "") -> None:
        elapsed = time.monotonic() - self.started
        line = format_meter(self.desc, self.n, self.total, elapsed, self.unit, self.ascii)
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
    profile: Profile
    record: dict[str, Any] = field(default_factory=dict)
    child: subprocess.Popen[bytes] | None = None
    open_bar: ProgressBar | None = None  # 0.26: a bar cut short, closed after the failure line
    _recorded: bool = False

    @property
    def bars(self) -> TextIO:
        return sys.stdout if self.profile.bars_on_stdout else sys.stderr

    def bar(self, desc: str, total: int, unit: str = "it") -> ProgressBar:
        """A tqdm bar where this release draws them (ASCII through 0.26's stdout tee)."""
        return ProgressBar(self.bars, desc, total, unit, ascii=self.profile.bars_on_stdout)

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
    documents: tuple[str, ...] = ()


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
    document = contents.get("document")
    patterns = document.get("patterns") if isinstance(document, Mapping) else None
    documents = tuple(str(p) for p in patterns) if isinstance(patterns, list) else ()
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
                    documents,
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


def _synthesize(seed: Seed, i: int, scale: int) -> Sample:
    """A generated sample that embeds the seed text verbatim, so tests can trace it."""
    suffix = f" (synthetic variant {i} of {scale})"
    leaf_parts = Path(seed.path).parent.parts
    return Sample(
        leaf="_".join(leaf_parts),
        leaf_path="->".join(leaf_parts),
        kind=seed.kind,
        task_description=seed.task_description,
        seed_question=seed.question,
        seed_answer=seed.answer,
        context=seed.context,
        question=seed.question + suffix,
        answer=seed.answer + suffix,
        documents=seed.documents,
    )


def _as_sample(seed: Seed) -> Sample:
    sample = _synthesize(seed, 0, 0)
    return replace(sample, question=seed.question, answer=seed.answer)


def _output_run(run: Run, output_dir: Path, model: str) -> OutputRun:
    """Where this run writes: 0.26 makes `<output-dir>/<YYYY-MM-DD_HHMMSS>/` first."""
    profile = run.profile
    now = datetime.now().replace(microsecond=0)
    root = output_dir / now.strftime("%Y-%m-%d_%H%M%S") if profile.dated_subfolder else output_dir
    root.mkdir(parents=True, exist_ok=True)
    model_part = f"{Path(model).stem}_" if profile.model_in_names else ""
    suffix = now.isoformat().replace(":", "_")
    return OutputRun(profile, output_dir, root, suffix, model_part)


def generate(run: Run, opts: Mapping[str, Any]) -> int:
    log = run.log
    profile = run.profile
    model = str(opts["model"] or Path(profile.default_generate_model).expanduser())
    taxonomy = Path(opts["taxonomy_path"] or Path(DEFAULT_TAXONOMY).expanduser())
    base = str(opts["taxonomy_base"] or "origin/main")
    output_dir = Path(opts["output_dir"] or Path(DEFAULT_DATASETS).expanduser())
    pipeline = str(opts["pipeline"] or profile.default_pipeline)
    scale = (
        opts["sdg_scale_factor"] if opts["sdg_scale_factor"] is not None else DEFAULT_SCALE_FACTOR
    )
    run.record.update({"command": "data generate", "taxonomy_base": base})

    log("INFO", "numexpr.utils:161", f"NumExpr defaulting to {NUM_PROC} threads.")
    run.sleep(run.behaviour.duration * 0.05)
    api_base = opts["endpoint_url"]
    if not api_base:
        connecting = f"Trying to connect to model server at {DEFAULT_SERVER}"
        log("INFO", "instructlab.model.backends.llama_cpp:103", connecting)
        run.sleep(run.behaviour.duration * 0.05)
        no_batching = "Disabling SDG batching - unsupported with llama.cpp serving"
        log("WARNING", "instructlab.data.generate:287", no_batching)
        api_base = DEFAULT_SERVER
    started = time.monotonic()
    try:
        out = _output_run(run, output_dir, model)
        line = (
            f"Generating synthetic data using '{pipeline}' pipeline, '{model}' model, "
            f"'{taxonomy}' taxonomy, against {api_base} server"
        )
        if profile.dated_subfolder:
            log("INFO", "instructlab:206", line)
        else:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
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
        return _run_pipeline(run, opts, seeds, out, scale, started)
    except GenerateError as exc:
        sys.stdout.write(f"{profile.failure_prefix}{exc}\n")
        return 1


def _leaf_bars(
    run: Run, leaf: Sequence[Seed], scale: int, progress: list[int]
) -> list[Sample] | None:
    """One leaf's generation bar; None when a stopping mode stopped the run midway."""
    block = BLOCKS[leaf[0].kind][0]
    ticks, done = progress
    tick_sleep = run.behaviour.duration * 0.8 / ticks if ticks else 0.0
    bar = run.bar(f"{block} Prompt Generation", len(leaf) * scale)
    samples: list[Sample] = []
    for seed in leaf:
        for i in range(1, scale + 1):
            run.sleep(tick_sleep)
            samples.append(_synthesize(seed, i, scale))
            bar.update()
            done += 1
            progress[1] = done
            if run.behaviour.mode in STOPPING_MODES and done * 5 >= ticks * 2:
                if run.profile.bars_on_stdout:
                    run.open_bar = bar
                else:
                    bar.close()
                return None
    bar.close()
    return samples


def _run_pipeline(
    run: Run,
    opts: Mapping[str, Any],
    seeds: Sequence[Seed],
    out: OutputRun,
    scale: int,
    started: float,
) -> int:
    log = run.log
    behaviour = run.behaviour
    write_test(out, [_as_sample(s) for s in seeds], SYSTEM_PROMPT)
    if behaviour.mode == "flood":
        run.flood("instructlab.sdg.pipeline:198")
    if not opts["quiet"]:
        log("INFO", run.profile.sdg_logger(375, 445), SYNTHESIZING)
    leaves: dict[str, list[Seed]] = {}
    for seed in seeds:
        leaves.setdefault(seed.path, []).append(seed)
    progress = [len(seeds) * scale, 0]
    generated: list[Sample] = []
    for leaf_number, leaf in enumerate(leaves.values(), start=1):
        block, features = BLOCKS[leaf[0].kind]
        leaf_name = "_".join(Path(leaf[0].path).parent.parts)
        checkpoints = out.output_dir / "checkpoints" / leaf_name
        fresh = f"No existing checkpoints found in {checkpoints}, generating from scratch"
        log("INFO", "instructlab.sdg.checkpointing:59", fresh)
        log("INFO", "instructlab.sdg.pipeline:158", BATCHING)
        log("INFO", "instructlab.sdg.llmblock:51", "LLM server supports batched inputs: True")
        log("INFO", "instructlab.sdg.pipeline:197", f"Running block: {block}")
        dataset = f"Dataset({{\n    features: {features},\n    num_rows: {len(leaf)}\n}})"
        log("INFO", "instructlab.sdg.pipeline:198", dataset)
        samples = _leaf_bars(run, leaf, scale, progress)
        if samples is None:
            return _stop_midway(run)
        write_checkpoint(out, leaf_name, samples)
        mapped = run.bar(f"Map (num_proc={NUM_PROC})", len(samples), " examples")
        run.sleep(behaviour.duration * 0.05 / len(leaves))
        mapped.update(len(samples))
        mapped.close()
        log("INFO", run.profile.sdg_logger(411, 482), f"Generated {leaf_number} samples")
        generated += samples
    write_results(out, generated, SYSTEM_PROMPT)
    arrow = run.bar("Creating json from Arrow format", 1, "ba")
    arrow.update()
    arrow.close()
    for kind in ("skills", "knowledge"):
        mix = out.root / f"{kind}_train_msgs_{out.suffix}.jsonl"
        if mix.exists():
            log("INFO", "instructlab.sdg.datamixing:200", f"Mixed Dataset saved to {mix}")
    run.sleep(behaviour.duration * 0.05)
    took = f"Generation took {time.monotonic() - started:.2f}s"
    log("INFO", run.profile.sdg_logger(438, 768), took)
    if run.profile.dated_subfolder:
        sys.stdout.write("ᕦ(òᴗóˇ)ᕤ Data generate completed successfully! ᕦ(òᴗóˇ)ᕤ\n")
    return 0


def _leak(run: Run) -> int:
    """Print each secret as ilab would print text it came across, then fail quoting them."""
    secrets = run.behaviour.leaks()
    for secret in secrets:
        run.log("INFO", "instructlab.sdg.llmblock:51", f"Using credentials {secret}")
        run.bars.write(f"{secret} Prompt Generation:  50%|█████     | 1/2 [00:01<00:01]\r")
        sys.stdout.write(f"request failed: {secret}\n")
    run.bars.write("\n")
    sys.stdout.write(f"{run.profile.failure_prefix}{' '.join(secrets)}\n")
    return 1


def _stop_midway(run: Run) -> int:
    if run.behaviour.mode == "leak-secrets":
        return _leak(run)
    if run.behaviour.mode == "fail":
        sys.stdout.write(f"{run.profile.failure_prefix}{run.behaviour.fail_message}\n")
        if run.open_bar is not None:
            run.open_bar.close()  # tqdm redraws the cut bar when it is torn down
        return 1
    if run.behaviour.mode == "crash-parent":
        sys.stderr.flush()
        os.kill(os.getppid(), signal.SIGKILL)  # the worker dies; this process is orphaned
        return 1
    return run.hang_forever()


# --------------------------------------------------------------------------------------------
# `ilab model chat`


RED, RESET = "\033[31m", "\033[0m"


def _wrap(text: str, width: int) -> list[str]:
    """rich's word wrap of a non-terminal console (`COLUMNS`, default 80 columns)."""
    import textwrap

    lines: list[str] = []
    for paragraph in text.split("\n"):
        if len(paragraph) <= width:
            lines.append(paragraph)  # as is, leading spaces and all
        else:
            lines += textwrap.wrap(paragraph, width, break_on_hyphens=False)
    return lines


def panel(text: str, title: str, subtitle: str, width: int) -> str:
    """rich's Panel (rounded box, title centred, subtitle right-aligned), full width."""
    inner = width - 2
    label = f" {title} "
    left = (inner - len(label)) // 2
    top = f"╭{'─' * left}{label}{'─' * (inner - left - len(label))}╮"
    body = [f"│ {line.ljust(width - 4)} │" for line in _wrap(text, width - 4)]
    tail = f" {subtitle} ─"
    bottom = f"╰{'─' * (inner - len(tail))}{tail}╯"
    return "\n".join([top, *body, bottom])


def _chat_failure(run: Run, message: str) -> int:
    text = f"Executing chat failed with: {message}"
    if run.profile.boxed_chat:  # 0.26 prints the ANSI colour codes itself, terminal or not
        text = f"{RED}{text}{RESET}"
    sys.stdout.write(text + "\n")
    return 1


def chat(run: Run, opts: Mapping[str, Any], words: Sequence[str]) -> int:
    question = " ".join(words)
    run.record.update({"command": "model chat", "question": question})
    run.write_record()
    if run.behaviour.mode == "flood":
        run.flood("instructlab.model.chat:412")
    if run.behaviour.mode in ("hang", "hang-ignore-term"):
        run.hang_forever()
    if run.behaviour.mode == "fail":
        message = f"API issue found while executing chat: {run.behaviour.fail_message}"
        return _chat_failure(run, message)
    if not opts["quick_question"]:
        sys.stderr.write("ilab-standin: interactive chat is not supported; use --quick-question\n")
        return 2
    if not question.strip() or question.split()[0].lower() in CHAT_COMMAND_WORDS:
        return 0  # the real chat treats these as chat commands (or nothing) and answers nothing
    model = str(opts["model"] or Path(run.profile.default_chat_model).expanduser())
    model_name = Path(os.path.normpath(model)).name
    started = time.monotonic()
    run.sleep(min(run.behaviour.duration, 0.2))
    answer = f"[{model_name}] This is a stand-in answer to: {question}"
    answer += "".join(f"\nThe server said: {secret}" for secret in run.behaviour.leaks())
    width = int(os.environ.get("COLUMNS") or 80)
    if run.profile.boxed_chat and not opts.get("no_decoration"):
        elapsed = f"elapsed {time.monotonic() - started:.3f} seconds"
        sys.stdout.write(panel(answer, model, elapsed, width) + "\n")
    else:
        sys.stdout.write("\n".join(_wrap(answer, width)))  # no newline after the answer
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


def _dispatch(run: Run, argv: Sequence[str]) -> int:
    profile = run.profile
    config: list[str | None] = []

    def top_level(values: dict[str, Any]) -> None:
        if values["version"]:  # click's eager --version
            sys.stdout.write(f"ilab, version {profile.version}\n")
            raise Exit(0)
        config.append(values["config"])

    group_name, rest = _subcommand(profile.ilab, argv, top_level)
    group = profile.group(group_name)
    if group is None:
        sys.stderr.write(f"ilab-standin: `ilab {group_name}` is not part of the stand-in\n")
        return 2

    def check_config(_: dict[str, Any]) -> None:
        error = None if group_name == "config" else config_error(config[0], os.environ)
        if error:
            raise UsageError(error, group)

    name, rest = _subcommand(group, rest, check_config)
    commands = {"generate": profile.generate, "chat": profile.chat, "serve": profile.serve}
    command = commands.get(name, profile.config_init)
    parsed = parse_args(command, rest)
    opts = convert(command, parsed)
    if command is profile.serve:
        return serve(run, opts, parsed.args, config[0])
    if command is profile.generate:
        return generate(run, opts)
    if command is profile.chat:
        return chat(run, opts, parsed.args)
    return config_init(profile, opts, os.environ)


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
        profile = profile_from_env(os.environ)
    except ValueError as exc:
        sys.stderr.write(f"ilab-standin: bad ILAB_STANDIN_* setting: {exc}\n")
        sys.exit(3)
    if behaviour.mode not in MODES:
        sys.stderr.write(f"ilab-standin: unknown ILAB_STANDIN_MODE {behaviour.mode!r}\n")
        sys.exit(3)
    run = Run(behaviour, args, IlabLog(sys.stderr), profile)
    if behaviour.mode in ATTACKS and args != ["--version"]:  # answers the worker's probe
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
