"""`python -m testkit.ilab_contract`: install each supported `instructlab` release in a
throwaway venv (cached under `.cache/ilab-contract/`, only the packages its CLI modules need to
import, pinned in `requirements-<release>.txt`, installed with `--no-deps`), then parse every
command line the bot builds for that release's profile with the release's own click commands,
and check that the flags the bot relies on mean what it assumes.

It also plants two faults and requires the check to catch them: a flag renamed in the real
click command (`--rename`), and a profile that passes a flag the release lacks.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from instruct_lab_bot.core.ilab import (
    PROFILES,
    IlabProfile,
    bot_argvs,
    chat_argv,
    generate_run,
    parse_ilab_version,
    serve_argv,
    with_ilab_config,
)
from instruct_lab_bot.core.settings import Settings

HERE = Path(__file__).resolve().parent
CHECK = HERE / "check.py"
PLANTED_RENAME = ("data", "generate", "--taxonomy-path", "--taxonomy-dir")


def requirements(profile: IlabProfile) -> Path:
    return HERE / f"requirements-{profile.tested}.txt"


def ensure_venv(profile: IlabProfile, cache: Path) -> tuple[Path, float | None]:
    """The release's venv (reused while its requirements file is unchanged) and how many
    seconds installing it took now (None when it was cached)."""
    reqs = requirements(profile)
    digest = hashlib.sha256(reqs.read_bytes()).hexdigest()[:12]
    venv = cache / f"{profile.tested}-{digest}"
    python = venv / "bin" / "python"
    if (venv / ".installed").is_file():
        return python, None
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "--no-deps", "--requirement", str(reqs)], check=True)
    took = time.monotonic() - started
    (venv / ".installed").write_text(f"{took:.1f}\n", encoding="utf-8")
    return python, took


def specs(profile: IlabProfile) -> list[dict[str, Any]]:
    return [
        {
            "command": list(b.command),
            "args": list(b.args),
            "uses": [asdict(u) for u in b.uses],
            "expect": b.expect,
        }
        for b in bot_argvs(profile)
    ]


def run_check(
    python: Path, profile: IlabProfile, extra: list[str], home: Path
) -> list[dict[str, Any]]:
    """The check's results inside the release's venv (HOME relocated: ilab reads no config
    of the machine's user and writes nothing there)."""
    home.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [str(python), str(CHECK), *extra],
        input=json.dumps(specs(profile)),
        capture_output=True,
        text=True,
        env={"HOME": str(home), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"ilab {profile.tested}: the check failed to run:\n{done.stderr}")
    results: list[dict[str, Any]] = json.loads(done.stdout)
    return results


def problems_of(profile: IlabProfile, results: list[dict[str, Any]]) -> list[str]:
    found = []
    for result in results:
        where = " ".join(["ilab", *result["command"], *result["args"]])
        found += [f"{where}\n    {problem}" for problem in result["problems"]]
        if result["args"] == ["--version"]:
            version = parse_ilab_version(result["stdout"])
            if str(version) != profile.tested:
                found.append(f"{where}\n    printed {result['stdout']!r}, not {profile.tested}")
    return found


def contract(profile: IlabProfile, cache: Path) -> tuple[list[str], float | None]:
    """The problems of `profile` against its release (none when the contract holds); the
    planted faults must each be caught, or that is a problem too."""
    python, took = ensure_venv(profile, cache)
    home = cache / "home"
    found = problems_of(profile, run_check(python, profile, [], home))
    planted = run_check(python, profile, ["--rename", *PLANTED_RENAME], home)
    if not any("--taxonomy-path: no such option" in p for p in problems_of(profile, planted)):
        found.append("planted rename of `data generate --taxonomy-path` was NOT caught")
    wrong = replace(profile, chat_plain_flags=("--no-decorations",))
    caught = problems_of(wrong, run_check(python, wrong, [], home))
    if not any("--no-decorations: no such option" in p for p in caught):
        found.append("a profile passing `model chat --no-decorations` was NOT caught")
    found += fresh_home_runs(profile, python, cache / "runs" / profile.tested)
    found += serve_config_read(profile, python, cache / "runs" / profile.tested)
    return found, took


def serve_config_read(profile: IlabProfile, python: Path, scratch: Path) -> list[str]:
    """0.18 takes `model serve`'s address only from its config: the small config the bot
    writes (core.ilab.serve_argv) must read, with the real release, as that address."""
    scratch.mkdir(parents=True, exist_ok=True)
    run = serve_argv(profile, ("ilab",), scratch / "model", "127.0.0.1", 8123, scratch)
    if run.config_file is None or run.config_text is None:
        return []
    run.config_file.write_text(run.config_text, encoding="utf-8")
    code = "import sys\nfrom instructlab import configuration as c\n"
    code += "print(c.read_config(sys.argv[1]).serve.host_port)"
    done = subprocess.run(
        [str(python), "-c", code, str(run.config_file)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"HOME": str(scratch), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
    )
    if done.stdout.strip() != "127.0.0.1:8123":
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:]
        return [f"the serve config {run.config_text!r} reads as {done.stdout.strip()!r} {tail}"]
    return []


def fresh_home_runs(profile: IlabProfile, python: Path, scratch: Path) -> list[str]:
    """Run the real `ilab` as a job does, HOME a fresh empty folder: with the worker's
    settings (`--config DEFAULT`) it must get past configuration; without, it must stop
    with ilab's "run `ilab config init`" (exit 2), or this check proves nothing."""
    teacher = "http://127.0.0.1:9/v1"  # nothing listens: the run ends after configuration
    base = Settings(
        ilab_command=(str(python.parent / "ilab"),),
        precheck_args=("--endpoint-url", teacher),
        teacher_endpoint_url=teacher,
        teacher_model="teacher",
    )
    found = []
    for worker_settings, must_configure in (
        (with_ilab_config(base, admin_config=False), True),
        (base, False),
    ):
        taxonomy = scratch / "taxonomy"
        taxonomy.mkdir(parents=True, exist_ok=True)
        runs = {
            "chat": chat_argv(profile, worker_settings, "Hello?"),
            "generate": generate_run(
                profile, worker_settings, taxonomy, "empty", scratch / "out"
            ).argv,
        }
        for name, argv in runs.items():
            home = scratch / f"home-{name}-{must_configure}"
            home.mkdir(parents=True, exist_ok=True)
            done = subprocess.run(
                argv,
                cwd=scratch,
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
                env={
                    "HOME": str(home),
                    "PATH": f"{python.parent}:/usr/bin:/bin",
                    "LANG": "C.UTF-8",
                },
            )
            stopped = done.returncode == 2 and "config init" in done.stdout + done.stderr
            if stopped == must_configure:
                tail = (done.stderr or done.stdout).strip().splitlines()[-1:]
                found.append(f"fresh HOME, {' '.join(argv[1:])}: exit {done.returncode} {tail}")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m testkit.ilab_contract")
    parser.add_argument("--cache", type=Path, default=Path(".cache/ilab-contract"))
    parser.add_argument("--release", action="append", help="only these (e.g. 0.26.1)")
    args = parser.parse_args(argv)
    failed = False
    for profile in PROFILES:
        if args.release and profile.tested not in args.release:
            continue
        started = time.monotonic()
        found, took = contract(profile, args.cache.resolve())
        install = f"installed in {took:.0f}s" if took is not None else "venv cached"
        checked = len(bot_argvs(profile))
        verdict = "FAIL" if found else "ok (the planted rename and wrong profile were caught)"
        print(
            f"ilab {profile.tested}: {checked} command lines, {install}, "
            f"{time.monotonic() - started:.1f}s in all: {verdict}"
        )
        for problem in found:
            print(f"  {problem}")
        failed |= bool(found)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
