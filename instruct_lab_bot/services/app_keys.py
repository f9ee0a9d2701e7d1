"""Typed keys of the aiohttp application's shared state, in a module of their own so that the
server and the pages it mounts (status page, artifacts) share them without importing each other."""

from __future__ import annotations

import asyncio

from aiohttp import web

from instruct_lab_bot.adapters.github import GitHubApp
from instruct_lab_bot.adapters.redis.queue import Queue
from instruct_lab_bot.core.settings import Settings
from instruct_lab_bot.services.metrics import ServerMetrics

SETTINGS = web.AppKey("settings", Settings)
QUEUE = web.AppKey("queue", Queue)
GITHUB = web.AppKey("github", GitHubApp)
DISPATCHER_TASK = web.AppKey("dispatcher_task", asyncio.Task[None])
METRICS = web.AppKey("metrics", ServerMetrics)
