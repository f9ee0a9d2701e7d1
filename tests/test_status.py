"""The status read model, page and JSON API: jobs in every state stored through the real
`Queue`, served by the real app over HTTP, responses checked against the OpenAPI file."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestServer
from multidict import CIMultiDictProxy
from openapi_schema_validator import OAS31Validator, oas31_format_checker
from openapi_spec_validator import validate as validate_spec
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from instruct_lab_bot.adapters.redis.keys import WORKER_GROUP, jobs_stream
from instruct_lab_bot.adapters.redis.queue import Queue
from instruct_lab_bot.cli import load_settings
from instruct_lab_bot.core import job_overview, job_view
from instruct_lab_bot.core.command_table import CAPABILITIES
from instruct_lab_bot.core.job_view import ReadOptions
from instruct_lab_bot.core.jobs import Job, State
from instruct_lab_bot.core.refs import RepoRef
from instruct_lab_bot.core.settings import Secret, Settings, SettingsError
from instruct_lab_bot.core.status_auth import parse_status_auth
from instruct_lab_bot.services import job_status as status
from instruct_lab_bot.services.server import create_app
from instruct_lab_bot.services.status_page import CSP, status_routes
from testkit.harness import run_bot
from tests.fixtures.bot import WEBHOOK_SECRET, make_settings
from tests.fixtures.redis import free_port
from tests.fixtures.world import World

GENERATE_STREAM = jobs_stream("generate")  # the generate pool's jobs stream

SPEC_PATH = Path(__file__).parent.parent / "docs" / "status-api.openapi.yaml"
SPEC_URI = "urn:instruct-lab-bot:status-api"
PRIVATE_REPO = "secret-plans"
NASTY_REF = 'feat/<img src=x onerror="alert(1)">'
LEAKY_ERROR = (
    '<script>alert("x")</script> teacher at https://bob:hunter2@teacher:8000/v1 refused; '
    f"token ghp_{'a' * 36}; secret {WEBHOOK_SECRET}"
)
TOKEN = "status-token-0123456789abcdef"


# -- helpers shared with test_status_browser ------------------------------------------


def status_app(settings: Settings) -> web.Application:
    """The real server app (no dispatcher) with the status routes mounted once."""
    app = create_app(settings, dispatcher=False)
    if not any(r.canonical == "/api/v1/workers" for r in app.router.resources()):
        app.router.add_routes(status_routes())  # until `create_app` mounts them itself
    return app


@contextlib.asynccontextmanager
async def serve_status(settings: Settings) -> AsyncIterator[TestServer]:
    server = TestServer(status_app(settings), host="127.0.0.1")
    await server.start_server()
    try:
        yield server
    finally:
        await server.close()


def make_job(label: str, *, pr: int = 7, private: bool = False, age: float = 0.0, **kw: Any) -> Job:
    now = time.time()
    fields: dict[str, Any] = {
        "id": f"{int(now * 1000):013x}{label.encode().hex()[:12]:0<12}",
        "command": "generate",
        "installation_id": 1,
        "owner": "acme" if private else "instructlab",
        "repo": PRIVATE_REPO if private else "taxonomy",
        "pr_number": pr,
        "requester": "contributor",
        "head_sha": (label.encode().hex() * 8)[:40],
        "head_ref": f"branch-{label}",
        "base_branch": "main",
        "private": private,
        "created_at": now - age,
        "check_run_id": 900 + pr,
    }
    fields.update(kw)
    return Job(**fields)


@dataclass
class Seeded:
    ids: dict[str, str]
    worker: str = "gpu-1-4242-abcdef"


async def seed(queue: Queue) -> Seeded:
    """One job in every state (some of a private repository) and a live worker, stored the
    way the dispatcher and workers store them."""
    await queue.ensure_groups()
    ids: dict[str, str] = {}
    worker = Seeded({}).worker
    now = time.time()
    expires = int(now) + 3600

    async def run(job: Job, end: State | None, **fields: Any) -> None:
        assert (await queue.create_job(job)).status == "created"
        await queue.enqueue_job(job)
        (entry,) = await queue.read(GENERATE_STREAM, WORKER_GROUP, worker, block_ms=100)
        assert entry.fields["job"] == job.id
        assert (await queue.start_job(job.id, worker)).ok
        if end is State.DEAD:
            assert await queue.dead_letter(entry, job, "worker died 3 times")
        elif end is not None:
            assert await queue.finish_job(entry, job, worker, end, **fields)

    def link(job: Job, expiry: int) -> str:
        key = job.artifact_key_prefix() + "index.html"
        return f"http://127.0.0.1:9/artifacts/{key}?expires={expiry}&sig=0f"

    finished: list[tuple[str, Job, State, dict[str, Any]]] = []
    ok = make_job("ok", age=600)
    finished.append(("succeeded", ok, State.SUCCEEDED, {"generated": 10}))
    old = make_job("old", age=900)
    finished.append(("expired", old, State.SUCCEEDED, {"generated": 4}))
    bad = make_job("bad", pr=8, age=500, head_ref=NASTY_REF)
    finished.append(("failed", bad, State.FAILED, {"error": LEAKY_ERROR}))
    privok = make_job("privok", private=True, age=400)
    finished.append(("private_succeeded", privok, State.SUCCEEDED, {"generated": 3}))
    for label, job, end, extra in finished:
        fields = {"finished_at": time.time(), "index_url": "", "generated": -1, "error": ""}
        fields |= extra
        if end is State.SUCCEEDED:
            fields["index_url"] = link(job, expires if label != "expired" else int(now) - 60)
        await run(job, end, **fields)
        ids[label] = job.id
    dead = make_job("dead", pr=8, age=450)
    await run(dead, State.DEAD)
    ids["dead"] = dead.id

    running = make_job("run", age=120)
    await run(running, None)
    await queue.update_job(running.id, progress=40.0, stage="Map (num_proc=8): 40% (2/5)")
    ids["running"] = running.id
    privrun = make_job("privrun", private=True, age=100)
    await run(privrun, None)
    ids["private_running"] = privrun.id

    for label, job in (
        ("queued_1", make_job("q1", age=60, pr=9)),
        ("private_queued", make_job("pq", private=True, age=50)),
        ("queued_2", make_job("q2", age=40, pr=10)),
    ):
        assert (await queue.create_job(job)).status == "created"
        await queue.update_job(job.id, stream_id=await queue.enqueue_job(job))
        ids[label] = job.id

    info = {
        "name": worker,
        "host": "gpu-1",
        "pid": "4242",
        "version": "0.1.0",
        "concurrency": "2",
        "started_at": repr(now - 3600),
        "jobs": "",  # as of its last heartbeat: the jobs themselves say they run here
    }
    await queue.register_worker(worker, info, ttl=60)
    return Seeded(ids, worker)


class StatusApiSpec:
    """Validates JSON bodies against docs/status-api.openapi.yaml (OpenAPI 3.1)."""

    def __init__(self, path: Path = SPEC_PATH) -> None:
        self.spec: dict[str, Any] = yaml.safe_load(path.read_text())
        validate_spec(self.spec)
        resource = Resource.from_contents(self.spec, default_specification=DRAFT202012)
        self.registry: Registry[Any] = Registry().with_resource(SPEC_URI, resource)

    def validate(self, template: str, code: int, body: Any) -> None:
        responses = self.spec["paths"][template]["get"]["responses"]
        assert str(code) in responses, f"{template} does not document status {code}"
        pointer = f"/paths/{_escape(template)}/get/responses/{code}"
        response = responses[str(code)]
        if "$ref" in response:
            pointer = response["$ref"].removeprefix("#")
        schema = {"$ref": f"{SPEC_URI}#{pointer}/content/application~1json/schema"}
        validator = OAS31Validator(
            schema, registry=self.registry, format_checker=oas31_format_checker
        )
        validator.validate(body)


def _escape(template: str) -> str:
    return template.replace("~", "~0").replace("/", "~1")


async def get(
    server: TestServer, path: str, headers: dict[str, str] | None = None
) -> tuple[int, str, CIMultiDictProxy[str]]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(server.make_url(path), headers=headers) as response,
    ):
        return response.status, await response.text(), response.headers


async def get_json(
    server: TestServer,
    spec: StatusApiSpec,
    template: str,
    path: str,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    """GET an API path and validate the body against the documented response."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(server.make_url(path), headers=headers) as response,
    ):
        body = await response.json()
        spec.validate(template, response.status, body)
        return response.status, body


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


# -- fixtures (named, so test_status_browser can import them) --------------------------


@pytest.fixture(scope="session", name="api_spec")
def api_spec_fixture() -> StatusApiSpec:
    return StatusApiSpec()


@pytest.fixture(name="queue")
async def queue_fixture(redis_url: str) -> AsyncIterator[Queue]:
    q = Queue.from_url(redis_url)
    yield q
    await q.aclose()


@pytest.fixture(name="seeded")
async def seeded_fixture(queue: Queue) -> Seeded:
    return await seed(queue)


def status_settings(redis_url: str, tmp_path: Path, auth: str = "") -> Settings:
    return make_settings(
        redis_url=redis_url,
        artifacts_url=f"file://{tmp_path / 'artifacts'}",
        status_auth=Secret(auth),
    )


@pytest.fixture(name="public_server")
async def public_server_fixture(redis_url: str, tmp_path: Path) -> AsyncIterator[TestServer]:
    async with serve_status(status_settings(redis_url, tmp_path)) as server:
        yield server


# -- the read model (pure) ------------------------------------------------------------


def test_build_overview_orders_the_queue_and_hides_private_jobs() -> None:
    now = time.time()
    first = make_job("a", age=30, stream_id="1000-0")
    private = make_job("b", private=True, age=40, stream_id="1000-1")
    handed_back = make_job("c", age=90, stream_id="2000-0")  # older, but back in line later
    running = make_job("d", state=State.RUNNING, worker="w", started_at=now - 5, progress=130)
    mine = make_job("e", private=True, state=State.RUNNING, worker="w", started_at=now - 9)
    done = make_job("f", state=State.SUCCEEDED, started_at=now - 60, finished_at=now - 30)
    jobs = [first, private, handed_back, running, mine, done]
    infos = [{"name": "w", "host": "h", "pid": "12", "concurrency": "2", "jobs": "zzz"}]

    anonymous = job_overview.build_overview(jobs, infos, ReadOptions(), now=now)
    assert [(j.id, j.position) for j in anonymous.queued] == [(first.id, 1), (handed_back.id, 3)]
    assert [j.id for j in anonymous.running] == [running.id]
    assert anonymous.running[0].progress == 100.0 and anonymous.running[0].duration == 5.0
    assert [j.id for j in anonymous.finished] == [done.id]
    assert anonymous.finished[0].duration == 30.0 and anonymous.finished[0].conclusion == "success"
    assert anonymous.hidden == job_view.Hidden(queued=1, running=1, finished=0)
    (worker,) = anonymous.workers
    assert [j.id for j in worker.jobs] == [running.id] and worker.hidden_jobs == 1
    assert worker.busy == 2 and worker.pid == 12

    admin = job_overview.build_overview(jobs, infos, ReadOptions(show_private=True), now=now)
    assert [j.position for j in admin.queued] == [1, 2, 3]
    assert admin.hidden.total == 0
    assert [j.id for j in admin.workers[0].jobs] == [mine.id, running.id]


def test_job_view_links_and_redaction() -> None:
    now = time.time()
    job = make_job(
        "x",
        state=State.FAILED,
        started_at=now - 10,
        finished_at=now,
        error=LEAKY_ERROR,
        index_url="file:///not/a/web/link",
    )
    options = ReadOptions(web_url="https://ghe.example.com", secrets=(WEBHOOK_SECRET,))
    view = job_view.view(job, options, now=now)
    assert "hunter2" not in view.error and "ghp_" not in view.error
    assert WEBHOOK_SECRET not in view.error and "https://***@teacher:8000" in view.error
    assert view.links.pull_request == "https://ghe.example.com/instructlab/taxonomy/pull/7"
    assert view.links.check_run == "https://ghe.example.com/instructlab/taxonomy/runs/907"
    assert view.links.artifacts is None  # only http(s) links are ever shown
    # a git web URL that is not http(s) (a file:// mirror) links to github.com
    mirror = job_view.view(job, ReadOptions(web_url="file:///srv/git"), now=now)
    assert mirror.links.pull_request.startswith("https://github.com/")


def test_link_expiry_of_local_and_s3_links() -> None:
    assert job_view.link_expires_at("http://h/artifacts/k?expires=1700000000&sig=ab") == 1.7e9
    s3 = "https://s3/b/k?X-Amz-Date=20240501T120000Z&X-Amz-Expires=3600&X-Amz-Signature=0"
    assert job_view.link_expires_at(s3) == 1714564800.0 + 3600  # 2024-05-01T12:00:00Z + 1 h
    assert job_view.link_expires_at("https://h/k?expires=soon") is None
    assert job_view.link_expires_at("https://h/k") is None


def test_status_auth_setting() -> None:
    assert parse_status_auth("") is None
    bearer = parse_status_auth(f"bearer:{TOKEN}")
    assert bearer is not None and TOKEN not in repr(bearer)
    assert bearer.allows(f"Bearer {TOKEN}") and bearer.allows(
        basic("anyone", TOKEN)["Authorization"]
    )
    assert not bearer.allows("Bearer nope") and not bearer.allows(None)
    assert not bearer.allows("Basic !!!not-base64") and not bearer.allows("Digest x")
    user = parse_status_auth("basic:admin:pa:ss-word")
    assert user is not None and user.allows(basic("admin", "pa:ss-word")["Authorization"])
    assert not user.allows(basic("admin", "wrong-pass")["Authorization"])
    assert not user.allows(f"Bearer {TOKEN}")

    env = {
        "ILAB_BOT_GITHUB_APP_ID": "1",
        "ILAB_BOT_GITHUB_PRIVATE_KEY": "-----BEGIN RSA PRIVATE KEY-----\nx\n-----END RSA KEY-----",
        "ILAB_BOT_WEBHOOK_SECRET": "s" * 32,
    }
    loaded = load_settings({**env, "ILAB_BOT_STATUS_AUTH": f"bearer:{TOKEN}"}, dotenv=None)
    assert loaded.status_auth.value == f"bearer:{TOKEN}" and TOKEN not in repr(loaded)
    for bad in ("bearer:short", "basic:admin:short", "basic:nopassword", f"token:{TOKEN}"):
        with pytest.raises(SettingsError) as info:
            load_settings({**env, "ILAB_BOT_STATUS_AUTH": bad}, dotenv=None)
        assert "ILAB_BOT_STATUS_AUTH" in str(info.value)
        assert bad.partition(":")[2] not in str(info.value)


# -- the page and the API over HTTP ---------------------------------------------------


async def test_front_page_for_anonymous_viewers(seeded: Seeded, public_server: TestServer) -> None:
    code, page, headers = await get(public_server, "/")
    assert code == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    assert headers["Content-Security-Policy"] == CSP
    assert CSP.startswith("default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:")
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert '<meta http-equiv="refresh" content="10">' in page
    assert '<meta name="viewport"' in page
    ids = seeded.ids

    def rows(section: str) -> list[str]:
        return re.findall(rf'<tr class="job" id="{section}-([0-9a-f]+)"', page)

    assert rows("queued") == [ids["queued_1"], ids["queued_2"]]
    assert rows("running") == [ids["running"]]
    assert set(rows("finished")) == {ids[k] for k in ("succeeded", "expired", "failed", "dead")}
    assert f'id="worker-{seeded.worker}"' in page
    for capability in CAPABILITIES:  # a row per worker pool
        assert f'<tr class="pool" id="pool-{capability}" data-stranded="false">' in page
    # every section says how many private jobs it left out, and nothing else about them
    assert page.count("1 job of a private repository is not shown.") == 3
    for private in ("private_queued", "private_running", "private_succeeded"):
        assert ids[private] not in page
    assert PRIVATE_REPO not in page and "acme" not in page
    # running: worker, progress, stage; queue: positions count the hidden job
    assert '<progress max="100" value="40">' in page and "Map (num_proc=8): 40% (2/5)" in page
    queued_2 = page[page.index(f'id="queued-{ids["queued_2"]}"') :]
    assert '<td data-label="#"><div>3</div></td>' in queued_2[: queued_2.index("</tr>")]
    assert "1 private" in page  # the worker's hidden job
    # untrusted text is escaped; secrets never appear
    assert "<script>" not in page and "<img" not in page
    assert "&lt;script&gt;" in page and "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in page
    for leak in ("hunter2", "ghp_", WEBHOOK_SECRET):
        assert leak not in page
    # artifact links: a live one is a link, an expired one says so
    assert page.count('class="artifacts"') == 1 and "files expired" in page


async def test_pr_page(seeded: Seeded, public_server: TestServer) -> None:
    code, page, headers = await get(public_server, "/repos/instructlab/taxonomy/pulls/7")
    assert code == 200 and headers["Content-Security-Policy"] == CSP
    ids = seeded.ids
    builds = re.findall(r'<tr class="job" id="builds-([0-9a-f]+)"', page)
    jobs = re.findall(r'<tr class="job" id="jobs-([0-9a-f]+)"', page)
    assert builds == [ids["succeeded"]]  # the expired one is not downloadable any more
    assert jobs == [ids["running"], ids["succeeded"], ids["expired"]]  # newest first
    assert 'href="https://github.com/instructlab/taxonomy/pull/7"' in page
    assert 'href="../../../../"' in page  # relative links work behind a path prefix

    code, page, _ = await get(public_server, f"/repos/acme/{PRIVATE_REPO}/pulls/7")
    assert code == 200 and not re.findall(r'<tr class="job"', page)
    assert "No job for this pull request." in page

    code, _, _ = await get(public_server, "/repos/instructlab/taxonomy/pulls/x")
    assert code == 404


async def test_api_for_anonymous_viewers(
    seeded: Seeded, public_server: TestServer, api_spec: StatusApiSpec
) -> None:
    ids = seeded.ids
    jobs = "/api/v1/jobs"
    code, body = await get_json(public_server, api_spec, jobs, jobs)
    assert code == 200 and body["hidden"] == 3
    assert {j["id"] for j in body["jobs"]} == {
        ids[k]
        for k in ("succeeded", "expired", "failed", "dead", "running", "queued_1", "queued_2")
    }
    assert not any(j["private"] for j in body["jobs"])

    code, body = await get_json(public_server, api_spec, jobs, f"{jobs}?state=queued,running")
    assert [(j["id"], j["queue_position"]) for j in body["jobs"]] == [
        (ids["queued_2"], 3),
        (ids["queued_1"], 1),
        (ids["running"], None),
    ]
    assert body["hidden"] == 2
    code, body = await get_json(public_server, api_spec, jobs, f"{jobs}?state=failed&limit=1")
    (failed,) = body["jobs"]
    assert failed["conclusion"] == "failure" and "&lt;" not in failed["error"]  # JSON: raw text
    assert failed["error"].startswith("<script>") and "hunter2" not in failed["error"]
    for query in ("state=sleeping", "limit=0", "limit=501", "limit=ten"):
        code, body = await get_json(public_server, api_spec, jobs, f"{jobs}?{query}")
        assert code == 400 and body["error"]

    one = "/api/v1/jobs/{job_id}"
    code, body = await get_json(public_server, api_spec, one, f"/api/v1/jobs/{ids['running']}")
    assert code == 200 and body["state"] == "running" and body["worker"] == seeded.worker
    assert body["progress"] == 40.0 and body["stage"].startswith("Map")
    code, body = await get_json(public_server, api_spec, one, f"/api/v1/jobs/{ids['queued_2']}")
    assert body["queue_position"] == 3 and body["wait_seconds"] > 0
    code, body = await get_json(public_server, api_spec, one, f"/api/v1/jobs/{ids['succeeded']}")
    assert body["generated"] == 10 and body["links"]["artifacts"].startswith("http://")
    assert body["links"]["artifacts_expire_at"] is not None
    for hidden in (ids["private_running"], "0123456789abcdef"):
        code, body = await get_json(public_server, api_spec, one, f"/api/v1/jobs/{hidden}")
        assert code == 404

    workers = "/api/v1/workers"
    code, body = await get_json(public_server, api_spec, workers, workers)
    (worker,) = body["workers"]
    assert worker["name"] == seeded.worker and worker["pid"] == 4242
    assert [j["id"] for j in worker["jobs"]] == [ids["running"]] and worker["hidden_jobs"] == 1
    assert worker["capabilities"] == list(CAPABILITIES)  # registered before pools: all

    pools = "/api/v1/pools"
    code, body = await get_json(public_server, api_spec, pools, pools)
    assert code == 200 and [p["capability"] for p in body["pools"]] == list(CAPABILITIES)
    assert all(p["workers"] == 1 and not p["stranded"] for p in body["pools"])

    pr = "/api/v1/repos/{owner}/{repo}/pulls/{pr_number}"
    code, body = await get_json(
        public_server, api_spec, pr, "/api/v1/repos/instructlab/taxonomy/pulls/7"
    )
    assert [j["id"] for j in body["jobs"]] == [ids["running"], ids["succeeded"], ids["expired"]]
    assert body["builds"] == [ids["succeeded"]]
    code, body = await get_json(
        public_server, api_spec, pr, f"/api/v1/repos/acme/{PRIVATE_REPO}/pulls/7"
    )
    assert code == 200 and body["jobs"] == [] and body["builds"] == []


async def test_bearer_auth_shows_everything_to_authenticated_viewers(
    seeded: Seeded, redis_url: str, tmp_path: Path, api_spec: StatusApiSpec
) -> None:
    settings = status_settings(redis_url, tmp_path, f"bearer:{TOKEN}")
    async with serve_status(settings) as server:
        for path in ("/", "/repos/instructlab/taxonomy/pulls/7"):
            code, page, headers = await get(server, path)
            assert code == 401 and TOKEN not in page and "instructlab" not in page
            assert headers.getall("WWW-Authenticate") == [
                'Bearer realm="instruct-lab-bot status"',
                'Basic realm="instruct-lab-bot status", charset="UTF-8"',
            ]
        code, body = await get_json(server, api_spec, "/api/v1/workers", "/api/v1/workers")
        assert code == 401 and "error" in body
        wrong = {"Authorization": "Bearer " + TOKEN[:-1]}
        code, _ = await get_json(server, api_spec, "/api/v1/jobs", "/api/v1/jobs", wrong)
        assert code == 401

        good = {"Authorization": f"Bearer {TOKEN}"}
        code, body = await get_json(server, api_spec, "/api/v1/jobs", "/api/v1/jobs", good)
        assert code == 200 and body["hidden"] == 0 and len(body["jobs"]) == 10
        assert sum(j["private"] for j in body["jobs"]) == 3
        code, page, headers = await get(server, "/", basic("browser-user", TOKEN))
        assert code == 200 and PRIVATE_REPO in page and "not shown" not in page
        assert headers["Cache-Control"] == "no-store, private"
        code, body = await get_json(
            server,
            api_spec,
            "/api/v1/jobs/{job_id}",
            f"/api/v1/jobs/{seeded.ids['private_running']}",
            good,
        )
        assert code == 200 and body["private"] is True and body["repo"] == PRIVATE_REPO


async def test_basic_auth(seeded: Seeded, redis_url: str, tmp_path: Path) -> None:
    settings = status_settings(redis_url, tmp_path, "basic:admin:correct-horse")
    async with serve_status(settings) as server:
        code, _, headers = await get(server, "/")
        assert code == 401
        assert headers.getall("WWW-Authenticate") == [
            'Basic realm="instruct-lab-bot status", charset="UTF-8"'
        ]
        assert (await get(server, "/", basic("admin", "wrong-horse")))[0] == 401
        assert (await get(server, "/", basic("root", "correct-horse")))[0] == 401
        code, page, _ = await get(server, "/", basic("admin", "correct-horse"))
        assert code == 200 and seeded.ids["private_queued"] in page


async def test_redis_unavailable(tmp_path: Path, api_spec: StatusApiSpec) -> None:
    settings = status_settings(f"redis://127.0.0.1:{free_port()}/0", tmp_path)
    async with serve_status(settings) as server:
        code, page, headers = await get(server, "/")
        assert code == 503 and headers["Content-Security-Policy"] == CSP and "Redis" in page
        code, _body = await get_json(server, api_spec, "/api/v1/jobs", "/api/v1/jobs")
        assert code == 503


async def test_pr_status_for_the_status_command(seeded: Seeded, queue: Queue) -> None:
    """The `status` PR command reads the same model; on a private PR it asks for everything."""
    ids = seeded.ids
    public = await status.pr_status(queue, RepoRef("instructlab", "taxonomy").pull(7))
    assert [j.id for j in public.jobs] == [ids["running"], ids["succeeded"], ids["expired"]]
    assert [j.id for j in public.builds] == [ids["succeeded"]]
    assert public.url == "https://github.com/instructlab/taxonomy/pull/7"
    hidden = await status.pr_status(queue, RepoRef("acme", PRIVATE_REPO).pull(7))
    assert hidden.jobs == ()
    shown = await status.pr_status(
        queue, RepoRef("acme", PRIVATE_REPO).pull(7), ReadOptions(show_private=True)
    )
    assert {j.id for j in shown.jobs} == {
        ids[k] for k in ("private_queued", "private_running", "private_succeeded")
    }
    assert {j.id: j.position for j in shown.jobs}[ids["private_queued"]] == 2


# -- a real job, end to end -----------------------------------------------------------


async def wait_for_state(
    server: TestServer, spec: StatusApiSpec, states: set[str], timeout: float = 60
) -> dict[str, Any]:
    """Poll the API until the PR's newest job reaches one of `states`."""
    template = "/api/v1/repos/{owner}/{repo}/pulls/{pr_number}"
    path = "/api/v1/repos/instructlab/taxonomy/pulls/7"
    async with asyncio.timeout(timeout):
        while True:
            _code, body = await get_json(server, spec, template, path)
            if body["jobs"] and body["jobs"][0]["state"] in states:
                return dict(body)
            await asyncio.sleep(0.05)


async def test_a_real_job_during_and_after(
    world: World, api_spec: StatusApiSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ILAB_STANDIN_DURATION", "4")  # long enough to be seen running
    async with serve_status(world.settings) as server, run_bot(world.settings) as bot:
        assert (await world.comment(bot))[0] == 202
        during = await wait_for_state(server, api_spec, {"running"})
        (job,) = during["jobs"]
        assert job["worker"] == bot.workers[0].name and job["started_at"]
        code, page, _ = await get(server, "/")
        assert code == 200 and f'id="running-{job["id"]}"' in page
        await world.result_comment()
        after = await wait_for_state(server, api_spec, {"succeeded"})
        code, page, _ = await get(server, "/")
        _, workers = await get_json(server, api_spec, "/api/v1/workers", "/api/v1/workers")
        (done,) = after["jobs"]
        async with (
            aiohttp.ClientSession() as session,
            session.get(done["links"]["artifacts"]) as response,
        ):
            assert response.status == 200

    assert done["conclusion"] == "success" and done["generated"] > 0
    assert done["head_sha"] == world.remote.head_sha and after["builds"] == [done["id"]]
    assert f'id="finished-{done["id"]}"' in page and 'class="artifacts"' in page
    assert [w["name"] for w in workers["workers"]] == [bot.workers[0].name]
