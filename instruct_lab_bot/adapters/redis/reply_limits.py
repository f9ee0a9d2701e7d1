"""The reply limits of `core.reply_limits`, counted in Redis so every replica shares them."""

from __future__ import annotations

import os
import time
from typing import cast

from instruct_lab_bot.adapters.redis.base import RedisPart
from instruct_lab_bot.adapters.redis.keys import pr_replies_key, user_replies_key
from instruct_lab_bot.core.refs import PullRequestRef
from instruct_lab_bot.core.reply_limits import ReplyLimits, Silenced


class ReplyCounters(RedisPart):
    async def take_reply(
        self, limits: ReplyLimits, user: str, pull: PullRequestRef
    ) -> Silenced | None:
        """Count one reply to `user` on `pull`; the limit that silences it, else None."""
        member = f"{time.time():.6f}-{os.urandom(6).hex()}"
        answer = await self._script("reply_take")(
            keys=[user_replies_key(user), pr_replies_key(pull)],
            args=[
                int(limits.window * 1000),
                limits.per_user,
                limits.per_pull_request,
                member,
            ],
        )
        verdict = answer.decode() if isinstance(answer, bytes) else cast(str, answer)
        return None if verdict == "ok" else Silenced(verdict)
