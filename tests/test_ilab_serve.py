"""`ilab model serve`: the bot's command line per release (core.ilab.serve_argv) and the
stand-in's OpenAI-compatible server it starts (testkit/ilab_serve.py)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from instruct_lab_bot.core.ilab import PROFILES, profile_for, serve_argv
from instruct_lab_bot.core.ilab.versions import IlabVersion
from testkit.ilab_model import write_gguf, write_hf_model
from testkit.ilab_serve import running_serve, wait_listed

V0_18 = profile_for(IlabVersion(0, 18))
V0_26 = profile_for(IlabVersion(0, 26))
QUESTION = "What is the capital of the Moon base?"
ANSWER = "The capital of the Moon base is Tranquility Station."


def post(url: str, body: dict[str, Any]) -> tuple[int, bytes]:
    headers = {"Content-Type": "application/json"}
    request = urllib.request.Request(url, json.dumps(body).encode(), headers)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return int(response.status), response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def ask(run_url: str, model: str, question: str, **extra: Any) -> tuple[int, bytes]:
    body = {"model": model, "messages": [{"role": "user", "content": question}], **extra}
    return post(f"{run_url}/chat/completions", body)


def streamed_text(raw: bytes) -> tuple[list[dict[str, Any]], str]:
    events = [line[6:] for line in raw.decode().split("\n") if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    return chunks, text


def test_serve_argv_per_release(tmp_path: Path) -> None:
    assert V0_18 is not None and V0_26 is not None
    model = tmp_path / "model"
    new = serve_argv(V0_26, ("ilab", "--config", "DEFAULT"), model, "127.0.0.1", 8123, tmp_path)
    assert new.argv == [
        *("ilab", "--config", "DEFAULT", "model", "serve"),
        *("--model-path", str(model), "--host", "127.0.0.1", "--port", "8123"),
    ]
    assert new.config_file is None and new.config_text is None
    assert new.models_url == "http://127.0.0.1:8123/v1/models"
    assert new.model_id == str(model)
    old = serve_argv(V0_18, ("ilab", "--config", "DEFAULT"), model, "127.0.0.1", 8123, tmp_path)
    # 0.18 has no --host/--port: a config file after DEFAULT (click keeps the last --config)
    assert old.config_file == tmp_path / "serve-config.yaml"
    assert old.argv == [
        *("ilab", "--config", "DEFAULT", "--config", str(old.config_file)),
        *("model", "serve", "--model-path", str(model)),
    ]
    assert old.config_text == 'serve:\n  host_port: "127.0.0.1:8123"\n'


@pytest.mark.parametrize("version", [p.tested for p in PROFILES])
def test_trained_model_answers_its_training_pairs(tmp_path: Path, version: str) -> None:
    trained = write_hf_model(tmp_path / "trained", [(QUESTION, ANSWER)])
    with running_serve(trained, version=version) as run:
        with urllib.request.urlopen(run.models_url, timeout=30) as response:  # noqa: S310
            listed = json.load(response)
        assert [m["id"] for m in listed["data"]] == [str(trained)]
        status, raw = ask(run.base_url, run.model_id, QUESTION.lower().rstrip("?"))
        assert status == 200
        reply = json.loads(raw)
        assert reply["choices"][0]["message"] == {"role": "assistant", "content": ANSWER}
        assert reply["model"] == str(trained)
        status, raw = ask(run.base_url, run.model_id, "Tell me about cats", max_tokens=5)
        assert len(json.loads(raw)["choices"][0]["message"]["content"].split()) == 5


def test_base_model_answers_generically_and_streams_token_by_token(tmp_path: Path) -> None:
    base = write_hf_model(tmp_path / "granite-base")
    with running_serve(base) as run:
        status, raw = ask(run.base_url, run.model_id, QUESTION, stream=True)
    assert status == 200
    chunks, text = streamed_text(raw)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert len(chunks) == len(text.split()) + 2  # role, one per word, stop
    assert "granite-base" in text and ANSWER not in text


def test_vllm_refuses_another_model_name_llama_cpp_does_not(tmp_path: Path) -> None:
    folder = write_hf_model(tmp_path / "hf", [(QUESTION, ANSWER)])
    with running_serve(folder) as run:
        status, raw = ask(run.base_url, "some-other-model", QUESTION)
    assert status == 404
    assert json.loads(raw)["message"] == "The model `some-other-model` does not exist."
    gguf = write_gguf(tmp_path / "model-f16.gguf", [(QUESTION, ANSWER)])
    with running_serve(gguf) as run:
        status, raw = ask(run.base_url, "some-other-model", QUESTION)
        with urllib.request.urlopen(run.base_url[: -len("/v1")], timeout=30) as hello:  # noqa: S310
            assert b"Hello from InstructLab" in hello.read()
    assert status == 200
    assert json.loads(raw)["choices"][0]["message"]["content"] == ANSWER


def test_llama_cpp_refuses_a_third_concurrent_request(tmp_path: Path) -> None:
    gguf = write_gguf(tmp_path / "slow.gguf")
    env = {"ILAB_STANDIN_TOKEN_DELAY": "0.2", "ILAB_STANDIN_ANSWER_TOKENS": "400"}
    with running_serve(gguf, env) as run:
        started = [threading.Event(), threading.Event()]

        def stream(i: int) -> None:
            body = {"model": run.model_id, "stream": True, "messages": []}
            request = urllib.request.Request(run.chat_url, json.dumps(body).encode())  # noqa: S310
            with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
                response.readline()  # the first event: the request is in flight
                started[i].set()

        threads = [threading.Thread(target=stream, args=(i,), daemon=True) for i in range(2)]
        for thread in threads:
            thread.start()
        for event in started:
            assert event.wait(60)
        status, _ = ask(run.base_url, run.model_id, QUESTION)
    assert status == 503


def run_standin(tmp_path: Path, *args: str, **env: str) -> subprocess.Popen[str]:
    standin = Path(sys.executable).parent / "ilab-standin"
    return subprocess.Popen(
        [str(standin), "--config", "DEFAULT", "model", "serve", *args],
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_port_taken_exits_0_without_serving(tmp_path: Path) -> None:
    model = write_hf_model(tmp_path / "m")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = run_standin(tmp_path, "--model-path", str(model), "--port", str(port))
        out, _ = process.communicate(timeout=60)
    assert process.returncode == 0  # like the real one: readiness is a poll, not an exit code
    assert "Error creating server:" in out
    assert "Address already in use" in out


def test_fail_mode_exits_0_and_never_lists(tmp_path: Path) -> None:
    model = write_hf_model(tmp_path / "m")
    process = run_standin(
        tmp_path, "--model-path", str(model), "--port", "1", ILAB_STANDIN_SERVE_MODE="fail"
    )
    out, _ = process.communicate(timeout=60)
    assert process.returncode == 0
    assert "Error creating server: the stand-in is told to fail" in out


def test_undetectable_model_exits_1_per_release(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    process = run_standin(tmp_path, "--model-path", str(missing))
    _, err = process.communicate(timeout=60)
    assert process.returncode == 1
    assert "ValueError: Failed to determine backend: Cannot determine" in err
    process = run_standin(tmp_path, "--model-path", str(missing), ILAB_STANDIN_VERSION="0.18.4")
    out, _ = process.communicate(timeout=60)
    assert process.returncode == 1
    assert "Failed to determine backend" in out
    process = run_standin(tmp_path, "--port", "8000", ILAB_STANDIN_VERSION="0.18.4")
    _, err = process.communicate(timeout=60)
    assert process.returncode == 2 and "No such option: --port" in err


def test_never_ready_stays_up_until_sigterm(tmp_path: Path) -> None:
    model = write_hf_model(tmp_path / "m")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = run_standin(
        tmp_path, "--model-path", str(model), "--port", str(port),
        ILAB_STANDIN_SERVE_MODE="never-ready",
    )  # fmt: skip
    assert process.stderr is not None
    assert "Using model" in process.stderr.readline()  # up, past its start-up
    # a connection refused is not an answer: the poll goes on while the process lives
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=5)
    assert process.poll() is None
    process.terminate()
    process.communicate(timeout=60)
    assert process.returncode == 0


def test_die_after_ready_ends_after_the_first_listing(tmp_path: Path) -> None:
    model = write_hf_model(tmp_path / "m")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    standin = Path(sys.executable).parent / "ilab-standin"
    process = subprocess.Popen(
        [str(standin), "--config", "DEFAULT", "model", "serve", "--model-path", str(model),
         "--port", str(port)],
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
             "ILAB_STANDIN_SERVE_MODE": "die-after-ready"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    assert wait_listed(f"http://127.0.0.1:{port}/v1/models", process)
    assert process.wait(timeout=60) == 0
