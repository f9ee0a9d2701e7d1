"""The webhook server's start-up imports: the idle server stays under its RSS target
(docs/benchmarks.md, < 80 MB) only while the heavy libraries that commands, workers and
optional backends use are imported where they are used, not when the server starts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: What `server` imports before it answers (services/server_processes.py `_serve`).
SERVER_IMPORTS = (
    "instruct_lab_bot.cli",
    "instruct_lab_bot.adapters.tracing",
    "instruct_lab_bot.services.server",
    "instruct_lab_bot.services.serving",
)

#: Tens of MB each, needed only by a worker, the kserve backend, S3 artifacts or `test`.
HEAVY = ("kubernetes_asyncio", "kfp", "rouge_score", "nltk", "numpy", "aioboto3", "boto3")


def test_the_server_starts_without_the_heavy_libraries() -> None:
    code = (
        "import importlib, json, sys\n"
        f"for name in {SERVER_IMPORTS!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(json.dumps(sorted(h for h in {HEAVY!r} if h in sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], check=True, cwd=ROOT, capture_output=True, text=True
    )
    assert json.loads(done.stdout.splitlines()[-1]) == []


def test_the_lazy_imports_still_load() -> None:
    """The deferred imports name modules that exist (a typo would only fail in production)."""
    from instruct_lab_bot.adapters.storage.s3 import S3Config, _client_config
    from instruct_lab_bot.core.model_test import similarity

    assert similarity("the cat sat", "the cat sat") == 1.0
    config = _client_config(S3Config("b", "", None, 3600))
    assert type(config).__name__ == "AioConfig"
