"""The stand-in's `ilab model serve`: an OpenAI-compatible HTTP server for one model.

Like the real command (../shared/ilab/CLI.md §8): the backend is picked from the model (a GGUF
file: llama-cpp, which also greets on `GET /` and refuses a third concurrent request with 503;
a folder of safetensors: vLLM, which refuses a `model` other than the served id with 404), the
served id is the model path as given, 0.26 takes `--host/--port` and 0.18 reads
`serve.host_port` from the config file, log lines go to stderr, and the process **exits 0 even
when the server could not start** ("Error creating server: …", e.g. the port is taken), so a
caller must poll `GET /v1/models`. A model it cannot detect is "Failed to determine backend"
(exit 1) as on the real one. SIGTERM stops it (exit 0).

Answers come from testkit/ilab_model.py: a model the stand-in trained answers a question close
to one of its training data with that answer; any other model answers generically.

Switches (environment, read at run time):
  ILAB_STANDIN_SERVE_MODE   ok (default) | fail (Error creating server, exit 0) |
                            never-ready (stays up, never listens) | die-after-ready (serves
                            /v1/models once, then exits 0: a server that crashed)
  ILAB_STANDIN_SERVE_DELAY  seconds before it listens (a cold start; default 0)
  ILAB_STANDIN_TOKEN_DELAY  seconds between streamed tokens (a slow model; default 0)
  ILAB_STANDIN_ANSWER_TOKENS  pad every answer to this many words (a flood; default: none)
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from instruct_lab_bot.core.ilab import PROFILES, ServeRun, serve_argv
from testkit.fake_teacher import GREETING, completions
from testkit.ilab_model import Pair, answer, is_gguf, is_hf_model, learned_pairs

if TYPE_CHECKING:
    from testkit.fake_ilab import Run

LLAMA_CPP, VLLM = "llama-cpp", "vllm"
LLAMA_CPP_CONCURRENCY = 2  # ilab runs uvicorn with limit_concurrency=2
SERVE_MODES = ("ok", "fail", "never-ready", "die-after-ready")
RED, RESET = "\033[31m", "\033[0m"


@dataclass
class ServeKnobs:
    mode: str = "ok"
    delay: float = 0.0
    token_delay: float = 0.0
    answer_tokens: int | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ServeKnobs:
        mode = env.get("ILAB_STANDIN_SERVE_MODE") or "ok"
        if mode not in SERVE_MODES:
            raise ValueError(f"ILAB_STANDIN_SERVE_MODE={mode!r}: one of {', '.join(SERVE_MODES)}")
        tokens = env.get("ILAB_STANDIN_ANSWER_TOKENS")
        return cls(
            mode=mode,
            delay=float(env.get("ILAB_STANDIN_SERVE_DELAY") or 0),
            token_delay=float(env.get("ILAB_STANDIN_TOKEN_DELAY") or 0),
            answer_tokens=int(tokens) if tokens else None,
        )


@dataclass
class Served:
    """What one server serves, and its bookkeeping."""

    model_id: str
    backend: str
    pairs: list[Pair]
    knobs: ServeKnobs
    in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    listed: threading.Event = field(default_factory=threading.Event)

    @property
    def name(self) -> str:
        return Path(os.path.normpath(self.model_id)).name

    def reply(self, body: Mapping[str, Any]) -> str:
        messages = body.get("messages") or []
        question = next(
            (str(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), ""
        )
        text = answer(self.pairs, self.name, question)
        words = text.split(" ")
        if self.knobs.answer_tokens:
            words = [words[i % len(words)] for i in range(self.knobs.answer_tokens)]
        max_tokens = body.get("max_tokens")
        if isinstance(max_tokens, int) and max_tokens > 0:
            words = words[:max_tokens]
        return " ".join(words)


def _chunks(served: Served, body: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """A streamed chat: a role chunk first (ilab's chat checks it), a chunk per word, stop."""
    base: dict[str, Any] = {"id": "chatcmpl-standin", "object": "chat.completion.chunk"}
    base |= {"model": served.model_id, "created": int(time.time())}
    words = served.reply(body).split(" ")
    deltas: list[tuple[dict[str, str], str | None]] = [({"role": "assistant"}, None)]
    deltas += [({"content": w if i == 0 else " " + w}, None) for i, w in enumerate(words)]
    deltas.append(({}, "stop"))
    for delta, finish in deltas:
        yield {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def _completion(served: Served, body: Mapping[str, Any]) -> dict[str, Any]:
    text = served.reply(body)
    message = {"role": "assistant", "content": text}
    usage = {"prompt_tokens": 1, "completion_tokens": len(text.split()), "total_tokens": 0}
    usage["total_tokens"] = usage["completion_tokens"] + 1
    return {
        "id": "chatcmpl-standin",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": served.model_id,
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": usage,
    }


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write(f"INFO:     {self.client_address[0]} - {format % args}\n")

    def _send(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _enter(self) -> bool:
        served = self.server.served
        with served.lock:
            busy = served.backend == LLAMA_CPP and served.in_flight >= LLAMA_CPP_CONCURRENCY
            if not busy:
                served.in_flight += 1
        if busy:
            self.send_response(503)
            self.send_header("Content-Length", "19")
            self.end_headers()
            self.wfile.write(b"Service Unavailable")
        return not busy

    def _leave(self) -> None:
        with self.server.served.lock:
            self.server.served.in_flight -= 1

    def do_GET(self) -> None:
        served = self.server.served
        path = self.path.split("?")[0].rstrip("/")
        if path == "/v1/models":
            model = {"id": served.model_id, "object": "model", "created": int(time.time())}
            model["owned_by"] = "me" if served.backend == LLAMA_CPP else "vllm"
            self._send(200, {"object": "list", "data": [model]})
            served.listed.set()
        elif path == "" and served.backend == LLAMA_CPP:
            self._send(200, GREETING)
        elif path == "/health" and served.backend == VLLM:
            self._send(200, {})
        else:
            self._send(404, {"detail": "Not Found"})

    def do_POST(self) -> None:
        if not self._enter():
            return
        try:
            self._post()
        finally:
            self._leave()

    def _post(self) -> None:
        served = self.server.served
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            self._send(400, {"error": {"message": "invalid JSON body", "type": "invalid_request"}})
            return
        if self.path not in ("/v1/chat/completions", "/v1/completions"):
            self._send(404, {"detail": "Not Found"})
        elif served.backend == VLLM and body.get("model") != served.model_id:
            message = f"The model `{body.get('model')}` does not exist."
            error = {"object": "error", "message": message, "type": "NotFoundError"}
            self._send(404, {**error, "param": None, "code": 404})
        elif self.path == "/v1/completions":
            self._send(200, completions(body, served.model_id))
        elif body.get("stream"):
            self._stream(body)
        else:
            self._send(200, _completion(served, body))

    def _stream(self, body: Mapping[str, Any]) -> None:
        """Server-sent events in chunked transfer encoding, one event per token."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        delay = self.server.served.knobs.token_delay
        try:
            for chunk in _chunks(self.server.served, body):
                self._chunk(f"data: {json.dumps(chunk)}\n\n".encode())
                if delay:
                    time.sleep(delay)
            self._chunk(b"data: [DONE]\n\n")
            self._chunk(b"")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client went away mid-answer

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], served: Served) -> None:
        self.served = served
        super().__init__(address, _Handler)


def _host_port(run: Run, opts: Mapping[str, Any], config: str | None) -> tuple[str, int]:
    if run.profile.version.startswith("0.26"):
        return str(opts.get("host") or "127.0.0.1"), int(opts.get("port") or 8000)
    host_port = "127.0.0.1:8000"
    if config and config != "DEFAULT" and Path(config).is_file():
        import yaml

        loaded = yaml.safe_load(Path(config).read_text(encoding="utf-8")) or {}
        host_port = str((loaded.get("serve") or {}).get("host_port") or host_port)
    host, _, port = host_port.rpartition(":")
    return host, int(port)


def _backend(model: Path) -> str:
    if is_hf_model(model):
        return VLLM
    if is_gguf(model):
        return LLAMA_CPP
    raise ValueError(
        f"Cannot determine which backend to use: The model file {model} is not a GGUF format "
        "nor a directory containing huggingface safetensors files. Cannot determine which "
        "backend to use."
    )


def _stop(num: int, _frame: FrameType | None) -> None:
    print(f"Received termination signal {num}, exiting...", flush=True)
    raise SystemExit(0)


def serve(run: Run, opts: Mapping[str, Any], extra: list[str], config: str | None) -> int:
    """`ilab model serve`: serves until SIGTERM; the exit code is 0 unless the backend could
    not be determined (or extra arguments were given to llama-cpp)."""
    knobs = ServeKnobs.from_env(os.environ)
    signal.signal(signal.SIGTERM, _stop)
    model = Path(opts["model_path"] or Path(run.profile.default_chat_model).expanduser())
    host, port = _host_port(run, opts, config)
    run.record.update({"command": "model serve", "model": str(model), "port": port})
    run.write_record()
    try:
        backend = _backend(model)
    except ValueError as exc:
        return _undetected(run, exc)
    if backend == LLAMA_CPP and extra:
        sys.stderr.write(
            f"Usage: ilab model serve [OPTIONS]\nTry 'ilab model serve --help' for help.\n\n"
            f"Error: Unsupported extra arguments: {', '.join(extra)}\n"
        )
        return 2
    where = "instructlab.model.serve_backend:95"
    layers, ctx = opts.get("gpu_layers") or -1, opts.get("max_ctx_size") or 4096
    using = f"Using model '{model}' with {layers} gpu-layers and {ctx} max context size."
    run.log("INFO", where, using)
    served = Served(str(model), backend, learned_pairs(model), knobs)
    return _run_server(run, served, host, port)


def _undetected(run: Run, exc: ValueError) -> int:
    message = f"Failed to determine backend: {exc}"
    if run.profile.version.startswith("0.26"):  # raised, not caught: a traceback
        sys.stderr.write(
            "Traceback (most recent call last):\n"
            '  File "/opt/app-root/lib64/python3.11/site-packages/instructlab/model/'
            'serve_backend.py", line 79, in serve_backend\n'
            f"ValueError: {message}\n"
        )
    else:
        sys.stdout.write(f"{RED}{message}{RESET}\n")
    return 1


def _run_server(run: Run, served: Served, host: str, port: int) -> int:
    knobs = served.knobs
    if knobs.delay:
        time.sleep(knobs.delay)
    if knobs.mode == "never-ready":
        while True:  # up, never listening, until SIGTERM
            time.sleep(3600)
    try:
        if knobs.mode == "fail":
            raise OSError("the stand-in is told to fail (ILAB_STANDIN_SERVE_MODE=fail)")
        server = _Server((host, port), served)
    except OSError as exc:
        sys.stdout.write(f"{RED}Error creating server: {exc}{RESET}\n")
        return 0  # the real serve exits 0 from its `finally`
    if served.backend == LLAMA_CPP:
        where = "instructlab.model.backends.llama_cpp:233"
        run.log("INFO", where, "Starting server process, press CTRL+C to shutdown server...")
        see = f"After application startup complete see http://{host}:{port}/docs for API."
        run.log("INFO", "instructlab.model.backends.llama_cpp:234", see)
    else:
        up = f"vLLM starting up on pid {os.getpid()} at http://{host}:{port}/v1"
        run.log("INFO", "instructlab.model.backends.vllm:332", up)
    if knobs.mode == "die-after-ready":
        threading.Thread(target=_die_when_listed, args=(server,), daemon=True).start()
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


def _die_when_listed(server: _Server) -> None:
    server.served.listed.wait()  # set once the answer is written
    server.shutdown()


# --------------------------------------------------------------------------------------------
# For tests: the stand-in's `model serve` as a process, ready when it lists its model


def wait_listed(models_url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> bool:
    """Poll `models_url` until it answers 200 (True) or the process ends first (False), the
    way a caller of the real `ilab model serve` must. `timeout` only bounds a broken run."""
    deadline = time.monotonic() + timeout
    while process.poll() is None:
        try:
            with urllib.request.urlopen(models_url, timeout=5) as response:  # noqa: S310
                if response.status == 200:
                    return True
        except (OSError, ValueError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{models_url} did not answer within {timeout}s")
        time.sleep(0.05)
    return False


@contextlib.contextmanager
def running_serve(
    model: Path, env: Mapping[str, str] | None = None, version: str = "0.26.1"
) -> Iterator[ServeRun]:
    """`ilab-standin model serve` for `model` on a free port of 127.0.0.1, started with the
    bot's own command line (core.ilab.serve_argv) and ready; stopped with SIGTERM at the end."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    standin = Path(sys.executable).parent / "ilab-standin"
    profile = next(p for p in PROFILES if p.tested == version)
    full_env = {**os.environ, **(env or {}), "ILAB_STANDIN_VERSION": version}
    with tempfile.TemporaryDirectory(prefix="standin-serve-") as workdir:
        command = (str(standin), "--config", "DEFAULT")
        run = serve_argv(profile, command, model, "127.0.0.1", port, Path(workdir))
        if run.config_file is not None and run.config_text is not None:
            run.config_file.write_text(run.config_text, encoding="utf-8")
        process = subprocess.Popen(
            run.argv, env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            if not wait_listed(run.models_url, process):
                raise RuntimeError(f"the stand-in's model serve ended ({process.returncode})")
            yield run
        finally:
            process.terminate()
            process.wait()
