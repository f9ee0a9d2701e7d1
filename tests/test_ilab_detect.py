"""A worker finds its `ilab` at start-up: the version through the sandbox and runner, the
refusal on an unsupported or missing one, and where the version is reported."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from instruct_lab_bot.adapters.ilab_version import detect_ilab
from instruct_lab_bot.core.ilab import PROFILES, UnsupportedIlab, choose_release
from instruct_lab_bot.core.job_overview import build_overview
from instruct_lab_bot.core.job_view import ReadOptions
from instruct_lab_bot.core.pages.status_html import render_overview
from instruct_lab_bot.services.metrics import WorkerMetrics
from tests.fixtures.bot import make_settings

SANDBOX = os.environ.get("ILAB_BOT_SANDBOX", "bwrap")


def _printing(text: str, code: int = 0) -> tuple[str, ...]:
    """An `ilab` that prints `text` and exits with `code` (a Python one-liner, no shell)."""
    return (sys.executable, "-c", f"import sys; print({text!r}); sys.exit({code})")


async def test_the_stand_in_is_found_through_the_sandbox(tmp_path: Path, ilab_standin: str) -> None:
    settings = make_settings(work_dir=tmp_path, ilab_command=(ilab_standin,), sandbox=SANDBOX)
    release = await detect_ilab(settings)
    assert (str(release.version), release.profile, release.supported) == (
        "0.26.1",  # the stand-in's default release (ILAB_STANDIN_VERSION)
        PROFILES[-1],
        True,
    )


async def test_a_real_format_026_is_driven_with_its_profile(tmp_path: Path) -> None:
    command = _printing("ilab, version 0.26.1")
    release = await detect_ilab(make_settings(work_dir=tmp_path, ilab_command=command))
    assert release.profile is PROFILES[1]


async def test_an_unsupported_release_is_refused_unless_allowed(tmp_path: Path) -> None:
    settings = make_settings(work_dir=tmp_path, ilab_command=_printing("ilab, version 0.21.3"))
    with pytest.raises(UnsupportedIlab, match=r"ilab 0\.21\.3 is not a supported release.*0\.18"):
        await detect_ilab(settings)
    allowed = make_settings(
        work_dir=tmp_path, ilab_command=settings.ilab_command, ilab_allow_unsupported=True
    )
    release = await detect_ilab(allowed)
    assert (str(release.version), release.profile, release.supported) == (
        "0.21.3",
        PROFILES[0],
        False,
    )


async def test_a_missing_or_broken_ilab_is_refused_even_when_unsupported_ones_are_allowed(
    tmp_path: Path,
) -> None:
    missing = make_settings(
        work_dir=tmp_path,
        ilab_command=(str(tmp_path / "no-such-ilab"),),
        sandbox="off",
        ilab_allow_unsupported=True,
    )
    with pytest.raises(UnsupportedIlab, match=r"cannot run|No such file or directory"):
        await detect_ilab(missing)
    broken = make_settings(
        work_dir=tmp_path,
        ilab_command=_printing("ModuleNotFoundError: No module named 'torch'", 1),
        ilab_allow_unsupported=True,
    )
    with pytest.raises(UnsupportedIlab, match=r"did not report a version.*torch"):
        await detect_ilab(broken)


def test_choose_release_needs_a_zero_exit() -> None:
    with pytest.raises(UnsupportedIlab):
        choose_release("ilab, version 0.26.1", 2, allow_unsupported=True)
    assert choose_release("ilab, version 0.26.1", 0, allow_unsupported=False).supported


def test_the_version_shows_as_a_metric_label_and_on_the_status_page() -> None:
    metrics = WorkerMetrics()
    metrics.ilab_detected("0.26.1", "0.26")
    text = generate_latest(metrics.registry).decode()
    assert 'instruct_lab_bot_worker_info{ilab_version="0.26.1",profile="0.26"} 1.0' in text
    info = {"name": "w1", "host": "h", "version": "0.1.0", "ilab_version": "0.26.1"}
    overview = build_overview([], [info], ReadOptions(), now=0.0)
    assert overview.workers[0].ilab_version == "0.26.1"
    assert overview.workers[0].to_json()["ilab_version"] == "0.26.1"
    assert '<td data-label="ilab"><div>0.26.1</div></td>' in render_overview(overview)
