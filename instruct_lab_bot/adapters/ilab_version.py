"""Ask the worker's `ilab` its version (`ilab --version`), the way jobs run it: through the
sandbox and the runner, with an argv list, in a scratch folder removed afterwards."""

from __future__ import annotations

import tempfile
from pathlib import Path

from instruct_lab_bot.adapters.runner import RunLimits, run_streaming
from instruct_lab_bot.adapters.sandbox import ilab_command
from instruct_lab_bot.core.ilab import IlabRelease, UnsupportedIlab, choose_release
from instruct_lab_bot.core.settings import Settings

_TIMEOUT = 120.0  # importing ilab's CLI alone takes seconds on a loaded machine
_MAX_OUTPUT = 64 * 1024


async def detect_ilab(settings: Settings) -> IlabRelease:
    """The worker's ilab release and profile; UnsupportedIlab (saying why) when it has none."""
    lines: list[str] = []

    def collect(_stream: str, line: str) -> None:
        if sum(map(len, lines)) < _MAX_OUTPUT:
            lines.append(line)

    with tempfile.TemporaryDirectory(prefix="ilab-bot-version-") as scratch:
        root = Path(scratch)
        command = ilab_command(
            settings, [*settings.ilab_command, "--version"], workspace=root, cwd=root
        )
        try:
            result = await run_streaming(
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
