"""Make a tiny, randomly initialised Llama folder offline (run with the real ilab's Python).

The real `ilab data generate --model M` also loads a tokenizer from `M` to chunk knowledge
documents, so M must be a model folder (config.json, tokenizer files, *.safetensors). Nothing
is downloaded: a byte-level BPE tokenizer is trained on a few sentences, and the weights are
random (about 100 KB). Usage: python tiny_model.py OUT_DIR [--sentencepiece]

`--sentencepiece` makes a Llama tokenizer from a SentencePiece model instead (`tokenizer.model`
next to `tokenizer.json`, the chat markers as added tokens): what the real `ilab model train
--pipeline simple` needs (its collator and its GGUF conversion want a Llama-like tokenizer).
"""

from __future__ import annotations

import sys
from pathlib import Path

CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "InstructLab generates synthetic data from a taxonomy of skills and knowledge.",
    "What is the answer? The answer is a sentence with words and numbers 0123456789.",
] * 20


def build(out: Path) -> None:
    # only in the real ilab's venv, which runs this file
    from tokenizers import (  # type: ignore[import-not-found]
        Tokenizer,
        decoders,
        models,
        pre_tokenizers,
        trainers,
    )
    from transformers import (  # type: ignore[import-not-found]
        LlamaConfig,
        LlamaForCausalLM,
        PreTrainedTokenizerFast,
    )

    specials = ["<unk>", "<s>", "</s>", "<|user|>", "<|assistant|>", "<|system|>", "<|endoftext|>"]
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))  # noqa: S106 - a token, no password
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(CORPUS, trainer)
    tokens = {"unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>", "pad_token": "<unk>"}
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, model_max_length=4096, **tokens)
    out.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(out)
    config = LlamaConfig(
        vocab_size=len(fast),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(out, safe_serialization=True)


def _save_llama(out: Path, tokenizer: object) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),  # type: ignore[arg-type]
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        bos_token_id=tokenizer.bos_token_id,  # type: ignore[attr-defined]
        eos_token_id=tokenizer.eos_token_id,  # type: ignore[attr-defined]
    )
    LlamaForCausalLM(config).save_pretrained(out, safe_serialization=True)


def build_sentencepiece(out: Path) -> None:
    import tempfile

    import sentencepiece  # type: ignore[import-not-found]
    from transformers import LlamaTokenizerFast

    markers = ["<|user|>", "<|assistant|>", "<|system|>", "<|endoftext|>", "<|pretrain|>"]
    with tempfile.TemporaryDirectory() as scratch:
        prefix = Path(scratch) / "sp"
        sentencepiece.SentencePieceTrainer.train(
            sentence_iterator=iter(CORPUS),
            model_prefix=str(prefix),
            vocab_size=400,
            model_type="bpe",
            character_coverage=1.0,
            byte_fallback=True,
            unk_id=0,
            bos_id=1,
            eos_id=2,
            pad_id=-1,
            hard_vocab_limit=False,
            minloglevel=2,
        )
        tokenizer = LlamaTokenizerFast(vocab_file=f"{prefix}.model", from_slow=True, legacy=False)
        tokenizer.add_special_tokens({"additional_special_tokens": markers})
        tokenizer.pad_token = tokenizer.eos_token
        out.mkdir(parents=True, exist_ok=True)
        tokenizer.save_pretrained(out)
    _save_llama(out, tokenizer)


if __name__ == "__main__":
    if sys.argv[2:] == ["--sentencepiece"]:
        build_sentencepiece(Path(sys.argv[1]))
    else:
        build(Path(sys.argv[1]))
