"""The command lines the worker runs (pure): built from paths and settings, never PR text."""

from __future__ import annotations

from pathlib import Path

from instruct_lab_bot.core.settings import Settings


def generate_argv(settings: Settings, taxonomy: Path, base_ref: str, out_dir: Path) -> list[str]:
    """The `ilab data generate` argv. Only paths and configured args: no PR text ever."""
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
    ]
