"""yamllint, the taxonomy CI's YAML linter, as its own program.

yamllint is GPL-3.0, so like instructlab-schema the bot runs it as a subprocess and never
imports it into this Apache-2.0 process. The core parses its output (`parse_parsable`).
"""

import os
import subprocess
import sys

from instructlab.schema.taxonomy import DEFAULT_YAMLLINT_CONFIG

from instruct_lab_bot.core.validation.lint import LintFinding, parse_parsable

YAMLLINT_TIMEOUT = 30.0


def run_yamllint(text: str) -> list[LintFinding]:
    """yamllint's findings for `text` with the taxonomy's configuration; argv only, text on
    stdin. No findings when yamllint cannot run or times out."""
    try:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "yamllint",
                "-f",
                "parsable",
                "-d",
                DEFAULT_YAMLLINT_CONFIG,
                "-",
            ],
            input=text.encode("utf-8", errors="surrogatepass"),
            capture_output=True,
            timeout=YAMLLINT_TIMEOUT,
            check=False,
            env={"PATH": os.environ.get("PATH", ""), "LANG": "C.UTF-8"},
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    return parse_parsable(done.stdout.decode("utf-8", errors="replace"))
