"""`deploy/compose.yaml`, the one-host stack: its wiring, checked without a container engine
(CI has none): the four services, Redis persistence, loopback-only ports, pinned images, and
only settings the bot knows."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "deploy" / "compose.yaml"


def services() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE.read_text())
    return dict(document["services"])


def test_the_stack_has_redis_minio_server_and_worker() -> None:
    found = services()
    assert {"redis", "minio", "minio-init", "server", "worker"} <= set(found)
    assert found["server"]["command"] == ["server"]
    assert found["worker"]["command"][0] == "worker"
    assert "--appendonly yes" in found["redis"]["command"]  # doctor fails without persistence


def test_ports_are_loopback_and_images_pinned() -> None:
    for name, service in services().items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), (name, port)
        image = service.get("image", "")
        assert image.startswith("localhost/") or re.search(r":[\w.-]+$", image), (name, image)
        assert not image.endswith(":latest"), (name, image)


def test_only_known_settings_are_set() -> None:
    known = set(
        re.findall(r"^(?:# )?(ILAB_BOT_[A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M)
    )
    for name, service in services().items():
        names = {k for k in service.get("environment", {}) if k.startswith("ILAB_BOT_")}
        assert names <= known, (name, names - known)
