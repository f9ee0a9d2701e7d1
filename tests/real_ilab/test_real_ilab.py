"""The bot's whole path with the real `ilab` (`make test-real-ilab`): signed webhook → server
→ Redis → worker → sandboxed real `ilab data generate` (a skill leaf, a knowledge leaf)
against a stand-in teacher → artifacts → reply; `precheck` through the real `ilab model
chat`. And the real output layout, compared with the one recorded in
tests/fixtures/ilab_layout/ (which `make test` holds the stand-in to).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import replace
from pathlib import Path

import pytest

from instruct_lab_bot.core.settings import Settings
from testkit.harness import run_bot
from testkit.ilab_layout import layout
from testkit.taxonomy import (
    KnowledgeSeed,
    checkout_pr,
    default_knowledge_seeds,
    default_skill_seeds,
    knowledge_qna,
    leaf_files,
    skill_qna,
)
from tests.fixtures.taxonomy import PR_SKILL_DIR, TaxonomyFactory
from tests.fixtures.world import World, publish_pull
from tests.real_ilab.conftest import DOCUMENT_URL, RealIlab

LAYOUTS = Path(__file__).resolve().parent.parent / "fixtures" / "ilab_layout"
KNOWLEDGE_DIR = "knowledge/science/astronomy/moon"
LINK = re.compile(r"\]\((http[^)\s]+)\)")


def knowledge_files(real: RealIlab) -> dict[str, str]:
    seeds: list[KnowledgeSeed] = default_knowledge_seeds()
    text = knowledge_qna(seeds, document_repo=DOCUMENT_URL, document_commit=real.docs_commit)
    return leaf_files(KNOWLEDGE_DIR, text)


def teacher_args(real: RealIlab) -> tuple[str, ...]:
    """The teacher flags a real run needs (the bot builds them from ILAB_BOT_TEACHER_*)."""
    return (
        "--pipeline",
        "simple",
        "--sdg-scale-factor",
        "2",
        "--endpoint-url",
        real.teacher.url,
        "--model",
        str(real.model),
        "--model-family",
        "mixtral",
    )


def real_settings(world: World, real: RealIlab, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The world's bot, running the real ilab: its env allow-listed into the sandbox, the
    XDG folders (config, logs, chat logs) writable there, the venv and temp files readable."""
    for name, value in real.env().items():
        monkeypatch.setenv(name, value)
    names = tuple(n for n in real.env() if n != "PATH")
    return replace(
        world.settings,
        ilab_command=(real.ilab,),
        teacher_model=str(real.model),
        teacher_model_family="mixtral",
        teacher_endpoint_url=real.teacher.url,
        generate_pipeline="simple",
        generate_args=("--sdg-scale-factor", "2"),
        precheck_args=("-m", str(real.model), "--endpoint-url", real.teacher.url),
        ilab_env=(*world.settings.ilab_env, *names),
        sandbox_writable=(*world.settings.sandbox_writable, real.xdg),
        sandbox_readable=(
            *world.settings.sandbox_readable,
            real.venv,
            real.model.parent,
            real.docs.cert.parent,
        ),
        sandbox_network="host",  # the teacher listens on 127.0.0.1
        job_timeout=600.0,
    )


async def test_real_layout_matches_the_recorded_one(
    real_ilab: RealIlab, taxonomy_remote: TaxonomyFactory, tmp_path: Path
) -> None:
    files = {
        **leaf_files(PR_SKILL_DIR, skill_qna(default_skill_seeds())),
        **knowledge_files(real_ilab),
    }
    taxonomy = checkout_pr(taxonomy_remote(pr_files=files), tmp_path / "taxonomy")
    out = tmp_path / "out"
    argv = ["data", "generate", "--taxonomy-path", str(taxonomy), "--taxonomy-base"]
    argv += ["origin/main", "--output-dir", str(out), *teacher_args(real_ilab)]
    proc = real_ilab.run(*argv, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    leaves = (
        "compositional_skills_extraction_units_conversion",
        "knowledge_science_astronomy_moon",
    )
    found = layout(out, leaves=leaves)
    fixture = LAYOUTS / f"{real_ilab.version}.json"
    if os.environ.get("ILAB_REAL_RECORD") == "1":
        fixture.parent.mkdir(parents=True, exist_ok=True)
        fixture.write_text(json.dumps(found, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        (LAYOUTS / f"{real_ilab.version}.console.txt").write_text(
            f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}\n", encoding="utf-8"
        )
    assert found == json.loads(fixture.read_text(encoding="utf-8"))


async def test_generate_skill_through_the_bot(
    world: World, real_ilab: RealIlab, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.settings = real_settings(world, real_ilab, monkeypatch)
    async with run_bot(world.settings) as bot:
        assert (await world.comment(bot))[0] == 202
        comment = await world.result_comment(timeout=600)
    body = comment["body"]
    assert world.check_run()["conclusion"] == "success", body
    assert re.search(r"\*\*\d+\*\* samples generated", body), body
    assert "stand-in question" in body  # the teacher's text reached the preview
    names = {u.split("?")[0].rsplit("/", 1)[-1] for u in LINK.findall(body)}
    assert any(n.startswith("skills_train_msgs_") for n in names), names


async def test_generate_knowledge_through_the_bot(
    world: World,
    real_ilab: RealIlab,
    taxonomy_remote: TaxonomyFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world.remote = taxonomy_remote(pr_files=knowledge_files(real_ilab), head_ref="add-moon")
    publish_pull(world.gh, world.remote)
    world.settings = real_settings(world, real_ilab, monkeypatch)
    async with run_bot(world.settings) as bot:
        assert (await world.comment(bot))[0] == 202
        comment = await world.result_comment(timeout=600)
    body = comment["body"]
    assert world.check_run()["conclusion"] == "success", body
    names = {u.split("?")[0].rsplit("/", 1)[-1] for u in LINK.findall(body)}
    assert any(n.startswith("knowledge_train_msgs_") for n in names), names


async def test_precheck_through_real_chat(
    world: World, real_ilab: RealIlab, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.settings = real_settings(world, real_ilab, monkeypatch)
    async with run_bot(world.settings) as bot:
        assert (await world.comment(bot, f"@{world.settings.username} precheck"))[0] == 202
        comment = await world.result_comment(timeout=600)
    body = comment["body"]
    (run,) = world.gh.check_runs("instructlab", "taxonomy", name="instruct-lab-bot/precheck")
    assert run["conclusion"] == "success", body
    answers = body.count("The stand-in teacher's answer to:")
    assert answers == len(default_skill_seeds()), body
    assert "╭" not in body and "\x1b[" not in body  # -nd: no box, no colour codes


async def test_real_failure_line_is_what_the_standin_prints(
    real_ilab: RealIlab, taxonomy_remote: TaxonomyFactory, tmp_path: Path
) -> None:
    """A teacher answering 500: ilab exits 1 and prints its reason on stdout right after
    the unfinished progress bar, on the same line, then redraws the bar
    (tests/test_fake_ilab.py::test_fail_mode holds the stand-in to this shape)."""
    taxonomy = checkout_pr(taxonomy_remote(), tmp_path / "taxonomy")
    argv = ["data", "generate", "--taxonomy-path", str(taxonomy), "--taxonomy-base"]
    argv += ["origin/main", "--output-dir", str(tmp_path / "out"), *teacher_args(real_ilab)]
    real_ilab.teacher.state.fail_status = 500
    try:
        proc = real_ilab.run(*argv, cwd=tmp_path)
    finally:
        real_ilab.teacher.state.fail_status = None
    assert proc.returncode == 1, proc.stdout[-2000:]
    (line,) = [line for line in proc.stdout.splitlines() if "failed to generate" in line]
    pattern = (
        r".+ Prompt Generation: .+\]failed to generate data with exception: .*Error code: 500.*"
    )
    assert re.fullmatch(pattern, line), proc.stdout[-2000:]
    if os.environ.get("ILAB_REAL_RECORD") == "1":
        (LAYOUTS / f"{real_ilab.version}.failure.txt").write_text(
            f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}\n", encoding="utf-8"
        )
