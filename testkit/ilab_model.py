"""The stand-in's model files: what `ilab model train` writes and `ilab model serve` reads.

A stand-in model is shaped like a real one (a Hugging Face folder: `config.json`, tokenizer
files, `*.safetensors`; or a GGUF file starting with the `GGUF` magic), so the backend
detection and the bot's manifest see the real names. It holds no weights: a trained model
carries the question → answer pairs of its training data (`standin-pairs.jsonl` in a folder,
a JSON block after the header in a GGUF file), and answers a question close to one it saw with
that pair's answer. A model without pairs (a base model) answers generically, so the bot's
`test` shows the trained model closer to the contributors' answers.
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Iterable, Sequence
from pathlib import Path

PAIRS_NAME = "standin-pairs.jsonl"
GGUF_MAGIC = b"GGUF"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
MATCH_THRESHOLD = 0.5  # Jaccard similarity of word sets for a question to count as seen
_WORDS = re.compile(r"[a-z0-9]+")

Pair = tuple[str, str]


def _config(name: str) -> dict[str, object]:
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": 16,
        "num_hidden_layers": 1,
        "vocab_size": 400,
        "_name_or_path": name,
        "torch_dtype": "bfloat16",
    }


def _safetensors(size: int) -> bytes:
    """A valid empty safetensors file (header length, JSON header), padded to `size`."""
    header = json.dumps({"__metadata__": {"format": "pt", "standin": "true"}}).encode()
    header += b" " * (-len(header) % 8)
    data = struct.pack("<Q", len(header)) + header
    return data + b"\0" * max(size - len(data), 0)


def write_hf_model(
    folder: Path, pairs: Iterable[Pair] = (), name: str = "standin-base", size: int = 4096
) -> Path:
    """A model folder like `save_pretrained` writes (config, tokenizer, `model.safetensors`
    of `size` bytes) that learned `pairs`."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(_config(name), indent=2), encoding="utf-8")
    (folder / "generation_config.json").write_text('{"do_sample": false}\n', encoding="utf-8")
    for tokenizer in TOKENIZER_FILES:
        (folder / tokenizer).write_text(json.dumps({"standin": tokenizer}), encoding="utf-8")
    with (folder / "model.safetensors").open("wb") as out:
        out.write(_safetensors(min(size, 1 << 20)))
        remaining = size - (1 << 20)
        block = b"\0" * (1 << 20)
        while remaining > 0:  # a big model without holding it in memory
            out.write(block[: min(remaining, len(block))])
            remaining -= len(block)
    write_pairs(folder / PAIRS_NAME, pairs)
    return folder


def write_pairs(path: Path, pairs: Iterable[Pair]) -> None:
    with path.open("w", encoding="utf-8") as out:
        for question, answer in pairs:
            out.write(json.dumps({"user": question, "assistant": answer}) + "\n")


def write_gguf(path: Path, pairs: Iterable[Pair] = ()) -> Path:
    """A GGUF-shaped file (magic, version 3) carrying the pairs as JSON after the header."""
    body = json.dumps([list(p) for p in pairs]).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(GGUF_MAGIC + struct.pack("<IQ", 3, len(body)) + body)
    return path


def is_hf_model(path: Path) -> bool:
    """ilab's `is_model_safetensors`: a folder with config.json and a *.safetensors file."""
    return path.is_dir() and (path / "config.json").is_file() and any(path.glob("*.safetensors"))


def is_gguf(path: Path) -> bool:
    if not path.is_file():
        return False
    with path.open("rb") as f:
        return f.read(4) == GGUF_MAGIC


def learned_pairs(model: Path) -> list[Pair]:
    """The pairs a stand-in model learned (none for a base model or a real one)."""
    if is_gguf(model):
        raw = model.read_bytes()
        (length,) = struct.unpack("<Q", raw[8:16])
        try:
            return [(str(q), str(a)) for q, a in json.loads(raw[16 : 16 + length] or b"[]")]
        except ValueError:
            return []
    pairs_file = model / PAIRS_NAME
    if not pairs_file.is_file():
        return []
    found: list[Pair] = []
    for line in pairs_file.read_text(encoding="utf-8").splitlines():
        if line.strip():
            record = json.loads(line)
            found.append((str(record["user"]), str(record["assistant"])))
    return found


def _words(text: str) -> set[str]:
    return set(_WORDS.findall(text.lower()))


def answer(pairs: Sequence[Pair], model_name: str, question: str) -> str:
    """The answer of the pair whose question is closest to `question` (when close enough),
    else the generic answer a base model gives."""
    asked = _words(question)
    best, best_score = None, 0.0
    for seen, reply in pairs:
        words = _words(seen)
        union = asked | words
        score = len(asked & words) / len(union) if union else 0.0
        if score > best_score:
            best, best_score = reply, score
    if best is not None and best_score >= MATCH_THRESHOLD:
        return best
    return (
        f"I am {model_name}, a general assistant. I cannot say for sure, but in general "
        "it depends on the details, so please check a reliable source."
    )
