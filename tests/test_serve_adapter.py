"""`adapters/ilab_serve.py` on the stand-in's `ilab model serve`, in the real sandbox: ready
only once `/v1/models` answers, an exit 0 that served nothing is a failure, a server that never
answers is given up on, and every process is gone afterwards."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from instruct_lab_bot.adapters.ilab_serve import IlabServer, ServeFailed, ask_model, free_port
from instruct_lab_bot.core.ilab import IlabProfile, nearest_profile, serve_argv
from instruct_lab_bot.core.ilab.versions import IlabVersion
from instruct_lab_bot.core.settings import Settings
from testkit.ilab_model import write_hf_model
from testkit.ilab_profiles import DEFAULT_VERSION as STANDIN_VERSION
from tests.fixtures.bot import make_settings, processes_with_env


@pytest.fixture
def tag(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Carried by every process of these runs (ILAB_STANDIN_* passes the sandbox)."""
    value = uuid.uuid4().hex
    monkeypatch.setenv("ILAB_STANDIN_TAG", value)
    yield value
    assert processes_with_env(f"ILAB_STANDIN_TAG={value}") == []


def _profile(version: str) -> IlabProfile:
    major, minor, patch = (int(n) for n in version.split("."))
    return nearest_profile(IlabVersion(major, minor, patch))


def _server(settings: Settings, tmp_path: Path, model: Path) -> IlabServer:
    port = free_port()
    profile = _profile(STANDIN_VERSION)
    run = serve_argv(profile, settings.ilab_command, model, "127.0.0.1", port, tmp_path)
    return IlabServer(settings, run.argv, port=port, workspace=tmp_path, cwd=tmp_path)


@pytest.fixture
def settings(ilab_standin: str, tmp_path: Path) -> Settings:
    return make_settings(
        ilab_command=(ilab_standin,),
        sandbox_readable=(
            *make_settings().sandbox_readable,
            tmp_path / "models",
        ),
    )


@pytest.fixture
def never_ready_server(
    settings: Settings, tmp_path: Path, tag: str, monkeypatch: pytest.MonkeyPatch
) -> IlabServer:
    """A model server (the stand-in) that starts but never answers."""
    monkeypatch.setenv("ILAB_STANDIN_SERVE_MODE", "never-ready")
    return _server(settings, tmp_path, write_hf_model(tmp_path / "models" / "m"))


async def test_a_served_model_answers_and_is_stopped(
    settings: Settings, tmp_path: Path, tag: str
) -> None:
    model = write_hf_model(tmp_path / "models" / "m", [("What is two and two?", "Four.")])
    server = _server(settings, tmp_path, model)
    async with aiohttp.ClientSession() as session, server:
        models = await server.start(session, ready_within=60, cancel=None)
        assert models == [str(model)]
        answer = await ask_model(session, server.url, models[0], "What is two and two?", within=30)
        assert answer == "Four."
        running_inside = server.running
    assert running_inside and not server.running
    result = await server.stop()  # twice is fine
    assert result is not None and result.outcome == "cancelled"


async def test_0_18_gets_its_port_from_the_config_file_it_is_given(
    settings: Settings, tmp_path: Path, tag: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ILAB_STANDIN_VERSION", "0.18.4")
    model = write_hf_model(tmp_path / "models" / "m", [("Who wrote it?", "Nobody.")])
    port = free_port()
    run = serve_argv(_profile("0.18.4"), settings.ilab_command, model, "127.0.0.1", port, tmp_path)
    assert run.config_file is not None
    server = await IlabServer.from_run(settings, run, port=port, workspace=tmp_path, cwd=tmp_path)
    async with aiohttp.ClientSession() as session, server:
        (model_id,) = await server.start(session, ready_within=60, cancel=None)
        assert await ask_model(session, server.url, model_id, "Who wrote it?", within=30) == (
            "Nobody."
        )


async def test_a_server_that_exits_0_without_serving_is_a_failure(
    settings: Settings, tmp_path: Path, tag: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ILAB_STANDIN_SERVE_MODE", "fail")
    model = write_hf_model(tmp_path / "models" / "m")
    server = _server(settings, tmp_path, model)
    async with aiohttp.ClientSession() as session, server:
        with pytest.raises(ServeFailed, match=r"stopped before it answered \(exit code 0"):
            await server.start(session, ready_within=60, cancel=None)


async def test_a_server_that_never_answers_is_given_up_and_stopped(
    never_ready_server: IlabServer,
) -> None:
    server = never_ready_server
    async with aiohttp.ClientSession() as session:
        with pytest.raises(ServeFailed, match="did not answer within 1 s"):
            await server.start(session, ready_within=1, cancel=None)
    assert not server.running


async def test_a_cancel_stops_the_wait(never_ready_server: IlabServer) -> None:
    server = never_ready_server
    cancel = asyncio.Event()
    cancel.set()
    async with aiohttp.ClientSession() as session:
        with pytest.raises(ServeFailed, match="cancelled"):
            await server.start(session, ready_within=600, cancel=cancel)
    assert not server.running


async def test_a_start_cancelled_from_outside_stops_the_server(
    never_ready_server: IlabServer,
) -> None:
    """The guard is the adapter's: a caller keeping the server (the `local` backend) has none."""
    server = never_ready_server
    polled = asyncio.Event()

    async def on_request(*_: object) -> None:
        polled.set()

    tracing = aiohttp.TraceConfig()
    tracing.on_request_start.append(on_request)
    async with aiohttp.ClientSession(trace_configs=[tracing]) as session:
        starting = asyncio.create_task(server.start(session, ready_within=600, cancel=None))
        await polled.wait()  # it is waiting for the server to answer
        starting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await starting
    assert not server.running
