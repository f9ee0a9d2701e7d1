"""Dispatcher: acts on stored webhook intents, doing every GitHub call the webhook skipped.

`consumer` runs the loop and routes each intent; `commands` routes comment commands through
the command table; `jobs` starts jobs (gates, record, check run, queue); `stopping` cancels
and supersedes; `pull_requests` and `check_runs` handle those events; `access` asks who may;
`replies` posts each reply once. The decisions themselves are pure: `core.dispatch_rules`.
"""

from __future__ import annotations

from instruct_lab_bot.services.dispatcher.consumer import Dispatcher

__all__ = ["Dispatcher"]
