"""The preflight checks' verdicts (pure): what each finding means and how it is reported.

The services gather the facts (a key parsed or not, what Redis says about itself, …); this
module decides ok/FAIL, whether a failure must stop a process at start-up (`fatal`: a
configuration that waiting cannot fix, such as a key that does not parse) and the wording.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from instruct_lab_bot.core.messages import doctor as text
from instruct_lab_bot.core.setting_values import MIN_WEBHOOK_SECRET

MIN_REDIS = (6, 2)


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    fatal: bool = False  # stops a server or worker at start-up

    def line(self) -> str:
        return text.check_line(self.ok, self.name, self.detail, self.fix)


def passed(name: str, detail: str) -> CheckResult:
    return CheckResult(name, True, detail)


def failed(name: str, detail: str, fix: str, *, fatal: bool = False) -> CheckResult:
    return CheckResult(name, False, detail, fix, fatal)


def webhook_secret(secret: str) -> CheckResult:
    if len(secret) < MIN_WEBHOOK_SECRET:
        detail = f"{len(secret)} characters, fewer than {MIN_WEBHOOK_SECRET}"
        return failed("webhook secret", detail, text.FIX_SECRET, fatal=True)
    return passed("webhook secret", f"{len(secret)} characters")


def redis_version(version: str) -> CheckResult:
    parts = tuple(int(p) for p in version.split(".")[:2] if p.isdigit())
    if parts < MIN_REDIS:
        return failed("redis version", version or "unknown", text.FIX_REDIS_VERSION, fatal=True)
    return passed("redis version", version)


def redis_persistence(appendonly: str | None, save: str | None) -> CheckResult:
    """None: CONFIG is not allowed (managed Redis), which is reported, not failed."""
    if appendonly is None and save is None:
        return passed("redis persistence", "not visible (CONFIG disabled): the provider's")
    modes = []
    if appendonly == "yes":
        modes.append("appendonly")
    if save:
        modes.append(f"snapshots ({save})")
    if not modes:
        return failed(
            "redis persistence", "off (no appendonly, no save)", text.FIX_REDIS_PERSISTENCE
        )
    return passed("redis persistence", ", ".join(modes))


def report(results: Sequence[CheckResult]) -> tuple[str, bool]:
    """The lines to print and whether everything passed."""
    failures = sum(not r.ok for r in results)
    lines = [r.line() for r in results] + [text.summary(failures, len(results))]
    return "\n".join(lines), failures == 0
