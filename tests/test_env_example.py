"""`.env.example`: generated from the README's settings table, complete, and its defaults true.

Complete means every variable `core/settings.py` reads (the `FIELDS` table of
`core/settings_fields.py` and the ones read by name, such as the App's key and the webhook
secret); true means each commented default, set explicitly, gives the same value as leaving it
unset.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from instruct_lab_bot.core import settings as settings_module
from instruct_lab_bot.core.settings import PREFIX, Settings, parse_settings
from instruct_lab_bot.core.settings_fields import FIELDS
from tests.fixtures.bot import WEBHOOK_SECRET

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / ".env.example"
REQUIRED = {"ILAB_BOT_GITHUB_APP_ID": "1", "ILAB_BOT_WEBHOOK_SECRET": WEBHOOK_SECRET}


def documented() -> dict[str, str]:
    """Each variable of `.env.example` and the value its line shows."""
    found = re.findall(r"^(?:# )?(ILAB_BOT_[A-Z0-9_]+)=(.*)$", EXAMPLE.read_text(), re.M)
    return dict(found)


def test_env_example_is_generated_from_the_readme() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts/gen_env_example.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, "run `python scripts/gen_env_example.py`:\n" + done.stdout


def test_every_setting_the_parser_reads_is_in_env_example() -> None:
    source = Path(settings_module.__file__).read_text()
    by_name = set(re.findall(r'PREFIX \+ "([A-Z0-9_]+)"', source))
    by_name |= set(re.findall(r"\{PREFIX\}([A-Z0-9_]+)", source))
    read = {PREFIX + name for name, _, _ in FIELDS} | {PREFIX + n for n in by_name}
    missing = sorted(read - set(documented()))
    assert missing == [], f"add these to the README's settings table, then regenerate: {missing}"


def test_each_shown_default_is_the_real_default() -> None:
    fields = {PREFIX + name: attr for name, attr, _ in FIELDS}
    baseline = parse_settings(REQUIRED, require_github=False)
    checked = 0
    for name, value in documented().items():
        if not value or name not in fields:
            continue
        explicit = parse_settings({**REQUIRED, name: value}, require_github=False)
        attr = fields[name]
        assert getattr(explicit, attr) == getattr(baseline, attr) == getattr(Settings(), attr), name
        checked += 1
    assert checked >= 40
