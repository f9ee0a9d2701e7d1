"""The chat proxy's concurrency limits (pure): answers streaming at once per person and per PR
model, held by this server replica. (The request rates per minute are counted in Redis, shared
by every replica: `ChatRecords.take_request`.)"""

from __future__ import annotations

from dataclasses import dataclass, field

WINDOW = 60.0  # seconds of the per-minute rates


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
    """Answers at once, per person and per model."""

    user_slots: Slots
    model_slots: Slots

    @classmethod
    def build(cls, user_concurrency: int, model_concurrency: int) -> ChatLimits:
        return cls(Slots(user_concurrency), Slots(model_concurrency))

    def admit(self, user: str, model: str) -> tuple[str, float] | None:
        """None when the request may go on (it then holds a slot of each: `release` it), else
        (which limit refused it, seconds to wait before trying again)."""
        if not self.user_slots.take(user):
            return "user_concurrency", 1.0
        if not self.model_slots.take(model):
            self.user_slots.give_back(user)
            return "model_concurrency", 1.0
        return None

    def release(self, user: str, model: str) -> None:
        self.user_slots.give_back(user)
        self.model_slots.give_back(model)
