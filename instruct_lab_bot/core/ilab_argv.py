"""The command lines the worker runs (pure): built from paths and settings, never PR text."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from instruct_lab_bot.core.settings import Settings


def generate_argv(
    settings: Settings,
    taxonomy: Path,
    base_ref: str,
    out_dir: Path,
    repo_args: Sequence[str] = (),
) -> list[str]:
    """The `ilab data generate` argv. Only paths and configured args: no PR text ever.

    `repo_args` (the repository's configuration, within the admin's bounds) come last, so
    they win over `ILAB_BOT_GENERATE_ARGS` for the same flag."""
    return [
        *settings.ilab_command,
        "data",
        "generate",
        "--taxonomy-path",
        str(taxonomy),
        "--taxonomy-base",
        base_ref,
        "--output-dir",
        str(out_dir),
        *settings.generate_args,
        *repo_args,
    ]
