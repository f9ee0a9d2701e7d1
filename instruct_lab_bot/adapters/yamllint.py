"""yamllint, the taxonomy CI's YAML linter, as its own program.

yamllint is GPL-3.0, so like instructlab-schema the bot runs it as a subprocess and never
imports it into this Apache-2.0 process. The core parses its output (`parse_parsable`).
"""

import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from instructlab.schema.taxonomy import DEFAULT_YAMLLINT_CONFIG

from instruct_lab_bot.core.validation.lint import (
    LintFinding,
    parse_parsable,
    parse_parsable_files,
)

YAMLLINT_TIMEOUT = 30.0
YAMLLINT = (sys.executable, "-m", "yamllint", "-f", "parsable", "-d", DEFAULT_YAMLLINT_CONFIG)


def run_yamllint(text: str) -> list[LintFinding]:
    """yamllint's findings for `text` with the taxonomy's configuration; argv only, text on
    stdin. No findings when yamllint cannot run or times out."""
    done = _yamllint(["-"], text.encode("utf-8", errors="surrogatepass"))
    return parse_parsable(done) if done is not None else []


def run_yamllint_many(texts: Sequence[str]) -> list[list[LintFinding]] | None:
    """yamllint's findings for each of `texts`, from one yamllint process (one interpreter
    start instead of one per text): each text is a file of a private temporary folder.
    None when yamllint cannot run or times out (callers lint the texts one by one)."""
    with tempfile.TemporaryDirectory(prefix="ilab-bot-lint-") as folder:
        names = []
        for number, text in enumerate(texts):
            path = Path(folder, f"{number}.yaml")
            path.write_bytes(text.encode("utf-8", errors="surrogatepass"))
            names.append(str(path))
        done = _yamllint(names, None)
    if done is None:
        return None
    found = parse_parsable_files(done)
    return [found.get(name, []) for name in names]


def _yamllint(inputs: list[str], stdin: bytes | None) -> str | None:
    """yamllint's parsable output for `inputs` (file names, or "-" with `stdin`)."""
    try:
        done = subprocess.run(
            [*YAMLLINT, *inputs],
            input=stdin,
            capture_output=True,
            timeout=YAMLLINT_TIMEOUT,
            check=False,
            env={"PATH": os.environ.get("PATH", ""), "LANG": "C.UTF-8"},
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.decode("utf-8", errors="replace")
