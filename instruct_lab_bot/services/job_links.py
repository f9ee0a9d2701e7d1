"""The `links` command: fresh links to the files of a PR's latest job (or a named one).

With stable links (`ILAB_BOT_STABLE_LINKS`, the default) they are the bot's own signed
`/jobs/<id>/files/…` links; otherwise newly signed storage links, valid for
`ILAB_BOT_LINK_EXPIRY` from now.
"""

from __future__ import annotations

from instruct_lab_bot.adapters.redis.queue import Queue
from instruct_lab_bot.adapters.storage import StorageError, link_signing_key, open_store
from instruct_lab_bot.adapters.storage.local import CachedKey
from instruct_lab_bot.core.artifacts import (
    parse_artifacts_url,
    sign_stable,
    stable_link,
    validate_key,
    viewable,
)
from instruct_lab_bot.core.jobs import Job
from instruct_lab_bot.core.messages import links as wording
from instruct_lab_bot.core.refs import PullRequestRef
from instruct_lab_bot.core.settings import Settings


def file_names(job: Job) -> list[str]:
    """The stored names of a job's files (a cut last name, or any invalid one, is left out)."""
    names = []
    for name in job.artifact_names.split("\n"):
        try:
            names.append(validate_key(name))
        except ValueError:
            continue
    return names


def pick_job(jobs: list[Job], wanted: str) -> Job | None:
    """The named job, else the newest job that stored files."""
    if wanted:
        return next((job for job in jobs if job.id == wanted), None)
    with_files = [job for job in jobs if file_names(job)]
    return max(with_files, key=lambda job: (job.created_at, job.id), default=None)


async def links_text(settings: Settings, queue: Queue, pull: PullRequestRef, wanted: str) -> str:
    jobs = [j for j in await queue.get_jobs(await queue.pr_job_ids(pull)) if j.pull_request == pull]
    job = pick_job(jobs, wanted[:100])
    if job is None:
        return wording.no_job_for_links(wanted[:100])
    source = link_signing_key(settings, queue.shared_link_key)
    names = file_names(job)
    if settings.stable_links:
        key = await CachedKey(source).get()
        files = [
            (
                name,
                stable_link(settings.public_url, job.id, name, sign_stable(job.id, name, key)),
                stable_link(
                    settings.public_url, job.id, name, sign_stable(job.id, name, key), view=True
                )
                if viewable(name)
                else "",
            )
            for name in names
        ]
        return wording.links_reply(job.id, job.command, job.head_sha, files)
    store = open_store(
        parse_artifacts_url(settings.artifacts_url),
        public_url=settings.public_url,
        signing_key=source,
        link_expiry=settings.link_expiry,
        s3_endpoint_url=settings.s3_endpoint_url,
    )
    try:
        prefix = job.artifact_key_prefix()
        files = [(name, await store.link(prefix + name), "") for name in names]
    except StorageError:
        return wording.LINKS_STORE_DOWN
    finally:
        await store.aclose()
    return wording.links_reply(job.id, job.command, job.head_sha, files)
