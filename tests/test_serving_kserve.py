"""The `kserve` backend through the real Kubernetes client against the API emulator, which
validates every object against KServe's schemas and plays the controller."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from instruct_lab_bot.adapters.kubernetes import KubeError, open_kube
from instruct_lab_bot.core import serve_names as names
from instruct_lab_bot.core.refs import PullRequestRef, RepoRef
from instruct_lab_bot.core.serving import ModelRef, ServeState
from instruct_lab_bot.core.settings import Settings
from instruct_lab_bot.services.serving import isvc_options, open_serving_backend
from instruct_lab_bot.services.serving.backend import ServingError
from instruct_lab_bot.services.serving.kserve import KServeBackend
from instruct_lab_bot.services.serving.local import LocalBackend
from instruct_lab_bot.services.serving.sweep import Why, sweep
from testkit.k8s_emulator import K8sEmulator
from testkit.kserve_schema import ensure_kserve_schema
from tests.fixtures.bot import BOT_NAME

REPO_ROOT = Path(__file__).resolve().parent.parent
NS = "models"
PULL = RepoRef("instructlab", "taxonomy").pull(42)


def model(pull: PullRequestRef = PULL, job: str = "train-1") -> ModelRef:
    prefix = f"jobs/{job}/model/"
    return ModelRef(pull, job, prefix, f"s3://bucket/{prefix}", "granite-7b", "gen-1")


@pytest.fixture(scope="session")
def schema() -> Path:
    return ensure_kserve_schema(REPO_ROOT / ".cache")


@pytest.fixture
async def emulator(schema: Path) -> AsyncIterator[K8sEmulator]:
    emu = K8sEmulator(schema, model_url="http://127.0.0.1:9/model")
    await emu.start()
    yield emu
    await emu.close()


@pytest.fixture
async def backend(emulator: K8sEmulator, tmp_path: Path) -> AsyncIterator[KServeBackend]:
    kube = await open_kube(str(emulator.kubeconfig(tmp_path / "kubeconfig")))
    settings = Settings(username=BOT_NAME, serve_namespace=NS)
    found = KServeBackend(kube, isvc_options(settings), poll_interval=0.001, touch_every=0)
    yield found
    await found.aclose()


async def test_deploy_creates_a_valid_scale_to_zero_inference_service(
    backend: KServeBackend, emulator: K8sEmulator
) -> None:
    served = await backend.deploy(model())
    assert served.state is ServeState.DEPLOYING and served.name == names.served_name(PULL)
    obj = emulator.isvcs[(NS, served.name)].obj
    predictor = obj["spec"]["predictor"]
    assert predictor["minReplicas"] == 0
    assert predictor["model"]["storageUri"] == "s3://bucket/jobs/train-1/model/"
    assert predictor["model"]["runtime"] == "instruct-lab-bot-vllm"
    assert predictor["serviceAccountName"] == "instruct-lab-bot-models"
    assert predictor["model"]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    annotations = obj["metadata"]["annotations"]
    assert annotations[names.ANNOTATION_DEPLOYMENT_MODE] == "Serverless"
    assert annotations[names.ANNOTATION_RETENTION] == "600s"
    assert annotations[names.ANNOTATION_TRAIN_JOB] == "train-1"
    assert annotations[names.ANNOTATION_REPO] == "instructlab/taxonomy"
    assert obj["metadata"]["labels"][names.LABEL_PR] == "42"
    assert emulator.refused == []


async def test_ready_url_waits_for_ready_then_scaled_to_zero(
    backend: KServeBackend, emulator: K8sEmulator
) -> None:
    emulator.ready_after = 4
    await backend.deploy(model())
    assert await backend.ready_url(PULL, within=60) == "http://127.0.0.1:9/model"
    status = await backend.status(PULL)
    assert status is not None and status.state is ServeState.READY and status.url
    name = names.served_name(PULL)
    emulator.scale_to_zero(name, NS)
    status = await backend.status(PULL)
    assert status is not None and status.state is ServeState.SCALED_TO_ZERO
    assert [m.state for m in await backend.list_served()] == [ServeState.SCALED_TO_ZERO]
    assert status.cold_start_seconds == 120.0
    # Knative's activator holds the request during the cold start: the URL comes at once.
    assert await backend.ready_url(PULL, within=60) == "http://127.0.0.1:9/model"
    touched = emulator.isvcs[(NS, name)].obj["metadata"]["annotations"]
    assert float(touched[names.ANNOTATION_LAST_REQUEST]) >= status.last_request_at


async def test_a_new_train_replaces_the_model(
    backend: KServeBackend, emulator: K8sEmulator
) -> None:
    await backend.deploy(model(job="train-1"))
    await backend.ready_url(PULL, within=60)
    served = await backend.deploy(model(job="train-2"))
    assert served.train_job == "train-2" and served.state is ServeState.DEPLOYING
    [entry] = emulator.isvcs.values()
    assert entry.obj["metadata"]["generation"] == 2
    assert entry.obj["spec"]["predictor"]["model"]["storageUri"].endswith("train-2/model/")
    await backend.ready_url(PULL, within=60)


@pytest.mark.parametrize(("fault", "words"), [("quota", "ResourceQuota"), ("rbac", "rbac.yaml")])
async def test_cluster_refusal_says_what_the_admin_must_fix(
    backend: KServeBackend, emulator: K8sEmulator, fault: str, words: str
) -> None:
    emulator.faults.refuse_create = fault
    with pytest.raises(ServingError) as caught:
        await backend.deploy(model())
    assert caught.value.not_your_fault
    assert words in str(caught.value) and "not your fault" in str(caught.value)
    assert emulator.isvcs == {}


async def test_image_pull_error_fails_at_once_with_the_reason(
    backend: KServeBackend, emulator: K8sEmulator
) -> None:
    emulator.faults.image_pull_error = True
    await backend.deploy(model())
    with pytest.raises(ServingError, match="pulling image") as caught:
        await backend.ready_url(PULL, within=3600)
    assert caught.value.not_your_fault
    status = await backend.status(PULL)
    assert status is not None and status.state is ServeState.FAILED


async def test_never_ready_gives_up_after_within(
    backend: KServeBackend, emulator: K8sEmulator
) -> None:
    emulator.faults.never_ready = True
    await backend.deploy(model())
    with pytest.raises(ServingError, match="still starting"):
        await backend.ready_url(PULL, within=0.05)


async def test_remove_and_list_only_the_bots_models(
    backend: KServeBackend, emulator: K8sEmulator
) -> None:
    other = RepoRef("instructlab", "taxonomy").pull(43)
    await backend.deploy(model())
    await backend.deploy(model(other, "train-9"))
    assert {m.pull for m in await backend.list_served()} == {PULL, other}
    assert await backend.remove(PULL)
    assert not await backend.remove(PULL)
    assert await backend.status(PULL) is None
    assert emulator.deleted == [names.served_name(PULL)]
    assert [m.pull for m in await backend.list_served()] == [other]


async def test_a_name_taken_by_another_pr_is_left_alone(
    backend: KServeBackend, emulator: K8sEmulator
) -> None:
    await backend.deploy(model())
    entry = emulator.isvcs[(NS, names.served_name(PULL))]
    entry.obj["metadata"]["annotations"][names.ANNOTATION_PULL] = "999"
    assert await backend.status(PULL) is None
    assert not await backend.remove(PULL)
    with pytest.raises(ServingError, match="another pull request"):
        await backend.deploy(model())


async def test_the_emulator_refuses_an_invalid_object(
    backend: KServeBackend, emulator: K8sEmulator
) -> None:
    body: dict[str, object] = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
    }
    body |= {"metadata": {"name": "Bad_Name"}, "spec": {"predictor": {"minReplica": 0}}}
    with pytest.raises(KubeError) as caught:
        await backend.kube.create_isvc(NS, body)
    assert caught.value.status == 422
    assert "minReplica" in caught.value.message and "DNS-1035" in caught.value.message


async def test_a_wrong_token_is_refused(emulator: K8sEmulator, tmp_path: Path) -> None:
    emulator.token = "another"
    kube = await open_kube(str(emulator.kubeconfig(tmp_path / "k")))
    emulator.token = "emulator-token"
    try:
        with pytest.raises(KubeError) as caught:
            await kube.list_isvc(NS, "")
        assert caught.value.status == 401
    finally:
        await kube.aclose()


async def test_sweep_removes_what_no_open_pr_needs(
    backend: KServeBackend, emulator: K8sEmulator, tmp_path: Path
) -> None:
    """After a restart (a new client), the sweep finds every model through the cluster and
    removes a closed PR's, a failed one, a never-ready one and an idle one; the rest stay."""
    created = 1_000_000.0
    backend.clock = lambda: created
    repo = RepoRef("instructlab", "taxonomy")
    closed, idle, fresh, stuck = (repo.pull(n) for n in (1, 2, 3, 4))
    for pull in (closed, idle, fresh):
        await backend.deploy(model(pull))
    emulator.faults.never_ready = True
    await backend.deploy(model(stuck))
    for pull in (closed, idle, fresh):
        await backend.ready_url(pull, within=60)
    fresh_name = names.served_name(fresh)
    emulator.isvcs[(NS, fresh_name)].obj["metadata"]["annotations"][
        names.ANNOTATION_LAST_REQUEST
    ] = f"{created + 3000:.0f}"

    async def is_open(pull: PullRequestRef) -> bool:
        return pull != closed

    kube = await open_kube(str(emulator.kubeconfig(tmp_path / "restarted")))
    restarted = KServeBackend(kube, backend.options)
    try:
        removed = await sweep(
            restarted, is_open, now=created + 3600 + 1, ttl=3600, ready_timeout=1800
        )
    finally:
        await restarted.aclose()
    assert {(r.model.pull, r.why) for r in removed} == {
        (closed, Why.PR_CLOSED),
        (idle, Why.IDLE),
        (stuck, Why.NEVER_READY),
    }
    assert [key[1] for key in emulator.isvcs] == [fresh_name]


async def test_sweep_removes_a_failed_model(backend: KServeBackend, emulator: K8sEmulator) -> None:
    emulator.faults.image_pull_error = True
    emulator.ready_after = 1  # the controller's verdict comes with the first look
    await backend.deploy(model())

    async def is_open(pull: PullRequestRef) -> bool:
        return True

    [removed] = await sweep(backend, is_open, now=backend.clock(), ttl=3600, ready_timeout=3600)
    assert removed.why is Why.FAILED and "pulling image" in removed.model.message
    assert emulator.isvcs == {}


async def test_scaled_to_zero_after_the_retention_and_woken_by_a_request(
    backend: KServeBackend, emulator: K8sEmulator
) -> None:
    """Knative (the emulator, on the test's clock) scales the model to zero once its last
    request is older than the retention annotation; a request records itself and wakes it."""
    now = [1_000_000.0]
    backend.clock = emulator.clock = lambda: now[0]
    backend.touch_every = 60
    await backend.deploy(model())
    url = await backend.ready_url(PULL, within=60)
    status = await backend.status(PULL)
    assert status is not None and status.state is ServeState.READY
    now[0] += 601  # retention 600 s
    status = await backend.status(PULL)
    assert status is not None and status.state is ServeState.SCALED_TO_ZERO
    assert await backend.ready_url(PULL, within=60) == url
    status = await backend.status(PULL)
    assert status is not None and status.state is ServeState.READY
    assert status.last_request_at == now[0]


async def test_core_objects_are_checked_with_kubernetes_validate(
    emulator: K8sEmulator,
) -> None:
    headers = {"Authorization": f"Bearer {emulator.token}"}
    url = f"{emulator.url}/api/v1/namespaces/{NS}/serviceaccounts"
    good = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "reader"}}
    bad = good | {"automountToken": False}  # misspelt
    async with aiohttp.ClientSession(headers=headers) as session:
        async with session.post(url, json=good) as answer:
            assert answer.status == 201
        async with session.post(url, json=bad) as answer:
            assert answer.status == 422
            assert "automountToken" in (await answer.json())["message"]


async def test_open_serving_backend_picks_the_configured_one(
    emulator: K8sEmulator, tmp_path: Path, redis_url: str
) -> None:
    kubeconfig = str(emulator.kubeconfig(tmp_path / "kubeconfig"))
    settings = Settings(username=BOT_NAME, serve_namespace=NS, serve_backend="kserve")
    async with open_serving_backend(settings, kubeconfig=kubeconfig) as backend:
        assert isinstance(backend, KServeBackend)
        await backend.deploy(model())
        assert [m.pull for m in await backend.list_served()] == [PULL]
    local = Settings(username=BOT_NAME, redis_url=redis_url)
    async with open_serving_backend(local) as backend:
        assert isinstance(backend, LocalBackend)
        await backend.deploy(model())
        assert [m.state for m in await backend.list_served()] == [ServeState.SCALED_TO_ZERO]
