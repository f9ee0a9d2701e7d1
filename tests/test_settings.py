from pathlib import Path

import pytest

from instruct_lab_bot.cli import load_settings
from instruct_lab_bot.core.settings import SettingsError

PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----\n"
BASE = {
    "ILAB_BOT_GITHUB_APP_ID": "123",
    "ILAB_BOT_GITHUB_PRIVATE_KEY": PEM,
    "ILAB_BOT_WEBHOOK_SECRET": "s3cret-value-0123456789abcdef01234",
}


def test_defaults() -> None:
    settings = load_settings(BASE, dotenv=None)
    assert settings.github_api_url == "https://api.github.com"
    assert settings.ilab_command == ("ilab",)
    assert settings.job_timeout == 7200
    assert settings.progress_interval == 30
    assert settings.link_expiry == 7 * 86400
    assert (settings.host, settings.port) == ("0.0.0.0", 8080)  # noqa: S104


def test_every_problem_is_reported_at_once_without_secrets() -> None:
    env = {
        "ILAB_BOT_WEBHOOK_SECRET": "",
        "ILAB_BOT_PORT": "99999",
        "ILAB_BOT_JOB_TIMEOUT": "soon",
        "ILAB_BOT_ARTIFACTS_URL": "http://nope",
        "ILAB_BOT_GITHUB_PRIVATE_KEY": "not a key",
    }
    with pytest.raises(SettingsError) as info:
        load_settings(env, dotenv=None)
    text = str(info.value)
    for name in (
        "WEBHOOK_SECRET",
        "PORT",
        "JOB_TIMEOUT",
        "ARTIFACTS_URL",
        "GITHUB_APP_ID",
        "GITHUB_PRIVATE_KEY",
    ):
        assert f"ILAB_BOT_{name}" in text
    assert "not a key" not in text


def test_parsing(tmp_path: Path) -> None:
    key = tmp_path / "key.pem"
    key.write_text(PEM)
    env = {k: v for k, v in BASE.items() if k != "ILAB_BOT_GITHUB_PRIVATE_KEY"}
    env |= {
        "ILAB_BOT_GITHUB_PRIVATE_KEY_FILE": str(key),
        "ILAB_BOT_ILAB_COMMAND": "/opt/ilab/bin/ilab --config '/etc/ilab conf.yaml'",
        "ILAB_BOT_GENERATE_ARGS": "--pipeline simple --endpoint-url http://teacher:8000/v1",
        "ILAB_BOT_JOB_TIMEOUT": "90m",
        "ILAB_BOT_PROGRESS_INTERVAL": "1",
        "ILAB_BOT_GITHUB_GIT_URL": "file:///srv/mirrors",
    }
    settings = load_settings(env, dotenv=None)
    assert settings.ilab_command == ("/opt/ilab/bin/ilab", "--config", "/etc/ilab conf.yaml")
    assert settings.generate_args[:2] == ("--pipeline", "simple")
    assert settings.job_timeout == 5400 and settings.progress_interval == 1
    assert settings.github_private_key.value == PEM
    assert PEM not in repr(settings) and "s3cret-value" not in repr(settings)


def test_dotenv_is_read_and_environment_wins(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("ILAB_BOT_USERNAME=from-dotenv\nILAB_BOT_PORT=9000\n")
    settings = load_settings({**BASE, "ILAB_BOT_PORT": "9100"}, dotenv=dotenv)
    assert settings.username == "from-dotenv" and settings.port == 9100


def test_log_limit_and_link_signing_key() -> None:
    settings = load_settings(BASE, dotenv=None)
    assert settings.log_limit == 20 * 1024 * 1024 and not settings.link_signing_key
    key = "ab" * 32
    env = {**BASE, "ILAB_BOT_LOG_LIMIT": "512k", "ILAB_BOT_LINK_SIGNING_KEY": key}
    settings = load_settings(env, dotenv=None)
    assert settings.log_limit == 512 * 1024
    assert settings.link_signing_key.value == key and key not in repr(settings)
    assert load_settings({**BASE, "ILAB_BOT_LOG_LIMIT": "20M"}, dotenv=None).log_limit == 20 << 20
    for bad in ("1k", "lots", "-5"):
        with pytest.raises(SettingsError) as info:
            load_settings({**BASE, "ILAB_BOT_LOG_LIMIT": bad}, dotenv=None)
        assert "ILAB_BOT_LOG_LIMIT" in str(info.value)


def test_webhook_secret_minimum_length_never_echoes_the_value() -> None:
    with pytest.raises(SettingsError) as info:
        load_settings({**BASE, "ILAB_BOT_WEBHOOK_SECRET": "short-but-secret"}, dotenv=None)
    assert "at least 32 characters" in str(info.value)
    assert "short-but-secret" not in str(info.value)


def test_legacy_usernames_default_list_and_off() -> None:
    assert load_settings(BASE, dotenv=None).legacy_usernames == ("instruct-lab-bot",)
    for off in ("", "none", " "):
        env = {**BASE, "ILAB_BOT_LEGACY_USERNAMES": off}
        assert load_settings(env, dotenv=None).legacy_usernames == ()
    env = {**BASE, "ILAB_BOT_LEGACY_USERNAMES": "old-bot, older-bot[bot]"}
    assert load_settings(env, dotenv=None).legacy_usernames == ("old-bot", "older-bot")
    with pytest.raises(SettingsError, match="LEGACY_USERNAMES"):
        load_settings({**BASE, "ILAB_BOT_LEGACY_USERNAMES": "not a login"}, dotenv=None)
