"""The chat proxy's limits (pure): requests per minute and answers at once, per person and per
PR model. Kept in the server process (each replica enforces its own share); the clock is the
caller's, so the rules are tested without waiting."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

WINDOW = 60.0  # seconds of the per-minute rates
MAX_KEYS = 10_000  # people and models remembered at once (the oldest are forgotten first)


@dataclass
class RateWindow:
    """At most `limit` events per `window` seconds per key (a sliding log)."""

    limit: int
    window: float = WINDOW
    _log: dict[str, deque[float]] = field(default_factory=dict)

    def retry_after(self, key: str, now: float) -> float:
        """0 when one more event is allowed now (and counts it), else the seconds to wait."""
        times = self._log.pop(key, None) or deque()
        while times and times[0] <= now - self.window:
            times.popleft()
        if len(times) >= self.limit:
            self._log[key] = times
            return max(times[0] + self.window - now, 0.001)
        times.append(now)
        self._log[key] = times  # re-inserted: dict order is least recently used first
        while len(self._log) > MAX_KEYS:
            del self._log[next(iter(self._log))]
        return 0.0


@dataclass
class Slots:
    """At most `limit` holders at once per key."""

    limit: int
    _held: dict[str, int] = field(default_factory=dict)

    def take(self, key: str) -> bool:
        held = self._held.get(key, 0)
        if held >= self.limit:
            return False
        self._held[key] = held + 1
        return True

    def give_back(self, key: str) -> None:
        held = self._held.get(key, 0) - 1
        if held > 0:
            self._held[key] = held
        else:
            self._held.pop(key, None)

    def held(self, key: str) -> int:
        return self._held.get(key, 0)


@dataclass
class ChatLimits:
    """Every limit one request passes before it reaches a model."""

    user_rate: RateWindow
    model_rate: RateWindow
    user_slots: Slots
    model_slots: Slots

    @classmethod
    def build(
        cls, user_rate: int, model_rate: int, user_concurrency: int, model_concurrency: int
    ) -> ChatLimits:
        return cls(
            RateWindow(user_rate), RateWindow(model_rate), Slots(user_concurrency),
            Slots(model_concurrency),
        )  # fmt: skip

    def admit(self, user: str, model: str, now: float) -> tuple[str, float] | None:
        """None when the request may go on (it then holds a slot of each: `release` it), else
        (which limit refused it, seconds to wait before trying again)."""
        wait = self.user_rate.retry_after(user, now)
        if wait:
            return "user_rate", wait
        wait = self.model_rate.retry_after(model, now)
        if wait:
            return "model_rate", wait
        if not self.user_slots.take(user):
            return "user_concurrency", 1.0
        if not self.model_slots.take(model):
            self.user_slots.give_back(user)
            return "model_concurrency", 1.0
        return None

    def release(self, user: str, model: str) -> None:
        self.user_slots.give_back(user)
        self.model_slots.give_back(model)
