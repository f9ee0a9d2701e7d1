"""A stand-in teacher model: the OpenAI-compatible HTTP endpoints the real `ilab` calls.

The real `ilab data generate` (instructlab-sdg) needs `GET /` to greet like ilab's own server,
a batching probe and prompt lists on `/v1/completions`; `ilab model chat` lists `/v1/models`
and streams `/v1/chat/completions`. Answers are derived from the prompt (the simple pipeline
splits a completion at its first `?` into question and answer), so a test can see that the
seed text reached the teacher and came back through ilab's files. No model, loopback only.

Run it in a thread (`with Teacher() as teacher: teacher.url`) or as a program
(`python -m testkit.fake_teacher --port 8000`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from testkit.background_http import BackgroundServer

GREETING = {"message": "Hello from InstructLab! Visit us at https://instructlab.ai"}
DEFAULT_MODEL = "standin-teacher"
_WORDS = re.compile(r"[A-Za-z0-9][A-Za-z0-9'-]*")
_EXAMPLE = re.compile(r"(?:asked for:|Here is the document:)\s*\n+(.+)")


@dataclass
class TeacherState:
    """What the teacher serves and what it was asked (for tests to inspect)."""

    model: str = DEFAULT_MODEL
    fail_status: int | None = None  # answer every completion with this HTTP status
    hold: threading.Event | None = None  # when set: completions wait for it (requests in flight)
    # when set: a streamed answer stops after its first word until the event is set (a test
    # sees the first token arrive on its own, then lets the rest come)
    pause_stream: threading.Event | None = None
    requests: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _topic(prompt: str) -> str:
    """The seed example's first line when the prompt shows one (so answers can be traced to
    their seed), and a digest of the prompt (SDG drops duplicate outputs)."""
    digest = hashlib.sha256(prompt.encode()).hexdigest()[:8]
    example = _EXAMPLE.search(prompt)
    words = _WORDS.findall(example.group(1))[:12] if example else []
    return f"{' '.join(words) or 'the task'} [{digest}]"


def completion_text(prompt: str, index: int) -> str:
    """One completion: `question? answer` (the simple pipelines split at the first `?`), or
    a tagged multiple-choice question when asked for one (SDG's MMLU-style eval data)."""
    topic = _topic(prompt)
    question = f"What is stand-in question {index + 1} about {topic}?"
    answer = f"A stand-in answer {index + 1} about {topic}."
    if "[Start of Question]" in prompt:
        options = "A) The document's subject\nB) Something else\nC) Nothing\nD) Everything"
        return (
            f"[Start of Question]\n{question}\n\n{options}\n[End of Question]\n\n"
            "[Start of Answer]\nA) The document's subject\n[End of Answer]"
        )
    return f"{question}\n{answer}"


def completions(body: dict[str, Any], model: str) -> dict[str, Any]:
    prompts = body.get("prompt", "")
    prompts = prompts if isinstance(prompts, list) else [prompts]
    n = int(body.get("n") or 1)
    choices = []
    for p, prompt in enumerate(prompts):
        for i in range(n):
            text = "x" if body.get("max_tokens") == 1 else completion_text(str(prompt), i)
            choices.append(
                {"index": p * n + i, "text": text, "logprobs": None, "finish_reason": "stop"}
            )
    return {
        "id": "cmpl-standin",
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


def chat_answer(body: dict[str, Any]) -> str:
    messages = body.get("messages") or []
    question = next(
        (str(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), ""
    )
    return f"The stand-in teacher's answer to: {question}"


def chat_chunks(body: dict[str, Any], model: str) -> Iterator[dict[str, Any]]:
    """The streamed chat: a role chunk first (ilab checks it), the text, then the stop."""
    base: dict[str, Any] = {"id": "chatcmpl-standin", "object": "chat.completion.chunk"}
    base |= {"model": model, "created": int(time.time())}
    deltas: list[tuple[dict[str, str], str | None]] = [({"role": "assistant"}, None)]
    words = chat_answer(body).split(" ")
    deltas += [({"content": w if i == 0 else " " + w}, None) for i, w in enumerate(words)]
    deltas.append(({}, "stop"))
    for delta, finish in deltas:
        yield {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    # Like a real model server (uvicorn, vLLM): each event goes out at once, never held back
    # by Nagle's algorithm waiting for the ACK of the headers (40 ms with a delayed ACK).
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read `requests` instead."""

    def _send(self, status: int, payload: Any, content_type: str = "application/json") -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        state = self.server.state
        if self.path.rstrip("/") == "":
            self._send(200, GREETING)
        elif self.path.rstrip("/") == "/v1/models":
            served = {"id": state.model, "object": "model", "created": 0, "owned_by": "standin"}
            self._send(200, {"object": "list", "data": [served]})
        else:
            self._send(404, {"detail": "Not Found"})

    def do_POST(self) -> None:
        state = self.server.state
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        with state.lock:
            state.requests.append({"path": self.path, "body": body})
        if state.hold is not None:
            state.hold.wait(timeout=60)
        if self.path not in ("/v1/completions", "/v1/chat/completions"):
            self._send(404, {"detail": "Not Found"})
        elif state.fail_status is not None:
            error = {"message": "the stand-in teacher is told to fail", "type": "server_error"}
            self._send(state.fail_status, {"error": error})
        elif self.path == "/v1/completions":
            self._send(200, completions(body, state.model))
        elif body.get("stream"):
            self._stream(body)
        else:
            message = {"role": "assistant", "content": chat_answer(body)}
            choice = {"index": 0, "message": message, "finish_reason": "stop"}
            self._send(200, {"id": "chatcmpl-standin", "object": "chat.completion",
                             "model": state.model, "choices": [choice]})  # fmt: skip

    def _stream(self, body: dict[str, Any]) -> None:
        """Each event written and flushed on its own, as a model server writes tokens."""
        events = [
            f"data: {json.dumps(chunk)}\n\n".encode()
            for chunk in chat_chunks(body, self.server.state.model)
        ] + [b"data: [DONE]\n\n"]
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Content-Length", str(sum(len(e) for e in events)))
        self.end_headers()
        for index, event in enumerate(events):
            self.wfile.write(event)
            self.wfile.flush()
            pause = self.server.state.pause_stream
            if index == 1 and pause is not None:  # after the role chunk and the first word
                pause.wait(timeout=60)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, state: TeacherState) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.state = state


class Teacher(BackgroundServer):
    """The teacher on 127.0.0.1 in a background thread; `url` ends in `/v1` like ilab wants."""

    def __init__(self, model: str = DEFAULT_MODEL, port: int = 0) -> None:
        self.state = TeacherState(model=model)
        super().__init__(_Server(port, self.state))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    args = parser.parse_args()
    server = _Server(args.port, TeacherState(model=args.model))
    print(f"stand-in teacher on http://127.0.0.1:{server.server_address[1]}/v1", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
