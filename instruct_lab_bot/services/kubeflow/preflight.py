"""`doctor`'s check of the kubeflow train backend: kfp installed (a worker compiles the
pipeline) and the Data Science Pipelines API answering this worker's token."""

from __future__ import annotations

import importlib.util

import aiohttp

from instruct_lab_bot.adapters.kubeflow import KfpClient, KfpConfig, KfpError, KfpUnavailable
from instruct_lab_bot.core.preflight import CheckResult, failed, passed
from instruct_lab_bot.core.retry import RetryPolicy
from instruct_lab_bot.core.settings import Settings

__all__ = ["check_kubeflow"]

NAME = "kubeflow pipelines"
FIX_EXTRA = "install the bot with its `kubeflow` extra: pip install 'instruct-lab-bot[kubeflow]'"
FIX_API = (
    "check ILAB_BOT_KFP_URL, ILAB_BOT_KFP_CA_FILE and that ILAB_BOT_KFP_TOKEN_FILE's service "
    "account may use the pipeline server (docs/deploy.md, section 16)"
)


async def check_kubeflow(settings: Settings) -> CheckResult:
    if (
        importlib.util.find_spec("kfp") is None
        or importlib.util.find_spec("kfp.kubernetes") is None
    ):
        return failed(NAME, "the kfp SDK is not installed", FIX_EXTRA, fatal=True)
    quick = RetryPolicy(deadline=10.0, max_attempts=2, retry_on=(KfpUnavailable,))
    config = KfpConfig(
        settings.kfp_url,
        settings.kfp_token_file,
        settings.kfp_ca_file,
        settings.kfp_namespace,
        timeout=10.0,
        policy=quick,
    )
    client = KfpClient(config)
    try:
        runs = await client.can_list_runs()
    except (KfpError, OSError, aiohttp.ClientError, TimeoutError) as exc:
        return failed(NAME, f"{settings.kfp_url}: {exc}"[:300], FIX_API)
    finally:
        await client.aclose()
    return passed(NAME, f"{settings.kfp_url} answers ({runs} runs)")
