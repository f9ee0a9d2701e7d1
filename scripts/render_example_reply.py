"""Writes docs/example-reply.md: the result reply rendered from real 0.26-shaped outputs
(tests/test_reply.py fails when the file and the renderer disagree)."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fixtures.example_reply import example_reply  # noqa: E402

HEADER = (
    "# Example result reply\n\n"
    "What the bot posts on a pull request after `generate` ran ilab 0.26.1 on one skill leaf,\n"
    "rendered by the bot's own code from outputs shaped exactly as ilab 0.26.1 writes them\n"
    "(`scripts/render_example_reply.py`; a test fails if this file drifts from the renderer).\n"
    "The `<script>` in a seed question shows that contributor text is escaped.\n\n"
    "---\n\n"
)


def render() -> str:
    with tempfile.TemporaryDirectory() as tmp:
        return HEADER + example_reply(Path(tmp))


if __name__ == "__main__":
    (ROOT / "docs" / "example-reply.md").write_text(render(), encoding="utf-8")
