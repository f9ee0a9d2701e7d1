"""The built image, run: its server and a worker as uid 1001, against the test's Redis and
GitHub emulator, answer `/healthz`, take a signed webhook (202) and finish a generate job with
the `ilab` stand-in mounted from outside (the image holds no test doubles and no compilers).

Run by `make image-test` (which builds the image and names it in `ILAB_BOT_TEST_IMAGE`), not by
`make test`: the `image` mark is deselected by default (pyproject's addopts). The containers
run with `buildah run --isolation=chroot`, which shares the host's network, so the server and
worker reach the test's Redis and emulator on 127.0.0.1. A chrooted process may not create
user namespaces, so the worker runs `ilab` with `ILAB_BOT_SANDBOX=off`, as Kubernetes workers
do (docs/deploy.md); the sandbox has its own tests outside the image.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest

from tests.fixtures.bot import settings_env
from tests.fixtures.world import World

pytestmark = [pytest.mark.image, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parent.parent
IMAGE = os.environ.get("ILAB_BOT_TEST_IMAGE", "localhost/instruct-lab-bot:ci")
REPORT = os.environ.get("ILAB_BOT_IMAGE_REPORT", "")
STANDIN_DIR = "/opt/standin"  # where testkit is mounted, read-only, for this test only
UID = "1001:0"
COMPILERS = ("gcc", "cc", "cc1", "c++", "g++", "clang", "tcc", "x86_64-linux-gnu-gcc-12")
#: The test kit's package, its dist-info, its console script and its modules.
TEST_DOUBLES = ("testkit", "instruct_lab_bot_testkit", "ilab-standin", "fake_ilab")


def buildah(*args: str) -> str:
    return subprocess.run(
        ["buildah", *args], check=True, capture_output=True, text=True, timeout=300
    ).stdout.strip()


class Container:
    """One working container of the image; `start` runs a command in it as uid 1001."""

    def __init__(self, log: Path) -> None:
        self.name = buildah("from", "--pull-never", "--quiet", IMAGE)
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, env: dict[str, str], mounts: list[str], *argv: str) -> None:
        args = ["buildah", "run", "--isolation=chroot", "--user", UID]
        for key, value in env.items():
            args += ["--env", f"{key}={value}"]
        for mount in mounts:
            args += ["-v", mount]
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [*args, self.name, "--", *argv],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # stop() ends buildah and what it runs, together
            )

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        subprocess.run(["buildah", "rm", self.name], capture_output=True, check=False)


@pytest.fixture
def containers(tmp_path: Path) -> Iterator[list[Container]]:
    made: list[Container] = []
    yield made
    for container in made:
        container.stop()


def give_to_bot(path: Path) -> None:
    """The containers run as uid 1001 in group 0: the test's folder (mounted at the same path)
    becomes theirs, as a volume would be (git refuses a repository another user owns)."""
    for folder, dirs, files in os.walk(path):
        for name in [*dirs, *files, ""]:
            os.chown(Path(folder, name), 1001, 0, follow_symlinks=False)


async def wait_healthy(url: str, server: Container) -> None:
    async with aiohttp.ClientSession() as session:
        while True:
            assert server.process is not None and server.process.poll() is None, (
                server.log.read_text(errors="replace")[-4000:]
            )
            try:
                async with session.get(url + "/healthz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.2)  # polling a condition (the server answering), not a delay


async def test_image_serves_and_runs_a_generate_job(
    world: World, tmp_path: Path, containers: list[Container]
) -> None:
    wrapper = tmp_path / "ilab"
    wrapper.write_text(
        "#!/opt/instruct-lab-bot/bin/python\n"
        f"import sys\nsys.path.insert(0, {STANDIN_DIR!r})\n"
        "from testkit.fake_ilab import main\nmain()\n",
        encoding="utf-8",
    )
    wrapper.chmod(0o755)
    for folder in ("work", "artifacts"):
        (tmp_path / folder).mkdir(exist_ok=True)
    settings = replace(world.settings, ilab_command=(str(wrapper),), sandbox="off")
    give_to_bot(tmp_path)
    env = {
        **settings_env(settings),
        "ILAB_STANDIN_RECORD": str(world.record.path),
        "ILAB_STANDIN_DURATION": "1",
        "ILAB_BOT_HOST": settings.host,
        "ILAB_BOT_PORT": str(settings.port),
        "HOME": "/home/bot",
    }
    mounts = [f"{tmp_path}:{tmp_path}", f"{ROOT / 'testkit'}:{STANDIN_DIR}/testkit:ro"]
    server = Container(tmp_path / "server.log")
    worker = Container(tmp_path / "worker.log")
    containers += [server, worker]

    started = time.monotonic()
    server.start(env, mounts, "instruct-lab-bot", "server")
    await wait_healthy(settings.public_url, server)
    startup = time.monotonic() - started
    worker.start(env, mounts, "instruct-lab-bot", "worker", "--metrics-port", "0")

    status, _body = await world.comment(settings.public_url + "/api/github/hook")
    assert status == 202
    comment = await world.result_comment(timeout=300)

    run = world.check_run()
    assert run["conclusion"] == "success", (run["output"], comment["body"][:3000])
    assert world.remote.head_sha in comment["body"]
    (invocation,) = world.record.entries()
    assert invocation["argv"][:4] == ["--config", "DEFAULT", "data", "generate"]
    ids = {line.split()[0] for line in _proc_status(server, worker)}
    assert ids == {"1001"}, ids  # both ran as the image's unprivileged uid
    if REPORT:
        Path(REPORT).write_text(json.dumps({"startup_seconds": round(startup, 2)}) + "\n")


def _proc_status(*containers: Container) -> list[str]:
    """The real uid of each bot process that each container's `buildah run` started."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int(
                    (entry / "stat").read_text().rsplit(")", 1)[1].split()[1]
                )
            except (OSError, IndexError, ValueError):
                continue
    lines = []
    for container in containers:
        assert container.process is not None
        family, grew = {container.process.pid}, True
        while grew:
            more = {pid for pid, parent in parents.items() if parent in family} - family
            family |= more
            grew = bool(more)
        for pid in family:
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            if argv[0].startswith(b"/opt/instruct-lab-bot/bin/python"):
                lines += [s.split(None, 1)[1] for s in status.splitlines() if s.startswith("Uid:")]
    assert len(lines) == len(containers), lines
    return lines


def test_image_holds_no_test_doubles_and_no_compilers() -> None:
    container = buildah("from", "--pull-never", "--quiet", IMAGE)
    try:
        root = Path(buildah("mount", container))
        found = []
        for folder, dirs, files in os.walk(root):
            dirs[:] = [d for d in dirs if not Path(folder, d).is_symlink()]
            here = Path(folder).relative_to(root)
            # compilers are files (a folder such as usr/share/gcc holds only data)
            found += [str(here / name) for name in files if name in COMPILERS]
            found += [str(here / n) for n in [*files, *dirs] if n.startswith(TEST_DOUBLES)]
        assert found == []
        schemas = "opt/instruct-lab-bot/lib/python3*/site-packages/instruct_lab_bot/core/"
        assert list(root.glob(schemas + "repo_config.schema.json"))  # shipped in the wheel
        config = json.loads(buildah("inspect", "--type", "image", IMAGE))["Docker"]["config"]
        assert config["User"] == "1001"
        assert config["Healthcheck"]["Test"][0] == "CMD"  # kept: a Docker-format image
        assert config["Shell"] == ["/bin/sh", "-eu", "-c"]
    finally:
        subprocess.run(["buildah", "umount", container], capture_output=True, check=False)
        subprocess.run(["buildah", "rm", container], capture_output=True, check=False)
