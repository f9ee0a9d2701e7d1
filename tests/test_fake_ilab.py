"""The `ilab` stand-in, run as a real subprocess against a cloned taxonomy pull request."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from testkit.fake_ilab import SYSTEM_PROMPT
from testkit.taxonomy import (
    KnowledgeSeed,
    SkillSeed,
    checkout_pr,
    default_knowledge_seeds,
    default_skill_seeds,
    knowledge_qna,
    leaf_files,
    skill_qna,
)
from tests.fixtures.taxonomy import PR_SKILL_DIR, StandinRecord, TaxonomyFactory

LOG_LINE = re.compile(
    r"^(DEBUG|INFO|WARNING|ERROR) \d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [\w.]+:\d+: .+$"
)
BAR = re.compile(r"^(?P<desc>.+): +(?P<pct>\d+)%\|.{10}\| (?P<n>\d+)/(?P<total>\d+) \[[\d:]+<")
MODEL = "/models/merlinite-7b-lab-Q4_K_M.gguf"
KNOWLEDGE_DIR = "knowledge/science/astronomy/moon"


def hostile_texts(marker: Path) -> list[str]:
    return [
        "--help",
        f"$(touch {marker}) `touch {marker}`; touch {marker}",
        "it's \"double\" and 'single' quoted",
        "line one\nline two\n  indented line three",
        "Ünïcødé 日本語 🚀 — “curly”",
    ]


def run(
    standin: str, *args: str, cwd: Path, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the stand-in; output decoded without newline translation, so `\r` survives."""
    full_env = {**os.environ, "ILAB_STANDIN_DURATION": "0.05", **(env or {})}
    proc = subprocess.run(
        [standin, *args], cwd=cwd, env=full_env, capture_output=True, timeout=60, check=False
    )
    return subprocess.CompletedProcess(
        proc.args, proc.returncode, proc.stdout.decode(), proc.stderr.decode()
    )


def generate_args(workspace: Path, *extra: str) -> list[str]:
    return [
        "data",
        "generate",
        "--taxonomy-path",
        str(workspace / "taxonomy"),
        "--taxonomy-base",
        "origin/main",
        "--output-dir",
        str(workspace / "out"),
        "--endpoint-url",
        "http://127.0.0.1:9/v1",
        "--model",
        MODEL,
        "--sdg-scale-factor",
        "2",
        *extra,
    ]


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "pwned"


@pytest.fixture
def workspace(taxonomy_remote: TaxonomyFactory, tmp_path: Path, marker: Path) -> Path:
    """A worker-like checkout of PR #7, which adds a hostile skill and a knowledge leaf."""
    texts = hostile_texts(marker)
    seeds = [SkillSeed(f"Q{i}: {t}", f"A{i}: {t}") for i, t in enumerate(texts)]
    knowledge = default_knowledge_seeds()
    knowledge[0] = KnowledgeSeed(f"Context: {texts[1]}", knowledge[0].questions_and_answers)
    remote = taxonomy_remote(
        pr_files={
            **leaf_files(PR_SKILL_DIR, skill_qna(seeds)),
            **leaf_files(KNOWLEDGE_DIR, knowledge_qna(knowledge)),
        }
    )
    ws = tmp_path / "ws"
    ws.mkdir()
    checkout_pr(remote, ws / "taxonomy")
    return ws


def outputs(out: Path) -> dict[str, Path]:
    """0.26's files and folders in the one dated folder of a run, by kind (`train`, ...)."""
    (dated,) = [p for p in out.iterdir() if p.name != "checkpoints"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d_\d{6}", dated.name), dated.name
    found = {}
    for path in dated.iterdir():
        match = re.fullmatch(r"(\w+?)_\d{4}-\d\d-\d\dT\d\d_\d\d_\d\d(\.jsonl|\.yaml)?", path.name)
        assert match, path.name
        found[match.group(1)] = path
    return found


ALL_OUTPUTS = {
    *("test", "train", "messages", "generated", "preprocessed", "node_datasets"),
    *("skills_recipe", "knowledge_recipe", "skills_train_msgs", "knowledge_train_msgs"),
}
SKILL_LEAF = PR_SKILL_DIR.replace("/", "_")
BANNER = "ᕦ(òᴗóˇ)ᕤ Data generate completed successfully! ᕦ(òᴗóˇ)ᕤ\n"


def jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_generate_writes_ilab_files_derived_from_the_seeds(
    ilab_standin: str, workspace: Path, marker: Path, standin_record: StandinRecord
) -> None:
    args = generate_args(workspace)
    proc = run(ilab_standin, *args, cwd=workspace, env=standin_record.env)
    assert proc.returncode == 0, proc.stderr
    assert not marker.exists()

    [entry] = standin_record.entries()
    assert entry["argv"] == args
    assert entry["cwd"] == str(workspace)
    assert "ILAB_STANDIN_RECORD" in entry["env"] and str(standin_record.path) not in entry["env"]
    texts = hostile_texts(marker)
    skill_seeds = [s for s in entry["seeds"] if s["path"] == f"{PR_SKILL_DIR}/qna.yaml"]
    assert [(s["question"], s["answer"]) for s in skill_seeds] == [
        (f"Q{i}: {t}", f"A{i}: {t}") for i, t in enumerate(texts)
    ]
    assert {s["path"] for s in entry["seeds"]} == {
        f"{PR_SKILL_DIR}/qna.yaml",
        f"{KNOWLEDGE_DIR}/qna.yaml",
    }  # the skill already on main is not new data
    knowledge_pairs = sum(len(k.questions_and_answers) for k in default_knowledge_seeds())
    n_seeds = len(texts) + knowledge_pairs
    assert len(entry["seeds"]) == n_seeds

    files = outputs(workspace / "out")
    assert set(files) == ALL_OUTPUTS
    generated = [r for f in sorted(files["generated"].iterdir()) for r in jsonl(f)]
    train, test, messages = jsonl(files["train"]), jsonl(files["test"]), jsonl(files["messages"])
    assert len(generated) == len(train) == len(messages) == 2 * n_seeds
    assert len(test) == n_seeds
    skill_rows = jsonl(files["generated"] / f"{SKILL_LEAF}.jsonl")
    assert {r["seed_question"] for r in skill_rows} == {f"Q{i}: {t}" for i, t in enumerate(texts)}
    assert all(set(r) >= {"output", "leaf_node_path", "leaf_node_type"} for r in generated)
    mixed = jsonl(files["skills_train_msgs"])
    assert [m["role"] for m in mixed[0]["messages"]] == ["system", "user", "assistant"]
    assert all(set(t) == {"system", "user", "assistant"} for t in train + test)
    assert train[0]["system"] == SYSTEM_PROMPT
    for i, text in enumerate(texts):
        for variant in (1, 2):
            suffix = f" (synthetic variant {variant} of 2)"
            record = {"system": SYSTEM_PROMPT, "user": f"Q{i}: {text}{suffix}"}
            assert {**record, "assistant": f"A{i}: {text}{suffix}"} in train
        assert {
            "system": SYSTEM_PROMPT,
            "user": f"Q{i}: {text}",
            "assistant": f"A{i}: {text}",
        } in test
    grounded = [t for t in train if t["user"].endswith(f"\nContext: {texts[1]}")]
    assert len(grounded) == 2 * 3  # knowledge questions carry their context
    assert messages[0]["messages"] == [
        {"content": train[0]["user"], "role": "user"},
        {"content": train[0]["assistant"], "role": "assistant"},
    ]
    assert json.loads(messages[0]["metadata"]) == {"system": SYSTEM_PROMPT}


def test_generate_prints_like_ilab(ilab_standin: str, workspace: Path) -> None:
    """0.26: bars (ASCII, through its stdout tee) and the banner on stdout, logs on stderr."""
    proc = run(ilab_standin, *generate_args(workspace, "--sdg-scale-factor", "3"), cwd=workspace)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.endswith(BANNER) and "█" not in proc.stdout
    frames = [f for line in proc.stdout.split("\n") for f in line.split("\r") if f]
    bars = [m for m in map(BAR.match, frames) if m]
    assert "\r" in proc.stdout and bars
    assert {m.group("desc") for m in bars} == {
        "gen_skill_freeform Prompt Generation",
        "gen_knowledge Prompt Generation",
        "Map (num_proc=8)",
        "Creating json from Arrow format",
    }
    skill_bar = [m for m in bars if m.group("desc").startswith("gen_skill")]
    assert [int(m.group("n")) for m in skill_bar] == [*range(16), 15]  # closing redraw
    assert skill_bar[-1].group("pct") == "100" and skill_bar[-1].group("total") == "15"
    logs = [line for line in proc.stderr.splitlines() if LOG_LINE.match(line)]
    messages = [line.split(": ", 1)[1] for line in logs]
    assert messages[-1].startswith("Generation took ")
    assert any(m.startswith("Synthesizing new instructions.") for m in messages)
    assert any(m.startswith("Generating synthetic data using 'full' pipeline") for m in messages)
    assert any(m.startswith("Mixed Dataset saved to ") for m in messages)


def test_generate_prints_like_ilab_0_18(ilab_standin: str, workspace: Path) -> None:
    """0.18: the one stdout line, unicode bars and logs on stderr, files in --output-dir."""
    env = {"ILAB_STANDIN_VERSION": "0.18.4"}
    proc = run(ilab_standin, *generate_args(workspace), cwd=workspace, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == (
        f"Generating synthetic data using 'simple' pipeline, '{MODEL}' model, "
        f"'{workspace / 'taxonomy'}' taxonomy, against http://127.0.0.1:9/v1 server\n"
    )
    assert "█" in proc.stderr and "Generation took " in proc.stderr
    names = {p.name for p in (workspace / "out").iterdir()}
    stem = Path(MODEL).stem
    for prefix in ("train", "test", "messages"):
        assert any(re.fullmatch(rf"{prefix}_{stem}_\d{{4}}.*\.jsonl", n) for n in names), names
    assert any(n.startswith("node_datasets_") for n in names) and "checkpoints" in names
    assert not any(n.startswith(("generated_", "preprocessed_")) for n in names)


def test_no_config_is_a_usage_error(ilab_standin: str, tmp_path: Path) -> None:
    env = {"ILAB_STANDIN_CONFIG": "required", "HOME": str(tmp_path), "XDG_CONFIG_HOME": ""}
    proc = run(ilab_standin, "data", "generate", cwd=tmp_path, env=env)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == (
        "Usage: ilab data [OPTIONS] COMMAND [ARGS]...\nTry 'ilab data --help' for help.\n\n"
        f"Error: `{tmp_path}/.config/instructlab/config.yaml` does not exist or is not a "
        "readable file.\nPlease run `ilab config init` or point to a valid configuration file "
        "using `--config=<path>`.\n"
    )
    seed = tmp_path / "taxonomy"
    seed.mkdir()
    (seed / "README.md").write_text("x\n", encoding="utf-8")
    init = run(ilab_standin, "config", "init", "--non-interactive", "--taxonomy-path", str(seed),
               cwd=tmp_path, env=env)  # fmt: skip
    assert init.returncode == 0, init.stderr
    assert (tmp_path / ".config" / "instructlab" / "config.yaml").is_file()
    assert run(ilab_standin, "data", "generate", "--help", cwd=tmp_path, env=env).returncode == 0


@pytest.mark.parametrize(
    ("version", "flag"),
    [("0.18.4", "--max-num-tokens"), ("0.26.1", "--rouge-threshold")],
)
def test_each_version_refuses_the_other_ones_flags(
    ilab_standin: str, tmp_path: Path, version: str, flag: str
) -> None:
    proc = run(ilab_standin, "data", "generate", flag, "1", cwd=tmp_path,
               env={"ILAB_STANDIN_VERSION": version})  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.endswith(f"Error: No such option: {flag}\n")
    version_out = run(
        ilab_standin, "--version", cwd=tmp_path, env={"ILAB_STANDIN_VERSION": version}
    )
    assert version_out.stdout == f"ilab, version {version}\n"


def test_uncommitted_and_untracked_files_count_as_new(
    ilab_standin: str, workspace: Path, standin_record: StandinRecord
) -> None:
    extra = workspace / "taxonomy" / "compositional_skills" / "local" / "qna.yaml"
    extra.parent.mkdir(parents=True)
    extra.write_text(skill_qna(default_skill_seeds()), encoding="utf-8")
    proc = run(ilab_standin, *generate_args(workspace), cwd=workspace, env=standin_record.env)
    assert proc.returncode == 0, proc.stderr
    paths = {s["path"] for s in standin_record.entries()[0]["seeds"]}
    assert "compositional_skills/local/qna.yaml" in paths


def test_no_new_data_fails_like_ilab(
    ilab_standin: str, taxonomy_remote: TaxonomyFactory, tmp_path: Path
) -> None:
    remote = taxonomy_remote(pr_files={"README.md": "Typo fix.\n"})
    checkout_pr(remote, tmp_path / "taxonomy")
    proc = run(ilab_standin, *generate_args(tmp_path), cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stdout.endswith(
        "failed to generate data with exception: Error: No new leaf nodes found in the taxonomy.\n"
    )


def test_unknown_base_branch(ilab_standin: str, workspace: Path) -> None:
    args = generate_args(workspace, "--taxonomy-base", "origin/nope")
    proc = run(ilab_standin, *args, cwd=workspace)
    assert proc.returncode == 1
    last = proc.stderr.splitlines()[-1]
    assert last == 'Couldn\'t find the taxonomy base branch "origin/nope" from the current HEAD'


def test_invalid_yaml_dies_with_the_reader_exception(ilab_standin: str, workspace: Path) -> None:
    broken = workspace / "taxonomy" / PR_SKILL_DIR / "qna.yaml"
    broken.write_text("seed_examples:xx\n  - question: [\n", encoding="utf-8")
    proc = run(ilab_standin, *generate_args(workspace), cwd=workspace)
    assert proc.returncode == 1
    assert proc.stderr.startswith("INFO ") and "Traceback (most recent call last):" in proc.stderr
    assert "instructlab.sdg.utils.taxonomy.TaxonomyReadingException: Exception " in proc.stderr
    assert proc.stderr.rstrip().endswith(f"raised in {broken}")


def test_schema_errors_are_logged_and_exit_1(ilab_standin: str, workspace: Path) -> None:
    qna = workspace / "taxonomy" / PR_SKILL_DIR / "qna.yaml"
    qna.write_text("version: 3\nseed_examples:\n  - question: only one\n", encoding="utf-8")
    proc = run(ilab_standin, *generate_args(workspace), cwd=workspace)
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("ERROR ")]
    assert errors and all(LOG_LINE.match(line) for line in errors)
    assert f"Validation error in {PR_SKILL_DIR}/qna.yaml: [.seed_examples] Value must" in errors[0]
    assert proc.stderr.splitlines()[-1] == "1 taxonomy files with errors! Exiting."


def test_fail_mode(ilab_standin: str, workspace: Path) -> None:
    env = {"ILAB_STANDIN_MODE": "fail", "ILAB_STANDIN_FAIL_MESSAGE": "teacher unreachable"}
    proc = run(ilab_standin, *generate_args(workspace), cwd=workspace, env=env)
    assert proc.returncode == 1
    # 0.26 prints the reason right after the unfinished bar, on the same line
    (line,) = [line for line in proc.stdout.split("\n") if "failed to generate" in line]
    assert re.fullmatch(r".+ Prompt Generation: .+\]failed to generate data with exception: "
                        r"teacher unreachable", line.split("\r")[-1]), line  # fmt: skip
    assert re.match(r"\r.+ Prompt Generation: ", proc.stdout.split("\n")[-2])  # the bar again
    assert "Generation took" not in proc.stderr and BANNER not in proc.stdout
    assert set(outputs(workspace / "out")) == {"test", "preprocessed"}  # before generation


def test_flood_mode(ilab_standin: str, workspace: Path) -> None:
    env = {"ILAB_STANDIN_MODE": "flood", "ILAB_STANDIN_FLOOD_LINES": "20000"}
    proc = run(ilab_standin, *generate_args(workspace), cwd=workspace, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    flood = [line for line in proc.stderr.splitlines() if "[flood " in line]
    assert len(flood) == 20000 and all(LOG_LINE.match(line) for line in flood[::997])
    assert set(outputs(workspace / "out")) == ALL_OUTPUTS


def _wait_for_record(record: StandinRecord, proc: subprocess.Popen[bytes]) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while not record.entries():
        assert proc.poll() is None, "stand-in exited instead of hanging"
        assert time.monotonic() < deadline, "stand-in never wrote its record"
        time.sleep(0.02)
    return record.entries()[0]


def _ignores_sigterm(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status").read_text()
    mask = int(re.search(r"^SigIgn:\s*([0-9a-f]+)$", status, re.M).group(1), 16)  # type: ignore[union-attr]
    return bool(mask & (1 << (signal.SIGTERM - 1)))


@pytest.fixture
def hanging(
    ilab_standin: str, workspace: Path, standin_record: StandinRecord
) -> Iterator[Callable[[str], tuple[subprocess.Popen[bytes], dict[str, Any]]]]:
    started: list[subprocess.Popen[bytes]] = []

    def start(mode: str) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
        env = {
            **os.environ,
            **standin_record.env,
            "ILAB_STANDIN_MODE": mode,
            "ILAB_STANDIN_CHILD": "1",
            "ILAB_STANDIN_DURATION": "0.05",
        }
        proc = subprocess.Popen(
            [ilab_standin, *generate_args(workspace)],
            cwd=workspace,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        started.append(proc)
        return proc, _wait_for_record(standin_record, proc)

    yield start
    for proc in started:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def test_hang_mode_dies_on_sigterm_and_leaves_its_group(
    hanging: Callable[[str], tuple[subprocess.Popen[bytes], dict[str, Any]]],
) -> None:
    proc, entry = hanging("hang")
    child = entry["child_pid"]
    assert os.getpgid(child) == proc.pid  # the grandchild shares the stand-in's group
    assert not _ignores_sigterm(proc.pid)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == -signal.SIGTERM
    os.kill(child, 0)  # still alive: only killing the whole group stops it
    os.killpg(proc.pid, signal.SIGKILL)


def test_hang_ignore_term_needs_sigkill(
    hanging: Callable[[str], tuple[subprocess.Popen[bytes], dict[str, Any]]],
) -> None:
    proc, _ = hanging("hang-ignore-term")
    deadline = time.monotonic() + 30
    while not _ignores_sigterm(proc.pid):  # set just after the record is written
        assert time.monotonic() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    proc.kill()
    assert proc.wait(timeout=30) == -signal.SIGKILL


def test_child_is_reaped_when_the_run_ends(
    ilab_standin: str, workspace: Path, standin_record: StandinRecord
) -> None:
    env = {**standin_record.env, "ILAB_STANDIN_CHILD": "1"}
    proc = run(ilab_standin, *generate_args(workspace), cwd=workspace, env=env)
    assert proc.returncode == 0
    child = standin_record.entries()[0]["child_pid"]
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)


USAGE_GENERATE = (
    "Usage: ilab data generate [OPTIONS]\nTry 'ilab data generate --help' for help.\n\n"
)
USAGE_CHAT = (
    "Usage: ilab model chat [OPTIONS] [QUESTION]...\nTry 'ilab model chat --help' for help.\n\n"
)


@pytest.mark.parametrize(
    ("args", "stderr"),
    [
        (["data", "generate", "--foo"], USAGE_GENERATE + "Error: No such option: --foo\n"),
        (["data", "generate", "--foo=1"], USAGE_GENERATE + "Error: No such option: --foo\n"),
        (
            ["data", "generate", "--no-prompt"],
            USAGE_GENERATE + "Error: No such option: --no-prompt\n",
        ),
        (
            ["data", "generate", "--taxonomy-pat", "x"],
            USAGE_GENERATE + "Error: No such option: --taxonomy-pat "
            "(Possible options: --taxonomy-base, --taxonomy-path)\n",
        ),
        (
            ["data", "generate", "--qiet"],
            USAGE_GENERATE + "Error: No such option: --qiet Did you mean --quiet?\n",
        ),
        (
            ["data", "generate", "--sdg-scale-factor", "abc"],
            USAGE_GENERATE
            + "Error: Invalid value for '--sdg-scale-factor': 'abc' is not a valid integer.\n",
        ),
        (
            ["data", "generate", "--gpus", "-1"],
            USAGE_GENERATE + "Error: Invalid value for '--gpus': -1 is not in the range x>=0.\n",
        ),
        (["data", "generate", "--quiet=1"], "Error: Option '--quiet' does not take a value.\n"),
        (
            ["data", "generate", "--taxonomy-path"],
            "Error: Option '--taxonomy-path' requires an argument.\n",
        ),
        (["data", "generate", "x"], USAGE_GENERATE + "Error: Got unexpected extra argument (x)\n"),
        (
            ["model", "chat", "--quick-question=--help"],
            "Error: Option '--quick-question' does not take a value.\n",
        ),
        (["model", "chat", "-qq", "-x"], USAGE_CHAT + "Error: No such option: -x\n"),
        (
            ["nope"],
            "Usage: ilab [OPTIONS] COMMAND [ARGS]...\nTry 'ilab --help' for help.\n\n"
            "Error: No such command 'nope'.\n",
        ),
        (
            ["--config", "/nonexistent/config.yaml", "data", "generate"],
            "Usage: ilab data [OPTIONS] COMMAND [ARGS]...\nTry 'ilab data --help' for help.\n\n"
            "Error: `/nonexistent/config.yaml` does not exist or is not a readable file.\n"
            "Please run `ilab config init` or point to a valid configuration file using "
            "`--config=<path>`.\n",
        ),
    ],
)
def test_usage_errors_match_click(
    ilab_standin: str, tmp_path: Path, standin_record: StandinRecord, args: list[str], stderr: str
) -> None:
    proc = run(ilab_standin, *args, cwd=tmp_path, env=standin_record.env)
    assert (proc.returncode, proc.stderr, proc.stdout) == (2, stderr, "")
    assert [e["argv"] for e in standin_record.entries()] == [args]


def test_config_file_is_accepted(ilab_standin: str, workspace: Path) -> None:
    config = workspace / "config.yaml"
    config.write_text("generate:\n  pipeline: simple\n", encoding="utf-8")
    proc = run(ilab_standin, "--config", str(config), *generate_args(workspace), cwd=workspace)
    assert proc.returncode == 0, proc.stderr


CHAT = ["model", "chat", "--endpoint-url", "http://127.0.0.1:9/v1", "--model", MODEL, "-nd"]
WIDE = {"COLUMNS": "10000"}  # rich wraps at 80 columns unless told otherwise


def test_quick_question_after_double_dash_arrives_verbatim(
    ilab_standin: str, tmp_path: Path, marker: Path, standin_record: StandinRecord
) -> None:
    question = "\n".join(hostile_texts(marker))
    args = [*CHAT, "--quick-question", "--", question]
    proc = run(ilab_standin, *args, cwd=tmp_path, env={**standin_record.env, **WIDE})
    assert proc.returncode == 0, proc.stderr
    # -nd: the bare answer, without a newline after it
    assert proc.stdout == f"[merlinite-7b-lab-Q4_K_M.gguf] This is a stand-in answer to: {question}"
    assert not marker.exists()
    [entry] = standin_record.entries()
    assert (entry["argv"], entry["question"]) == (args, question)


def test_quick_question_words_are_joined_and_may_be_interspersed(
    ilab_standin: str, tmp_path: Path
) -> None:
    proc = run(
        ilab_standin, "model", "chat", "-qq", "What is", "--model", MODEL, "2+2?", cwd=tmp_path
    )
    answer = "[merlinite-7b-lab-Q4_K_M.gguf] This is a stand-in answer to: What is 2+2?"
    # 0.26 without -nd: a full-width box titled with the model, elapsed time below, no colours
    lines = proc.stdout.splitlines()
    assert len(lines) == 3 and all(len(line) == 80 for line in lines), proc.stdout
    assert lines[0].startswith("╭") and f" {MODEL} " in lines[0]
    assert lines[1] == f"│ {answer.ljust(76)} │"
    assert re.fullmatch(r"╰─+ elapsed \d+\.\d{3} seconds ─╯", lines[2])
    plain = run(ilab_standin, "model", "chat", "-qq", "What is 2+2?", "--model", MODEL,
                cwd=tmp_path, env={"ILAB_STANDIN_VERSION": "0.18.4"})  # fmt: skip
    assert plain.stdout == answer  # 0.18: plain text, no -nd needed (nor accepted)


def test_quick_question_that_looks_like_help_prints_help(ilab_standin: str, tmp_path: Path) -> None:
    proc = run(ilab_standin, *CHAT, "--quick-question", "--help", cwd=tmp_path)
    assert proc.returncode == 0
    assert proc.stdout.startswith("Usage: ilab model chat [OPTIONS] [QUESTION]...\n")
    assert "stand-in answer" not in proc.stdout


def test_chat_fail_mode(ilab_standin: str, tmp_path: Path) -> None:
    env = {"ILAB_STANDIN_MODE": "fail", "ILAB_STANDIN_FAIL_MESSAGE": "Is the server running?"}
    proc = run(ilab_standin, *CHAT, "-qq", "--", "hi", cwd=tmp_path, env=env)
    assert proc.returncode == 1
    assert proc.stdout == (  # 0.26 writes the colour codes itself, terminal or not
        "\x1b[31mExecuting chat failed with: API issue found while executing chat: "
        "Is the server running?\x1b[0m\n"
    )
