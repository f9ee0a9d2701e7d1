"""Artifact store: pure helpers, the local store behind a real aiohttp server, S3 against moto."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import aioboto3
import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from yarl import URL

from instruct_lab_bot.adapters.storage import StorageError, open_store
from instruct_lab_bot.adapters.storage.local import LocalStore, artifact_routes
from instruct_lab_bot.adapters.storage.s3 import (
    S3_MAX_LINK_EXPIRY,
    S3_MIN_PART_SIZE,
    S3Config,
    S3Store,
)
from instruct_lab_bot.core.artifacts import (
    ArtifactsLocation,
    guess_content_type,
    parse_artifacts_url,
    render_index_html,
    sign_artifact,
    validate_key,
    verify_artifact,
)
from tests.fixtures.s3 import S3Server

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

SIGNING_KEY = b"test-signing-key-0123456789abcdef"
T0 = 1_700_000_000
KEY = "octo/taxonomy/pr-7/0123abcd/job-1"

# --------------------------------------------------------------------------- pure helpers


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("s3://bucket", ArtifactsLocation("s3", bucket="bucket")),
        ("s3://my.bucket-1/a/b/", ArtifactsLocation("s3", bucket="my.bucket-1", prefix="a/b")),
        ("file:///srv/artifacts", ArtifactsLocation("file", root=Path("/srv/artifacts"))),
        ("file://localhost/srv/a%20b", ArtifactsLocation("file", root=Path("/srv/a b"))),
        ("file://./var/artifacts", ArtifactsLocation("file", root=Path("var/artifacts"))),
        ("file://../up", ArtifactsLocation("file", root=Path("../up"))),
    ],
)
def test_parse_artifacts_url(url: str, expected: ArtifactsLocation) -> None:
    assert parse_artifacts_url(url) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://example.com/x", "s3:// or file://"),
        ("", "s3:// or file://"),
        ("/var/artifacts", "s3:// or file://"),
        ("s3://", "needs a bucket"),
        ("s3:///prefix", "needs a bucket"),
        ("s3://Bad_Bucket", "not a valid S3 bucket"),
        ("s3://ab", "not a valid S3 bucket"),
        ("s3://key:secret@bucket/x", "credentials"),
        ("s3://bucket/a/../b", "invalid prefix"),
        ("s3://bucket/x?versionId=1", "query"),
        ("file://", "needs a directory"),
        ("file:///", "needs a directory"),
        ("file://var/artifacts", "ambiguous"),
    ],
)
def test_parse_artifacts_url_rejects(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        parse_artifacts_url(url)
    assert "secret" not in str(caught.value)


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("out.json", "application/json"),
        ("DATA.JSONL", "application/x-ndjson"),
        ("config.yaml", "text/yaml; charset=utf-8"),
        ("index.html", "text/html; charset=utf-8"),
        ("generate.log", "text/plain; charset=utf-8"),
        ("notes.txt", "text/plain; charset=utf-8"),
        ("model.bin", "application/octet-stream"),
        ("no-suffix", "application/octet-stream"),
    ],
)
def test_guess_content_type(name: str, content_type: str) -> None:
    assert guess_content_type(name) == content_type


@pytest.mark.parametrize("key", [f"{KEY}/out.json", "a", "a/b c/ü.txt", "a/.hidden"])
def test_validate_key_accepts(key: str) -> None:
    assert validate_key(key) == key


@pytest.mark.parametrize(
    "key",
    ["", "/abs", "a/../b", "..", "./a", "a//b", "a/", "a\\b", "a\x00b", "a\nb", "x" * 1025],
)
def test_validate_key_rejects(key: str) -> None:
    with pytest.raises(ValueError):
        validate_key(key)


def test_signatures_bind_key_expiry_and_secret() -> None:
    sig = sign_artifact("a/b.json", T0, SIGNING_KEY)
    assert verify_artifact("a/b.json", T0, sig, SIGNING_KEY, now=T0)
    assert not verify_artifact("a/b.json", T0, sig, SIGNING_KEY, now=T0 + 1)
    assert not verify_artifact("a/c.json", T0, sig, SIGNING_KEY, now=T0)
    assert not verify_artifact("a/b.json", T0 + 1, sig, SIGNING_KEY, now=T0)
    assert not verify_artifact("a/b.json", T0, sig, b"other key", now=T0)
    assert not verify_artifact("a/b.json", T0, sig.upper(), SIGNING_KEY, now=T0)
    assert not verify_artifact("a/b.json", T0, "é" * 64, SIGNING_KEY, now=T0)


def test_render_index_html_escapes_hostile_names() -> None:
    page = render_index_html(
        "<b>PR #7</b>",
        [
            ('<script>alert("x")</script>.json', 'https://h/a?x=1&sig="><script>', 2048),
            ("plain.txt", "plain.txt", 5),
        ],
    )
    assert "<script>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;.json" in page
    assert 'href="https://h/a?x=1&amp;sig=&quot;&gt;&lt;script&gt;"' in page
    assert "&lt;b&gt;PR #7&lt;/b&gt;" in page
    assert "2.0 KiB" in page
    assert "5 B" in page


def test_render_index_html_refuses_script_links() -> None:
    with pytest.raises(ValueError):
        render_index_html("t", [("x", "javascript:alert(1)", 1)])
    with pytest.raises(ValueError):
        render_index_html("t", [("x", "https://ok", 1)], {"x": "javascript:alert(1)"})


# --------------------------------------------------------------------------- local store


@dataclass
class FakeClock:
    now: float

    def __call__(self) -> float:
        return self.now


@dataclass
class LocalSite:
    root: Path
    store: LocalStore
    clock: FakeClock
    server: TestServer
    http: aiohttp.ClientSession

    async def fetch(self, link: str) -> tuple[int, bytes, dict[str, str]]:
        async with self.http.get(URL(link, encoded=True)) as resp:
            return resp.status, await resp.read(), dict(resp.headers)

    async def raw_get(self, target: str) -> tuple[int, bytes]:
        """Send the request line exactly as given: no client-side path normalisation."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.server.port)
        writer.write(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        data = await reader.read()
        writer.close()
        await writer.wait_closed()
        head, _, body = data.partition(b"\r\n\r\n")
        return int(head.split(b" ")[1]), body

    def signed_target(self, key: str, raw_path: str | None = None) -> str:
        expires = int(self.clock.now) + 60
        sig = sign_artifact(key, expires, SIGNING_KEY)
        return f"/artifacts/{raw_path or key}?expires={expires}&sig={sig}"


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[LocalSite]:
    root = tmp_path / "artifacts"
    root.mkdir()
    (tmp_path / "secret.txt").write_text("top secret")
    clock = FakeClock(T0)
    app = web.Application()
    app.add_routes(artifact_routes(root, SIGNING_KEY, clock=clock))
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    store = LocalStore(root, str(server.make_url("")), SIGNING_KEY, 3600, clock=clock)
    async with aiohttp.ClientSession() as http:
        yield LocalSite(root, store, clock, server, http)
    await store.aclose()
    await server.close()


async def test_local_put_link_and_serve(site: LocalSite, tmp_path: Path) -> None:
    big = tmp_path / "generated.jsonl"
    payload = os.urandom(3 * 1024 * 1024)
    big.write_bytes(payload)
    assert await site.store.put_file(f"{KEY}/generated.jsonl", big) == len(payload)
    assert await site.store.put_bytes(f"{KEY}/log.txt", b"hello\n", "text/plain") == 6
    assert await site.store.exists(f"{KEY}/generated.jsonl")
    assert not await site.store.exists(f"{KEY}/missing.json")
    assert not list(site.root.rglob("*.partial"))

    status, body, headers = await site.fetch(await site.store.link(f"{KEY}/generated.jsonl"))
    assert status == 200
    assert hashlib.sha256(body).digest() == hashlib.sha256(payload).digest()
    assert headers["Content-Type"] == "application/x-ndjson"
    assert headers["Content-Disposition"].startswith("attachment;")
    assert headers["X-Content-Type-Options"] == "nosniff"

    status, body, headers = await site.fetch(await site.store.link(f"{KEY}/log.txt"))
    assert (status, body) == (200, b"hello\n")
    assert headers["Content-Type"] == "text/plain; charset=utf-8"
    assert headers["Content-Disposition"] == "inline"


async def test_local_html_gets_strict_csp(site: LocalSite) -> None:
    page = render_index_html("job", [("a<b>.json", "a.json", 1)])
    await site.store.put_bytes(f"{KEY}/index.html", page.encode(), "text/html")
    status, body, headers = await site.fetch(await site.store.link(f"{KEY}/index.html"))
    assert (status, body.decode()) == (200, page)
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert headers["Content-Security-Policy"] == "default-src 'none'; style-src 'unsafe-inline'"
    assert headers["Content-Disposition"] == "inline"


async def test_local_link_format_quotes_key(site: LocalSite) -> None:
    key = f"{KEY}/my file ü.json"
    await site.store.put_bytes(key, b"{}", "application/json")
    link = await site.store.link(key)
    parts = urlsplit(link)
    assert f"{parts.scheme}://{parts.netloc}" == str(site.server.make_url("")).rstrip("/")
    assert parts.path == f"/artifacts/{KEY}/my%20file%20%C3%BC.json"
    query = parse_qs(parts.query)
    assert query["expires"] == [str(T0 + 3600)]
    assert verify_artifact(key, T0 + 3600, query["sig"][0], SIGNING_KEY, now=T0)
    assert (await site.fetch(link))[:2] == (200, b"{}")


async def test_local_overwrite_replaces_content(site: LocalSite) -> None:
    await site.store.put_bytes("a/x.txt", b"first", "text/plain")
    await site.store.put_bytes("a/x.txt", b"second", "text/plain")
    assert (site.root / "a" / "x.txt").read_bytes() == b"second"
    assert sorted(p.name for p in (site.root / "a").iterdir()) == ["x.txt"]


async def test_local_expired_link_is_refused(site: LocalSite) -> None:
    await site.store.put_bytes("a/x.txt", b"data", "text/plain")
    link = await site.store.link("a/x.txt")
    site.clock.now = T0 + 3600
    assert (await site.fetch(link))[:2] == (200, b"data")
    site.clock.now = T0 + 3601
    status, body, _ = await site.fetch(link)
    assert status == 403
    assert b"expired" in body


async def test_local_bad_signatures_are_refused(site: LocalSite) -> None:
    await site.store.put_bytes("a/x.txt", b"data", "text/plain")
    await site.store.put_bytes("a/y.txt", b"other", "text/plain")
    link = await site.store.link("a/x.txt")
    sig = parse_qs(urlsplit(link).query)["sig"][0]
    tampered = link.replace(sig, ("0" if sig[0] != "0" else "1") + sig[1:])
    later = link.replace(f"expires={T0 + 3600}", f"expires={T0 + 7200}")
    other_file = link.replace("a/x.txt", "a/y.txt")
    unsigned = link.split("?")[0]
    for bad in (tampered, later, other_file, unsigned, f"{unsigned}?expires=abc&sig={sig}"):
        status, body, _ = await site.fetch(bad)
        assert status == 403, bad
        assert b"data" not in body and b"other" not in body


@pytest.mark.parametrize(
    "raw_path",
    [
        "../secret.txt",
        "a/../../secret.txt",
        "%2e%2e/secret.txt",
        "a/%2E%2E/%2e%2e/secret.txt",
        "a%2F..%2F..%2Fsecret.txt",
        "..%5csecret.txt",
        "a//secret.txt",
        "%00secret.txt",
    ],
)
async def test_local_traversal_is_refused_even_when_signed(site: LocalSite, raw_path: str) -> None:
    # Sign exactly what the server will see decoded, so only the path checks stand in the way.
    key = (
        raw_path.replace("%2e", ".")
        .replace("%2E", ".")
        .replace("%2F", "/")
        .replace("%5c", "\\")
        .replace("%00", "\x00")
    )
    status, body = await site.raw_get(site.signed_target(key, raw_path))
    assert status == 400
    assert b"top secret" not in body


async def test_local_symlinks_out_of_root_are_refused(site: LocalSite, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("top secret")
    (site.root / "a").mkdir()
    (site.root / "a" / "file-link.txt").symlink_to(tmp_path / "secret.txt")
    (site.root / "a" / "dir-link").symlink_to(outside, target_is_directory=True)
    (site.root / "a" / "real.txt").write_text("inside")
    (site.root / "a" / "inside-link.txt").symlink_to(site.root / "a" / "real.txt")

    for key in ("a/file-link.txt", "a/dir-link/secret.txt"):
        status, body = await site.raw_get(site.signed_target(key))
        assert status == 403, key
        assert b"top secret" not in body
    status, body = await site.raw_get(site.signed_target("a/inside-link.txt"))
    assert (status, body) == (200, b"inside")


async def test_local_compressed_sibling_cannot_escape(site: LocalSite, tmp_path: Path) -> None:
    await site.store.put_bytes("a/data.json", b"{}", "application/json")
    (site.root / "a" / "data.json.gz").symlink_to(tmp_path / "secret.txt")
    status, body, _ = await site.fetch(await site.store.link("a/data.json"))
    assert status == 403
    assert b"top secret" not in body


async def test_local_missing_and_directory_are_404(site: LocalSite) -> None:
    await site.store.put_bytes("a/b/x.txt", b"x", "text/plain")
    assert (await site.fetch(await site.store.link("a/missing.txt")))[0] == 404
    assert (await site.fetch(await site.store.link("a/b")))[0] == 404


async def test_local_store_rejects_bad_keys(site: LocalSite, tmp_path: Path) -> None:
    for key in ("../x", "/abs", "a//b"):
        with pytest.raises(ValueError):
            await site.store.put_bytes(key, b"x", "text/plain")
        with pytest.raises(ValueError):
            await site.store.link(key)
        with pytest.raises(ValueError):
            await site.store.exists(key)
    assert not (tmp_path / "x").exists()


async def test_local_store_write_errors(site: LocalSite, tmp_path: Path) -> None:
    outside = tmp_path / "outside-write"
    outside.mkdir()
    (site.root / "escape").symlink_to(outside, target_is_directory=True)
    for key in ("escape/x.txt", "escape/new/x.txt"):
        with pytest.raises(StorageError, match=key.replace(".", r"\.")):
            await site.store.put_bytes(key, b"x", "text/plain")
    assert list(outside.iterdir()) == []
    with pytest.raises(StorageError, match="No such file"):
        await site.store.put_file("a/missing.txt", tmp_path / "does-not-exist")


async def test_local_get_file_and_list_keys(site: LocalSite, tmp_path: Path) -> None:
    payload = os.urandom(3 * 1024 * 1024 + 17)
    await site.store.put_bytes(f"{KEY}/model/model.safetensors", payload, "x/y")
    await site.store.put_bytes(f"{KEY}/model/model.json", b"{}", "application/json")
    await site.store.put_bytes(f"{KEY}-other/x.txt", b"x", "text/plain")
    dest = tmp_path / "down" / "weights.safetensors"
    assert await site.store.get_file(f"{KEY}/model/model.safetensors", dest) == len(payload)
    assert dest.read_bytes() == payload
    assert [p.name for p in dest.parent.iterdir()] == ["weights.safetensors"]  # no temp left

    assert await site.store.list_keys(f"{KEY}/model/") == [
        f"{KEY}/model/model.json",
        f"{KEY}/model/model.safetensors",
    ]
    assert await site.store.list_keys(f"{KEY}/") == [
        f"{KEY}/model/model.json",
        f"{KEY}/model/model.safetensors",
    ]
    assert len(await site.store.list_keys(KEY)) == 3  # a plain string prefix, as in S3
    assert await site.store.list_keys("nothing/here/") == []

    with pytest.raises(StorageError, match="could not read"):
        await site.store.get_file(f"{KEY}/model/missing.bin", tmp_path / "missing.bin")
    assert not (tmp_path / "missing.bin").exists()
    with pytest.raises(ValueError):
        await site.store.list_keys("../")


async def test_local_get_file_refuses_symlinks_out_of_root(site: LocalSite, tmp_path: Path) -> None:
    (site.root / "leak.txt").symlink_to(tmp_path / "secret.txt")
    with pytest.raises(StorageError):
        await site.store.get_file("leak.txt", tmp_path / "got.txt")
    assert not (tmp_path / "got.txt").exists()
    assert await site.store.list_keys("") == []


def test_open_store_picks_backend(tmp_path: Path) -> None:
    common: dict[str, Any] = {
        "public_url": "https://bot.example",
        "signing_key": SIGNING_KEY,
        "link_expiry": 60,
        "s3_endpoint_url": None,
    }
    local = open_store(parse_artifacts_url(f"file://{tmp_path}"), **common)
    assert isinstance(local, LocalStore)
    remote = open_store(parse_artifacts_url("s3://bucket/p"), **common)
    assert isinstance(remote, S3Store)
    assert remote.object_key("x/y.json") == "p/x/y.json"


# --------------------------------------------------------------------------- S3 store


@pytest.fixture
async def s3_client(s3_server: S3Server) -> AsyncIterator[S3Client]:
    session = aioboto3.Session()
    async with session.client(
        "s3", endpoint_url=s3_server.endpoint_url, region_name=s3_server.region
    ) as client:
        yield client


MakeStore = Callable[..., S3Store]


@pytest.fixture
async def make_s3_store(s3_server: S3Server) -> AsyncIterator[MakeStore]:
    stores: list[S3Store] = []

    def make(bucket: str, prefix: str = "", **options: Any) -> S3Store:
        options.setdefault("endpoint_url", s3_server.endpoint_url)
        options.setdefault("link_expiry", 3600)
        store = S3Store(S3Config(bucket, prefix, **options))
        stores.append(store)
        return store

    yield make
    for store in stores:
        await store.aclose()


async def download(link: str) -> tuple[int, bytes, str]:
    async with aiohttp.ClientSession() as http, http.get(URL(link, encoded=True)) as resp:
        return resp.status, await resp.read(), resp.headers.get("Content-Type", "")


async def test_s3_put_bytes_exists_and_link(
    make_s3_store: MakeStore, s3_bucket: str, s3_client: S3Client
) -> None:
    store = make_s3_store(s3_bucket, "runs")
    key = f"{KEY}/result.json"
    assert not await store.exists(key)
    assert await store.put_bytes(key, b'{"ok": true}', "application/json") == 12
    assert await store.exists(key)
    listed = await s3_client.list_objects_v2(Bucket=s3_bucket)
    assert [obj["Key"] for obj in listed["Contents"]] == [f"runs/{key}"]

    status, body, content_type = await download(await store.link(key))
    assert (status, body, content_type) == (200, b'{"ok": true}', "application/json")


async def test_s3_put_file_streams_in_parts(
    make_s3_store: MakeStore, s3_bucket: str, s3_client: S3Client, tmp_path: Path
) -> None:
    store = make_s3_store(
        s3_bucket, multipart_threshold=S3_MIN_PART_SIZE, part_size=S3_MIN_PART_SIZE
    )
    payload = os.urandom(2 * S3_MIN_PART_SIZE + 12345)
    path = tmp_path / "generated.jsonl"
    path.write_bytes(payload)
    assert await store.put_file(f"{KEY}/generated.jsonl", path) == len(payload)

    head = await s3_client.head_object(Bucket=s3_bucket, Key=f"{KEY}/generated.jsonl")
    assert head["ETag"].endswith('-3"'), head["ETag"]  # a multipart upload of three parts
    assert head["ContentLength"] == len(payload)
    assert head["ContentType"] == "application/x-ndjson"
    assert "Uploads" not in await s3_client.list_multipart_uploads(Bucket=s3_bucket)

    status, body, content_type = await download(await store.link(f"{KEY}/generated.jsonl"))
    assert status == 200
    assert content_type == "application/x-ndjson"
    assert hashlib.sha256(body).digest() == hashlib.sha256(payload).digest()


async def test_s3_get_file_and_list_keys(
    make_s3_store: MakeStore, s3_bucket: str, tmp_path: Path
) -> None:
    store = make_s3_store(s3_bucket, "runs")
    payload = os.urandom(3 * 1024 * 1024 + 17)
    await store.put_bytes(f"{KEY}/model/model.safetensors", payload, "application/octet-stream")
    await store.put_bytes(f"{KEY}/model/model.json", b"{}", "application/json")
    await store.put_bytes(f"{KEY}-other/x.txt", b"x", "text/plain")
    dest = tmp_path / "down" / "weights.safetensors"
    assert await store.get_file(f"{KEY}/model/model.safetensors", dest) == len(payload)
    assert hashlib.sha256(dest.read_bytes()).digest() == hashlib.sha256(payload).digest()
    assert [p.name for p in dest.parent.iterdir()] == ["weights.safetensors"]

    assert await store.list_keys(f"{KEY}/model/") == [
        f"{KEY}/model/model.json",
        f"{KEY}/model/model.safetensors",
    ]
    assert len(await store.list_keys(KEY)) == 3
    assert len(await store.list_keys("")) == 3
    assert await store.list_keys("nothing/") == []

    with pytest.raises(StorageError, match=r"download of .*missing"):
        await store.get_file(f"{KEY}/missing.bin", tmp_path / "missing.bin")
    assert list(tmp_path.glob("*missing*")) == []


async def test_s3_list_keys_pages(
    make_s3_store: MakeStore, s3_bucket: str, s3_client: S3Client
) -> None:
    store = make_s3_store(s3_bucket)
    keys = [f"ckpt/part-{n:04d}" for n in range(1001)]  # more than one page of 1000
    for key in keys:
        await s3_client.put_object(Bucket=s3_bucket, Key=key, Body=b"")
    assert await store.list_keys("ckpt/") == keys


async def test_s3_small_file_is_one_put(
    make_s3_store: MakeStore, s3_bucket: str, s3_client: S3Client, tmp_path: Path
) -> None:
    store = make_s3_store(s3_bucket)
    path = tmp_path / "generate.log"
    path.write_bytes(b"line 1\nline 2\n")
    assert await store.put_file(f"{KEY}/generate.log", path, "text/plain; charset=utf-8") == 14
    head = await s3_client.head_object(Bucket=s3_bucket, Key=f"{KEY}/generate.log")
    assert "-" not in head["ETag"]
    assert head["ContentType"] == "text/plain; charset=utf-8"


async def test_s3_link_expiry_is_clamped_to_seven_days(
    make_s3_store: MakeStore, s3_bucket: str
) -> None:
    store = make_s3_store(s3_bucket, link_expiry=30 * 24 * 3600)
    link = await store.link("a/b.json")
    assert parse_qs(urlsplit(link).query)["X-Amz-Expires"] == [str(S3_MAX_LINK_EXPIRY)]


async def test_s3_errors_are_storage_errors(
    make_s3_store: MakeStore, s3_server: S3Server, tmp_path: Path
) -> None:
    store = make_s3_store("no-such-bucket-here")
    with pytest.raises(StorageError, match="NoSuchBucket") as caught:
        await store.put_bytes("a/b.json", b"{}", "application/json")
    assert s3_server.secret_access_key not in str(caught.value)
    with pytest.raises(StorageError, match="No such file"):
        await store.put_file("a/b.json", tmp_path / "missing")
    with pytest.raises(ValueError):
        await store.put_bytes("../b.json", b"{}", "application/json")
    await store.aclose()
    with pytest.raises(StorageError, match="closed"):
        await store.exists("a/b.json")


@pytest.fixture
async def stalled_endpoint() -> AsyncIterator[str]:
    """A TCP server that accepts connections and never answers."""
    release = asyncio.Event()

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await release.wait()
        writer.close()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    release.set()
    server.close()
    await server.wait_closed()


async def test_s3_read_timeout_surfaces(make_s3_store: MakeStore, stalled_endpoint: str) -> None:
    store = make_s3_store("bucket", endpoint_url=stalled_endpoint, read_timeout=0.2, max_attempts=1)
    with pytest.raises(StorageError, match="did not answer in time"):
        await store.exists("a/b.json")


async def test_s3_overall_timeout_surfaces(make_s3_store: MakeStore, stalled_endpoint: str) -> None:
    # botocore sends "Expect: 100-continue" on PutObject, and aiohttp's read timeout does not
    # cover the wait for the "100 Continue": only the store's own timeout ends this upload.
    store = make_s3_store("bucket", endpoint_url=stalled_endpoint, timeout=0.5)
    with pytest.raises(StorageError, match=r"timed out after 0\.5 s"):
        await store.put_bytes("a/b.json", b"{}", "application/json")


@dataclass
class Proxy:
    url: str
    seen: list[str]
    stalled: asyncio.Event  # set once the upload of a part 2 is being held


@pytest.fixture
async def stalling_proxy(s3_server: S3Server) -> AsyncIterator[Proxy]:
    """A reverse proxy to moto that never answers the upload of part 2 of any multipart upload."""
    release, stalled = asyncio.Event(), asyncio.Event()
    seen: list[str] = []
    skip = {"content-length", "transfer-encoding", "connection", "content-encoding", "expect"}

    async def forward(request: web.Request) -> web.Response:
        seen.append(f"{request.method} {'&'.join(sorted(request.query))}")
        if request.method == "PUT" and request.query.get("partNumber") == "2":
            stalled.set()
            await release.wait()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in skip}
        async with (
            aiohttp.ClientSession(auto_decompress=False) as http,
            http.request(
                request.method,
                URL(s3_server.endpoint_url + request.path_qs, encoded=True),
                headers=headers,
                data=io.BytesIO(await request.read()),
            ) as resp,
        ):
            body = await resp.read()
            out = {k: v for k, v in resp.headers.items() if k.lower() not in skip}
            return web.Response(status=resp.status, body=body, headers=out)

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", forward)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield Proxy(str(server.make_url("")).rstrip("/"), seen, stalled)
    release.set()
    await server.close()


async def test_s3_timed_out_multipart_upload_is_aborted(
    make_s3_store: MakeStore,
    s3_bucket: str,
    s3_client: S3Client,
    stalling_proxy: Proxy,
    tmp_path: Path,
) -> None:
    """The timeout ends a stalled multipart upload and leaves nothing behind. Where the
    timeout lands (before or after the upload was created) depends on the machine's speed:
    either way no upload is left open and no object exists."""
    store = make_s3_store(
        s3_bucket,
        endpoint_url=stalling_proxy.url,
        timeout=2.0,
        multipart_threshold=S3_MIN_PART_SIZE,
        part_size=S3_MIN_PART_SIZE,
    )
    path = tmp_path / "big.bin"
    path.write_bytes(os.urandom(3 * S3_MIN_PART_SIZE))
    with pytest.raises(StorageError, match="timed out"):
        await store.put_file("a/big.bin", path)
    if "POST uploads" in stalling_proxy.seen:
        assert "DELETE uploadId" in stalling_proxy.seen  # the abort
    assert "Uploads" not in await s3_client.list_multipart_uploads(Bucket=s3_bucket)
    assert not await store.exists("a/big.bin")


async def test_s3_multipart_upload_stopped_mid_part_is_aborted(
    make_s3_store: MakeStore,
    s3_bucket: str,
    s3_client: S3Client,
    stalling_proxy: Proxy,
    tmp_path: Path,
) -> None:
    """Stopped while part 2 hangs (what a timeout does: it cancels the upload), the store
    aborts the multipart upload it created. Waits on the stall, not on a clock."""
    store = make_s3_store(
        s3_bucket,
        endpoint_url=stalling_proxy.url,
        multipart_threshold=S3_MIN_PART_SIZE,
        part_size=S3_MIN_PART_SIZE,
    )
    path = tmp_path / "big.bin"
    path.write_bytes(os.urandom(3 * S3_MIN_PART_SIZE))
    upload = asyncio.create_task(store.put_file("a/big.bin", path))
    await stalling_proxy.stalled.wait()
    upload.cancel()
    with pytest.raises(asyncio.CancelledError):
        await upload
    assert "POST uploads" in stalling_proxy.seen
    assert "DELETE uploadId" in stalling_proxy.seen  # the abort
    assert "Uploads" not in await s3_client.list_multipart_uploads(Bucket=s3_bucket)
    assert not await store.exists("a/big.bin")
