"""The ilab version profiles: version parsing, profile choice, and the argvs per profile."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from instruct_lab_bot.core.ilab import (
    CHAT_ENV,
    PROFILES,
    IlabRelease,
    IlabVersion,
    bot_argvs,
    chat_argv,
    config_init_argv,
    generate_run,
    last_value,
    nearest_profile,
    parse_ilab_version,
    profile_for,
)
from instruct_lab_bot.core.settings import SettingsError, parse_settings
from tests.fixtures.bot import make_settings

V018, V026 = PROFILES


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ilab, version 0.26.1\n", IlabVersion(0, 26, 1)),
        ("ilab, version 0.18.4", IlabVersion(0, 18, 4)),
        ("ilab, version 0.27.0rc1", IlabVersion(0, 27, 0)),
        ("ilab, version 0.26.1.dev4+g1234", IlabVersion(0, 26, 1)),
        ("WARNING something\nilab, version 1.2\n", IlabVersion(1, 2, 0)),
        ("", None),
        ("Usage: ilab [OPTIONS]\nError: No such option: --version", None),
    ],
)
def test_parse_ilab_version(text: str, expected: IlabVersion | None) -> None:
    assert parse_ilab_version(text) == expected


def test_profile_per_line_and_none_for_unsupported() -> None:
    assert profile_for(IlabVersion(0, 18, 0)) is V018
    assert profile_for(IlabVersion(0, 18, 9)) is V018
    assert profile_for(IlabVersion(0, 26, 1)) is V026
    assert profile_for(IlabVersion(0, 17, 3)) is None
    assert profile_for(IlabVersion(0, 21, 0)) is None
    assert profile_for(IlabVersion(1, 0, 0)) is None


def test_nearest_profile_for_an_allowed_unsupported_release() -> None:
    assert nearest_profile(IlabVersion(0, 21, 2)) is V018
    assert nearest_profile(IlabVersion(0, 30, 0)) is V026
    assert nearest_profile(IlabVersion(0, 17, 0)) is V018


def test_tested_release() -> None:
    assert str(IlabRelease.tested(V026).version) == "0.26.1"
    assert IlabRelease.tested(V018).profile is V018


def test_generate_passes_the_teacher_and_the_profiles_pipeline(tmp_path: Path) -> None:
    settings = make_settings(
        ilab_command=("ilab", "-v"),
        generate_args=("--num-cpus", "4"),
        teacher_model="granite-teacher",
        teacher_model_family="mixtral",
        teacher_endpoint_url="http://teacher:8000/v1",
    )
    run = generate_run(V026, settings, tmp_path / "tax", "origin/main", tmp_path / "out")
    assert run.argv == [
        *("ilab", "-v", "data", "generate"),
        *("--taxonomy-path", str(tmp_path / "tax"), "--taxonomy-base", "origin/main"),
        *("--output-dir", str(tmp_path / "out")),
        *("--model", "granite-teacher", "--model-family", "mixtral"),
        *("--endpoint-url", "http://teacher:8000/v1", "--pipeline", "full"),
        *("--num-cpus", "4"),
    ]
    assert (run.teacher_model, run.pipeline) == ("granite-teacher", "full")
    bare = generate_run(V018, make_settings(), tmp_path / "t", "main", tmp_path / "o")
    assert "--model" not in bare.argv and "--endpoint-url" not in bare.argv
    assert (bare.teacher_model, bare.pipeline) == ("", "simple")
    assert bare.argv[-2:] == ["--pipeline", "simple"]


def test_free_form_generate_args_win_and_are_reported(tmp_path: Path) -> None:
    settings = make_settings(
        generate_pipeline="simple",
        generate_args=("--pipeline=full", "--model", "other"),
    )
    run = generate_run(V018, settings, tmp_path, "main", tmp_path / "o")
    assert (run.teacher_model, run.pipeline) == ("other", "full")


def test_last_value_stops_at_double_dash() -> None:
    assert last_value(["--model", "a", "--model=b"], "--model") == "b"
    assert last_value(["--model", "a", "--", "--model", "c"], "--model") == "a"
    assert last_value(["--model"], "--model") is None
    assert last_value(["--models", "x"], "--model") is None


def test_chat_is_plain_text_per_profile() -> None:
    settings = make_settings(precheck_args=("--endpoint-url", "http://m:8000/v1"))
    assert chat_argv(V018, settings, "--help") == [
        *("ilab", "model", "chat", "--endpoint-url", "http://m:8000/v1"),
        *("-qq", "--", "--help"),
    ]
    assert chat_argv(V026, settings, "Why?")[-4:] == ["-qq", "--no-decoration", "--", "Why?"]
    assert int(CHAT_ENV["COLUMNS"]) >= 1000


def test_config_init_never_prompts() -> None:
    argv = config_init_argv(make_settings(ilab_command=("ilab",)), Path("/t"))
    assert argv == ["ilab", "config", "init", "--non-interactive", "--taxonomy-path", "/t"]


def test_bot_argvs_match_what_the_builders_build(tmp_path: Path) -> None:
    """The contract check's list is the builders' output, not a copy that could drift."""
    settings = replace(make_settings(), ilab_command=("ilab",))
    for profile in PROFILES:
        listed = {(b.command, b.args) for b in bot_argvs(profile)}
        chat = chat_argv(profile, settings, "--help")
        assert (tuple(chat[1:3]), tuple(chat[3:])) in listed
        run = generate_run(
            profile, settings, Path("/work/job/taxonomy"), "origin/main", Path("/work/job/out")
        )
        assert (tuple(run.argv[1:3]), tuple(run.argv[3:])) in listed
        init = config_init_argv(settings, Path("/work/job/taxonomy"))
        assert (tuple(init[1:3]), tuple(init[3:])) in listed
        for listed_argv in bot_argvs(profile):
            used = {u.flag for u in listed_argv.uses}
            assert used <= set(listed_argv.args), listed_argv


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ILAB_BOT_TEACHER_MODEL", "--help"),
        ("ILAB_BOT_TEACHER_MODEL", "two words"),
        ("ILAB_BOT_TEACHER_MODEL_FAMILY", "-x"),
        ("ILAB_BOT_TEACHER_ENDPOINT_URL", "ftp://teacher/v1"),
        ("ILAB_BOT_GENERATE_PIPELINE", "full\nsimple"),
        ("ILAB_BOT_ILAB_ALLOW_UNSUPPORTED", "maybe"),
    ],
)
def test_teacher_settings_refuse_what_would_not_be_one_value(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        parse_settings({name: value, "ILAB_BOT_WEBHOOK_SECRET": "x" * 32}, require_github=False)


def test_teacher_settings_parse() -> None:
    env = {
        "ILAB_BOT_WEBHOOK_SECRET": "x" * 32,
        "ILAB_BOT_TEACHER_MODEL": "/models/mixtral-8x7b",
        "ILAB_BOT_TEACHER_MODEL_FAMILY": "mixtral",
        "ILAB_BOT_TEACHER_ENDPOINT_URL": "http://teacher.models.svc:8000/v1/",
        "ILAB_BOT_GENERATE_PIPELINE": "simple",
        "ILAB_BOT_ILAB_ALLOW_UNSUPPORTED": "true",
    }
    settings = parse_settings(env, require_github=False)
    assert settings.teacher_model == "/models/mixtral-8x7b"
    assert settings.teacher_endpoint_url == "http://teacher.models.svc:8000/v1"
    assert (settings.generate_pipeline, settings.ilab_allow_unsupported) == ("simple", True)
