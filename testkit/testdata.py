"""Third-party test data fetched from pinned npm packages into a git-ignored cache.

GitHub's OpenAPI description (13 MB) and Octokit's webhook examples and schemas are too big
and too foreign to vendor, so `make testdata` (and the pytest fixtures, when the Makefile did
not run) fetch them with `npm pack` and keep only the few files the tests read.

Run as ``python -m testkit.testdata --cache .cache``.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from testkit.kserve_schema import KSERVE_SDK, SchemaError, ensure_kserve_schema, is_built

DEFAULT_CACHE = Path(".cache")


@dataclass(frozen=True)
class NpmFile:
    """One file kept from one pinned npm package."""

    package: str
    version: str
    member: str  # path inside the tarball
    target: str  # path relative to the cache dir

    @property
    def spec(self) -> str:
        return f"{self.package}@{self.version}"


OPENAPI = NpmFile(
    "@octokit/openapi",
    "23.0.2",
    "package/generated/api.github.com.json",
    "octokit-openapi/api.github.com.json",
)
WEBHOOK_EXAMPLES = NpmFile(
    "@octokit/webhooks-examples",
    "7.6.1",
    "package/api.github.com/index.json",
    "octokit-webhooks-examples/index.json",
)
WEBHOOK_SCHEMA = NpmFile(
    "@octokit/webhooks-schemas",
    "7.6.1",
    "package/schema.json",
    "octokit-webhooks-schemas/schema.json",
)
ALL_FILES = (OPENAPI, WEBHOOK_EXAMPLES, WEBHOOK_SCHEMA)


@dataclass(frozen=True)
class TestDataPaths:
    """Where the fetched files live once `ensure_testdata` has run."""

    __test__ = False  # not a pytest test class, despite the name

    openapi: Path
    webhook_examples: Path
    webhook_schema: Path


class TestDataError(RuntimeError):
    """Fetching or extracting a package failed."""

    __test__ = False


def testdata_paths(cache: Path) -> TestDataPaths:
    """The paths of the test data under `cache` (fetched or not)."""
    return TestDataPaths(
        openapi=cache / OPENAPI.target,
        webhook_examples=cache / WEBHOOK_EXAMPLES.target,
        webhook_schema=cache / WEBHOOK_SCHEMA.target,
    )


testdata_paths.__test__ = False  # type: ignore[attr-defined]  # pytest: not a test


def _marker(cache: Path, item: NpmFile) -> Path:
    target = cache / item.target
    return target.with_name(target.name + ".version")


def is_fetched(cache: Path, item: NpmFile) -> bool:
    """True when the file exists and its marker records the pinned version."""
    marker = _marker(cache, item)
    return (
        (cache / item.target).is_file()
        and marker.is_file()
        and marker.read_text(encoding="utf-8").strip() == item.spec
    )


def _npm_pack(spec: str, workdir: Path) -> Path:
    """Download one package tarball into `workdir` with npm's own client."""
    proc = subprocess.run(
        ["npm", "pack", "--json", "--silent", spec],
        cwd=workdir,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise TestDataError(f"npm pack {spec} failed ({proc.returncode}): {proc.stderr.strip()}")
    try:
        filename = json.loads(proc.stdout)[0]["filename"]
    except (ValueError, LookupError, TypeError):
        tarballs = sorted(workdir.glob("*.tgz"))
        if len(tarballs) != 1:
            raise TestDataError(f"npm pack {spec}: cannot tell which tarball it wrote") from None
        return tarballs[0]
    # npm names scoped tarballs "octokit-openapi-23.0.2.tgz"; keep only the base name.
    return workdir / Path(str(filename)).name


def _extract_member(tarball: Path, member: str, target: Path) -> None:
    """Copy one regular-file member out of the tarball; nothing else is written."""
    with tarfile.open(tarball, mode="r:gz") as tar:
        try:
            info = tar.getmember(member)
        except KeyError:
            raise TestDataError(f"{tarball.name} has no {member}") from None
        if not info.isfile():
            raise TestDataError(f"{tarball.name}: {member} is not a regular file")
        source = tar.extractfile(info)
        if source is None:
            raise TestDataError(f"{tarball.name}: cannot read {member}")
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=target.name, suffix=".part")
        try:
            with source, os.fdopen(fd, "wb") as out:
                shutil.copyfileobj(source, out)
            Path(tmp_name).chmod(0o644)
            Path(tmp_name).replace(target)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise


def fetch(cache: Path, item: NpmFile) -> bool:
    """Fetch one file unless already there; returns True when it downloaded."""
    if is_fetched(cache, item):
        return False
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache, prefix=".npm-pack-") as workdir:
        tarball = _npm_pack(item.spec, Path(workdir))
        _extract_member(tarball, item.member, cache / item.target)
        tarball.unlink()  # the OpenAPI tarball is 29 MB: keep only what we use
    _marker(cache, item).write_text(item.spec + "\n", encoding="utf-8")
    return True


def ensure_testdata(cache: Path, *, echo: Callable[[str], None] | None = None) -> TestDataPaths:
    """Make sure every pinned file is in `cache` (idempotent) and return their paths."""
    for item in ALL_FILES:
        fetched = fetch(cache, item)
        if echo is not None:
            state = "fetched" if fetched else "cached"
            echo(f"{item.spec}: {state} {cache / item.target}")
    return testdata_paths(cache)


def load_webhook_examples(paths: TestDataPaths) -> list[dict[str, Any]]:
    """The whole examples index: a list of ``{name, actions, examples: [payload, ...]}``."""
    with paths.webhook_examples.open(encoding="utf-8") as f:
        index: list[dict[str, Any]] = json.load(f)
    return index


def find_webhook_example(
    index: Sequence[dict[str, Any]],
    event: str,
    predicate: Callable[[dict[str, Any]], bool] | None = None,
    *,
    action: str | None = None,
) -> dict[str, Any]:
    """A deep copy (tests edit them) of the first example of `event` that matches."""
    for entry in index:
        if entry.get("name") != event:
            continue
        for payload in entry.get("examples", []):
            if action is not None and payload.get("action") != action:
                continue
            if predicate is not None and not predicate(payload):
                continue
            return copy.deepcopy(payload)
    wanted = event if action is None else f"{event}.{action}"
    raise LookupError(f"no webhook example for {wanted} matching the predicate")


def load_webhook_example(
    paths: TestDataPaths,
    event: str,
    predicate: Callable[[dict[str, Any]], bool] | None = None,
    *,
    action: str | None = None,
) -> dict[str, Any]:
    """Like `find_webhook_example`, reading the index from disk (fine for one-off use)."""
    return find_webhook_example(load_webhook_examples(paths), event, predicate, action=action)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="cache directory")
    args = parser.parse_args(argv)
    try:
        ensure_testdata(args.cache, echo=print)
        state = "cached" if is_built(args.cache) else "fetched"
        print(f"{KSERVE_SDK}: {state} {ensure_kserve_schema(args.cache)}")
    except (TestDataError, SchemaError) as exc:
        print(f"testdata: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
