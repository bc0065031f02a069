"""Text sources: character- or byte-level token windows of an embedded English corpus (no download).

The corpus is the text of Python's own documentation topics, `pydoc_data.topics` (~465k characters, part of
the standard library): the topics joined in sorted-key order with blank lines. Fixed split by position:
the first 90% train, the next 5% validation, the last 5% test (`data.test_split` picks `test` or
`validation` as the evaluation split).

Tokens (`data.text_unit`): `char` gives one id per character of the corpus alphabet (the sorted set of its
characters, 103 of them); `byte` gives the UTF-8 bytes (vocabulary 256). An example is a window of
`data.seq_len + 1` tokens, {"tokens": int32 [seq_len + 1]}; windows start every `seq_len` tokens, so each
token after the first of the split is a prediction target exactly once.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from jgen.config import InputError, check_int
from jgen.data.sources import DataInfo, _tfds_split

TEXT_UNITS = ("char", "byte")
EVAL_SPLITS = ("test", "validation")  # the held-out parts a text corpus evaluates on (`data.test_split`)
_SPLITS = {"train": (0.0, 0.9), "validation": (0.9, 0.95), "test": (0.95, 1.0)}


@dataclasses.dataclass(frozen=True)
class TextInfo(DataInfo):
    """DataInfo of a token stream: `shape` is (seq_len,); `alphabet` maps char ids to characters ("" = bytes)."""

    vocab_size: int = 256
    seq_len: int = 128
    alphabet: str = ""


class TextSource:
    """Random access to windows of seq_len + 1 tokens of `tokens` [N], starting every seq_len tokens."""

    def __init__(self, tokens: np.ndarray, seq_len: int):
        if tokens.ndim != 1 or len(tokens) < seq_len + 1:
            raise ValueError(
                f"TextSource needs a 1-D token array of at least seq_len + 1 = {seq_len + 1} tokens; "
                f"got shape {tokens.shape}"
            )
        self.tokens = tokens.astype(np.int32)
        self.seq_len = seq_len

    def __len__(self) -> int:
        return (len(self.tokens) - 1) // self.seq_len

    def __getitem__(self, index: int) -> dict[str, Any]:
        start = int(index) * self.seq_len
        return {"tokens": self.tokens[start : start + self.seq_len + 1]}


def pydoc_corpus() -> str:
    """The embedded corpus: Python's documentation topics joined in sorted-key order."""
    from pydoc_data.topics import topics  # local: a 465 KB module, only for data.name=pydoc_text

    return "\n\n".join(topics[k] for k in sorted(topics))


def encode(text: str, info: TextInfo) -> np.ndarray:
    """str -> int32 token ids [N]; raises naming any character outside a char-level alphabet."""
    if not info.alphabet:
        return np.frombuffer(text.encode("utf-8"), np.uint8).astype(np.int32)
    index = {c: i for i, c in enumerate(info.alphabet)}
    unknown = sorted(set(text) - set(index))
    if unknown:
        raise InputError(f"characters {unknown!r} are not in the model's alphabet of {len(index)} characters")
    return np.array([index[c] for c in text], np.int32)


def decode(ids, info: TextInfo) -> str:
    """int token ids [N] -> str (undecodable byte sequences become U+FFFD)."""
    ids = np.asarray(ids).astype(np.int64).ravel()
    if not info.alphabet:
        return bytes(ids.astype(np.uint8).tolist()).decode("utf-8", errors="replace")
    return "".join(info.alphabet[i] for i in ids)


def _split(text: str, name: str) -> str:
    lo, hi = _SPLITS[name]
    return text[int(lo * len(text)) : int(hi * len(text))]


def _unit_and_length(data_cfg) -> tuple[str, int]:
    unit, seq_len = data_cfg.get("text_unit", "char"), data_cfg.get("seq_len", 128)
    if unit not in TEXT_UNITS:
        raise ValueError(f"data.text_unit={unit!r}; choose one of {TEXT_UNITS}")
    check_int("data.seq_len", seq_len, 1, " (e.g. 128)")
    return unit, seq_len


def split_sources(
    train_text: str, test_text: str, name: str, unit: str, seq_len: int, alphabet_text: str
) -> tuple[TextSource, TextSource, TextInfo]:
    """Window sources of a train and an evaluation text; a char alphabet is the sorted set of the characters
    of `alphabet_text`."""
    alphabet = "".join(sorted(set(alphabet_text))) if unit == "char" else ""
    probe = TextInfo(name, (seq_len,), 0, 0, 0, vocab_size=len(alphabet) or 256, seq_len=seq_len, alphabet=alphabet)
    train = TextSource(encode(train_text, probe), seq_len)
    test = TextSource(encode(test_text, probe), seq_len)
    return train, test, dataclasses.replace(probe, num_train=len(train), num_test=len(test))


def text_sources(text: str, name: str, data_cfg) -> tuple[TextSource, TextSource, TextInfo]:
    """Train and evaluation sources of one corpus string, split 90/5/5 and tokenised as the module docstring
    says (the char alphabet is that of the whole corpus, whichever split is evaluated)."""
    unit, seq_len = _unit_and_length(data_cfg)
    test_split = data_cfg.get("test_split", "test")
    if test_split not in EVAL_SPLITS:
        raise ValueError(f"data.test_split={test_split!r}: a text corpus evaluates on 'test' or 'validation'")
    return split_sources(_split(text, "train"), _split(text, test_split), name, unit, seq_len, text)


def load_pydoc_text(data_cfg) -> tuple[TextSource, TextSource, TextInfo]:
    """`data.name = "pydoc_text"`: the embedded documentation corpus (see the module docstring)."""
    return text_sources(pydoc_corpus(), "pydoc_text", data_cfg)


def _tfds_text(data_cfg, split: str) -> str:
    src = _tfds_split(data_cfg.tfds_name, split, data_cfg.data_dir)
    key, limit = data_cfg.get("text_key", "text"), int(data_cfg.get("max_text_examples", 0))
    n = len(src) if limit <= 0 else min(limit, len(src))
    texts = (src[i][key] for i in range(n))
    return "\n".join(t.decode("utf-8") if isinstance(t, bytes) else str(t) for t in texts)


def load_tfds_text(data_cfg) -> tuple[TextSource, TextSource, TextInfo]:
    """`data.name = "tfds_text"`: a TFDS text dataset prepared on disk (e.g. tiny_shakespeare, lm1b): the
    examples' `data.text_key` field of `data.train_split` / `data.test_split`, joined by newlines (the first
    `data.max_text_examples` of each split when > 0; the splits are held in memory)."""
    if not data_cfg.get("tfds_name"):
        raise ValueError("data.name='tfds_text' needs data.tfds_name (e.g. --config.data.tfds_name=tiny_shakespeare)")
    unit, seq_len = _unit_and_length(data_cfg)
    train, test = _tfds_text(data_cfg, data_cfg.train_split), _tfds_text(data_cfg, data_cfg.test_split)
    return split_sources(train, test, data_cfg.tfds_name, unit, seq_len, train + test)
