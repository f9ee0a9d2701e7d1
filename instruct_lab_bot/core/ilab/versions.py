"""Which `ilab` releases the bot drives, and how each line differs (pure).

A profile holds, for one supported release line, the facts the bot's command lines and its
reading of the outputs depend on. The worker picks one from `ilab --version` at start-up
(`profile_for`); an unsupported release gets none, unless the admin allows it
(`nearest_profile`). Verified against the real packages by `make ilab-contract`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

__all__ = [
    "PROFILES",
    "IlabProfile",
    "IlabRelease",
    "IlabVersion",
    "UnsupportedIlab",
    "choose_release",
    "nearest_profile",
    "parse_ilab_version",
    "profile_for",
]

# click's `version_option`: "ilab, version 0.26.1" (pre-releases: "0.27.0rc1", "0.26.1.dev4").
_VERSION = re.compile(r"\bversion\s+v?(\d+)\.(\d+)(?:\.(\d+))?\S*", re.IGNORECASE)


class IlabVersion(NamedTuple):
    major: int
    minor: int
    patch: int = 0

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


@dataclass(frozen=True)
class IlabProfile:
    """One supported release line (`0.18`, `0.26`): what differs between lines for the bot."""

    line: IlabVersion  # major.minor of the line (patch 0)
    tested: str  # the release the contract check and the tests install
    default_pipeline: str  # `data generate --pipeline` when the admin names none
    chat_plain_flags: tuple[str, ...]  # what makes `model chat -qq` print bare text
    dated_output: bool  # `data generate` writes into `<output-dir>/<YYYY-MM-DD_HHMMSS>/`
    serve_address_flags: bool  # `model serve -h/--host -p/--port` (0.18: config serve.host_port)
    train_pipelines: tuple[str, ...]  # `model train --pipeline` choices (0.18: none, --legacy)

    @property
    def name(self) -> str:
        return f"{self.line.major}.{self.line.minor}"


PROFILES: tuple[IlabProfile, ...] = (
    IlabProfile(
        line=IlabVersion(0, 18),
        tested="0.18.4",
        default_pipeline="simple",
        chat_plain_flags=(),  # -qq prints plain text; 0.18 has no --no-decoration
        dated_output=False,
        serve_address_flags=False,
        train_pipelines=(),
    ),
    IlabProfile(
        line=IlabVersion(0, 26),
        tested="0.26.1",
        default_pipeline="full",
        chat_plain_flags=("--no-decoration",),  # else -qq draws a box around the answer
        dated_output=True,
        serve_address_flags=True,
        train_pipelines=("simple", "full", "accelerated"),
    ),
)


def parse_ilab_version(text: str) -> IlabVersion | None:
    """The version in `ilab --version`'s output, None when there is none."""
    found = _VERSION.search(text)
    if found is None:
        return None
    major, minor, patch = found.groups()
    return IlabVersion(int(major), int(minor), int(patch or 0))


def profile_for(version: IlabVersion) -> IlabProfile | None:
    """The profile of `version`'s line (same major.minor); None when the line is unsupported."""
    return next((p for p in PROFILES if p.line[:2] == version[:2]), None)


def nearest_profile(version: IlabVersion) -> IlabProfile:
    """The newest profile not newer than `version` (the oldest for anything older): what an
    admin who allowed an unsupported release gets."""
    older = [p for p in PROFILES if p.line[:2] <= version[:2]]
    return older[-1] if older else PROFILES[0]


@dataclass(frozen=True)
class IlabRelease:
    """The `ilab` a worker found at start-up, and the profile it drives it with."""

    version: IlabVersion
    profile: IlabProfile
    supported: bool = True

    @classmethod
    def tested(cls, profile: IlabProfile) -> IlabRelease:
        """The release `profile` is tested with (what a hand-built worker in a test assumes)."""
        version = parse_ilab_version(f"version {profile.tested}")
        assert version is not None
        return cls(version, profile)


class UnsupportedIlab(Exception):
    """The worker's `ilab` is missing, unreadable or of an unsupported line; the message says
    what was found and what to do."""


def supported_lines() -> str:
    return ", ".join(f"{p.name}.x" for p in PROFILES)


def choose_release(output: str, exit_code: int | None, *, allow_unsupported: bool) -> IlabRelease:
    """The release `ilab --version` reported (its output and exit code), with its profile.

    Raises UnsupportedIlab when no version can be read, or when the line is unsupported and
    the admin did not allow it (ILAB_BOT_ILAB_ALLOW_UNSUPPORTED); allowed, the nearest profile
    is used and the release is marked unsupported (the worker warns)."""
    version = parse_ilab_version(output) if exit_code == 0 else None
    if version is None:
        last = output.strip().splitlines()[-1:] or [f"exit code {exit_code}"]
        raise UnsupportedIlab(
            f"`ilab --version` did not report a version ({last[0][:200]}): install a supported "
            f"ilab ({supported_lines()}) or point ILAB_BOT_ILAB_COMMAND at it"
        )
    profile = profile_for(version)
    if profile is not None:
        return IlabRelease(version, profile)
    if not allow_unsupported:
        raise UnsupportedIlab(
            f"ilab {version} is not a supported release (supported: {supported_lines()}): "
            "install a supported one, or set ILAB_BOT_ILAB_ALLOW_UNSUPPORTED=true to drive it "
            "like the nearest supported line"
        )
    return IlabRelease(version, nearest_profile(version), supported=False)
