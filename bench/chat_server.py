"""The bot's server app with the chat proxy in front of one fixed model server, for the chat
benchmark: `python -m bench.chat_server PORT REDIS_URL MODEL_URL WORK TOKEN_FILE`. It serves a
PR model (a chat record like `serve` leaves) and writes the chat link's token to TOKEN_FILE."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from instruct_lab_bot.core.jobs import Job, State
from instruct_lab_bot.core.refs import PullRequestRef, RepoRef
from instruct_lab_bot.core.serving import ModelRef, ServedModel, ServeState
from instruct_lab_bot.core.settings import Settings
from instruct_lab_bot.services.server import create_app
from instruct_lab_bot.services.serving.backend import ServingBackend
from instruct_lab_bot.services.serving.proxy import CHAT

OWNER, REPO, NUMBER = "instructlab", "taxonomy", 7


class FixedBackend:
    """Every PR model is the one server at `url`, always up."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.models: dict[PullRequestRef, ServedModel] = {}

    async def deploy(self, model: ModelRef) -> ServedModel:
        served = ServedModel(model.pull, "bench-pr-model", model.train_job, ServeState.READY,
                             url=self.url, created_at=time.time())  # fmt: skip
        self.models[model.pull] = served
        return served

    async def status(self, pull: PullRequestRef) -> ServedModel | None:
        return self.models.get(pull)

    async def ready_url(self, pull: PullRequestRef, within: float) -> str:
        return self.url

    async def remove(self, pull: PullRequestRef) -> bool:
        return self.models.pop(pull, None) is not None

    async def list_served(self) -> list[ServedModel]:
        return list(self.models.values())

    async def aclose(self) -> None:
        return None


def main() -> None:
    port, redis_url, model_url, work, token_file = sys.argv[1:6]
    settings = Settings(
        redis_url=redis_url,
        artifacts_url=f"file://{Path(work) / 'artifacts'}",
        public_url=f"http://127.0.0.1:{port}",
        chat_user_rate=1_000_000,
        chat_model_rate=1_000_000,
        log_format="json",
    )
    backend = FixedBackend(model_url)

    @contextlib.asynccontextmanager
    async def serving(_settings: Settings) -> AsyncIterator[ServingBackend | None]:
        yield backend

    app = create_app(settings, dispatcher=False, serving=serving, chat=True)

    async def seed(app: web.Application) -> None:
        chat = app[CHAT]
        train = Job("bench-train", "train", 1, OWNER, REPO, NUMBER, "bench", head_sha="0" * 40,
                    state=State.SUCCEEDED)  # fmt: skip
        record, _ = await chat.deploy(train_pull(), train, [], "bench")
        links = await chat.links(record, "")
        Path(token_file).write_text(links.chat_link.split("token=")[1])

    app.on_startup.append(seed)
    web.run_app(app, host="127.0.0.1", port=int(port), print=None, access_log=None)


def train_pull() -> PullRequestRef:
    return RepoRef(OWNER, REPO).pull(NUMBER)


if __name__ == "__main__":
    main()
