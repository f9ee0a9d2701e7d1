"""`precheck`, the pure part: seeds, answers and the prompt (the `ilab model chat` argv is
the profile's: `core.ilab.chat_argv`)."""

from __future__ import annotations

from collections.abc import Sequence
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
    model: str = ""  # the model that answered (0.26's panel title, else `--model`)
    with_context: bool = False  # the seed's context was sent along with the question


def prompt(seed: Seed, with_context: bool = False) -> str:
    """The question alone by default: maintainers want to see what the model knows without
    the seed's context (`ILAB_BOT_PRECHECK_CONTEXT=on` sends grounded skills' and knowledge's
    context along)."""
    if not with_context or not seed.context.strip():
        return seed.question
    return f"{seed.context.strip()}\n\n{seed.question}"


def chat_model(argv: Sequence[str]) -> str:
    """The model `ilab model chat` was told to use (`-m`/`--model`), or ""."""
    for index, arg in enumerate(argv):
        if arg.startswith("--model="):
            return arg.split("=", 1)[1]
        if arg in ("-m", "--model") and index + 1 < len(argv):
            return argv[index + 1]
    return ""
