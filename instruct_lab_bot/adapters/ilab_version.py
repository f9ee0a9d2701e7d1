"""The worker's `ilab` at start-up: its version (`ilab --version`, run the way jobs run it:
through the sandbox and the runner, with an argv list, in a scratch folder removed
afterwards), and whether the admin gave it a configuration of its own."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

from instruct_lab_bot.adapters.runner import RunLimits
from instruct_lab_bot.adapters.sandbox import ilab_command, process_runner
from instruct_lab_bot.core.ilab import IlabRelease, UnsupportedIlab, choose_release
from instruct_lab_bot.core.sandbox import child_env
from instruct_lab_bot.core.settings import Settings

_TIMEOUT = 120.0  # importing ilab's CLI alone takes seconds on a loaded machine
_MAX_OUTPUT = 64 * 1024


async def detect_ilab(settings: Settings) -> IlabRelease:
    """The worker's ilab release and profile; UnsupportedIlab (saying why) when it has none."""
    lines: list[str] = []

    def collect(_stream: str, line: str) -> None:
        if sum(map(len, lines)) < _MAX_OUTPUT:
            lines.append(line)

    # Under the work dir: the ilab runner (ILAB_BOT_SANDBOX=runner) runs only in its jobs folder.
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ilab-bot-version-", dir=settings.work_dir) as scratch:
        root = Path(scratch)
        command = ilab_command(
            settings, [*settings.ilab_command, "--version"], workspace=root, cwd=root
        )
        try:
            result = await process_runner(settings)(
                command.argv,
                cwd=root,
                env=command.env,
                on_line=collect,
                limits=RunLimits(timeout=_TIMEOUT, kill_grace=settings.kill_grace),
            )
        except OSError as exc:
            raise UnsupportedIlab(
                f"cannot run `{settings.ilab_command[0]}` ({exc.strerror or exc}): install ilab "
                "or point ILAB_BOT_ILAB_COMMAND at it"
            ) from None
    code = result.exit_code if result.outcome == "exited" else None
    return choose_release("\n".join(lines), code, allow_unsupported=settings.ilab_allow_unsupported)


def admin_config(settings: Settings, environ: Mapping[str, str] | None = None) -> Path | None:
    """The config.yaml ilab would read in a job despite its fresh HOME: the one under an
    XDG_CONFIG_HOME the allow-list passes to ilab (docs/deploy.md), if it exists."""
    environ = os.environ if environ is None else environ
    passed = child_env(environ, settings.ilab_env, home=Path("/nonexistent"), path="")
    base = passed.get("XDG_CONFIG_HOME")
    config = Path(base) / "instructlab" / "config.yaml" if base else None
    return config if config is not None and config.is_file() else None


def find_ilab(command: tuple[str, ...]) -> str:
    """The path of the program `command` starts with; `RuntimeError` when there is none."""
    program = shutil.which(command[0])
    if program is None:
        raise RuntimeError(f"`{command[0]}` is not on PATH")
    return program
