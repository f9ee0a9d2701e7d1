"""`precheck`, the pure part: seeds, answers and the prompt (the `ilab model chat` argv is
the profile's: `core.ilab.chat_argv`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Seed:
    path: str
    question: str
    answer: str
    context: str = ""


@dataclass(frozen=True)
class Answer:
    path: str
    question: str
    expected: str
    answer: str
    error: str = ""


def prompt(seed: Seed) -> str:
    """Grounded skills and knowledge carry a context the question is about: send it along."""
    if not seed.context.strip():
        return seed.question
    return f"{seed.context.strip()}\n\n{seed.question}"
