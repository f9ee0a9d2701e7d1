"""`ILAB_BOT_REDIS_*`: the URL forms (one server, Sentinel, Cluster), TLS files and the replica
wait, parsed in the core and refused with a message that never shows a password."""

from __future__ import annotations

import pytest

from instruct_lab_bot.cli import load_settings
from instruct_lab_bot.core.redis_target import parse_redis_url
from instruct_lab_bot.core.settings import SettingsError
from tests.test_settings import BASE


def test_sentinel_and_cluster_urls() -> None:
    sentinel = parse_redis_url("rediss+sentinel://ilab-worker:p%40ss@s1:26379,[::1]:26380/main/2")
    assert (sentinel.kind, sentinel.service, sentinel.db, sentinel.tls) == (
        "sentinel",
        "main",
        2,
        True,
    )
    assert sentinel.nodes == (("s1", 26379), ("::1", 26380))
    assert (sentinel.username, sentinel.password) == ("ilab-worker", "p@ss")
    assert "p@ss" not in repr(sentinel)
    cluster = parse_redis_url("redis+cluster://n1:7000,n2:7001")
    assert (cluster.kind, cluster.nodes, cluster.tls) == (
        "cluster",
        (("n1", 7000), ("n2", 7001)),
        False,
    )
    assert cluster.username is None and cluster.password is None
    assert parse_redis_url("rediss://u:p@redis:6380/0").kind == "single"


@pytest.mark.parametrize(
    "url",
    [
        "redis+sentinel://u:hunter2-secret@s1:26379",  # no service
        "redis+sentinel://u:hunter2-secret@s1:26379/main/x",  # db not a number
        "redis+sentinel://u:hunter2-secret@s1/main",  # no port
        "redis+cluster://u:hunter2-secret@n1:7000/3",  # a Cluster has only db 0
        "redis+cluster://u:hunter2-secret@n1:70000",
        "memcached://u:hunter2-secret@n1:11211",
    ],
)
def test_bad_redis_urls_are_refused_without_the_password(url: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings({**BASE, "ILAB_BOT_REDIS_URL": url}, dotenv=None)
    assert "ILAB_BOT_REDIS_URL" in str(info.value)
    assert "hunter2-secret" not in str(info.value)


def test_tls_files_wait_and_their_combinations() -> None:
    settings = load_settings(
        {
            **BASE,
            "ILAB_BOT_REDIS_URL": "redis+sentinel://s1:26379,s2:26379/main",
            "ILAB_BOT_REDIS_CA_FILE": "/etc/ca.crt",
            "ILAB_BOT_REDIS_CERT_FILE": "/etc/w.crt",
            "ILAB_BOT_REDIS_KEY_FILE": "/etc/w.key",
            "ILAB_BOT_REDIS_WAIT_REPLICAS": "1",
            "ILAB_BOT_REDIS_WAIT_TIMEOUT": "2s",
        },
        dotenv=None,
    )
    assert (settings.redis_wait_replicas, settings.redis_wait_timeout) == (1, 2.0)
    assert settings.redis_key_file == "/etc/w.key"
    with pytest.raises(SettingsError) as info:
        load_settings(
            {
                **BASE,
                "ILAB_BOT_REDIS_URL": "redis+cluster://n1:7000",
                "ILAB_BOT_REDIS_WAIT_REPLICAS": "1",
                "ILAB_BOT_REDIS_CERT_FILE": "/etc/w.crt",
            },
            dotenv=None,
        )
    text = str(info.value)
    assert "ILAB_BOT_REDIS_WAIT_REPLICAS: not supported with a Cluster URL" in text
    assert "ILAB_BOT_REDIS_CERT_FILE and ILAB_BOT_REDIS_KEY_FILE: set both" in text


def test_the_password_of_a_sentinel_url_is_a_secret_to_redact() -> None:
    settings = load_settings(
        {**BASE, "ILAB_BOT_REDIS_URL": "redis+sentinel://u:hunter2-secret@s1:26379/main"},
        dotenv=None,
    )
    assert "hunter2-secret" in settings.secrets()
