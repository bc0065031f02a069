"""The embedded text corpus: fixed split, tokenisers, windows."""

import ml_collections
import numpy as np
import pytest

from jgen.data import get_source
from jgen.data.text import decode, encode, pydoc_corpus, text_sources


def _cfg(**kw):
    return ml_collections.ConfigDict({**dict(name="pydoc_text", seq_len=64, text_unit="char", test_split="test"), **kw})


def test_char_split_is_fixed_and_every_test_token_is_a_target_once():
    train, test, info = get_source(_cfg())
    text = pydoc_corpus()
    assert len(text) > 400_000 and info.vocab_size == len(set(text)) and info.shape == (64,)
    assert info.num_train == len(train) and info.num_test == len(test)
    n = len(text)
    test_text = text[int(0.95 * n) :]
    assert decode(test.tokens, info) == test_text
    assert decode(train.tokens, info) == text[: int(0.9 * n)]
    targets = np.concatenate([test[i]["tokens"][1:] for i in range(len(test))])
    np.testing.assert_array_equal(targets, test.tokens[1 : 1 + len(test) * 64])
    assert test[0]["tokens"].shape == (65,) and test[0]["tokens"].dtype == np.int32
    cfg = _cfg()
    cfg.test_split = "validation"
    _, val, _ = get_source(cfg)
    assert decode(val.tokens, info) == text[int(0.9 * n) : int(0.95 * n)]


def test_byte_tokens_round_trip():
    train, test, info = text_sources("héllo wörld " * 20, "t", _cfg(text_unit="byte", seq_len=8))
    assert info.vocab_size == 256 and info.alphabet == ""
    assert decode(encode("wörld", info), info) == "wörld"
    assert len(encode("ö", info)) == 2


def test_bad_text_fields_are_refused():
    with pytest.raises(ValueError, match="data.text_unit"):
        get_source(_cfg(text_unit="word"))
    with pytest.raises(ValueError, match="data.seq_len"):
        get_source(ml_collections.ConfigDict(dict(name="pydoc_text", seq_len=0)))
    with pytest.raises(ValueError, match="data.test_split"):
        get_source(ml_collections.ConfigDict(dict(name="pydoc_text", seq_len=8, test_split="train")))


def test_tfds_text_source_with_mock_data(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    cfg = ml_collections.ConfigDict(
        dict(
            name="tfds_text",
            tfds_name="tiny_shakespeare",
            data_dir=str(tmp_path),
            train_split="train",
            test_split="test",
            text_unit="byte",
            seq_len=4,
        )
    )
    with tfds.testing.mock_data(num_examples=3):
        train, test, info = get_source(cfg)
        expected = "\n".join(
            tfds.data_source("tiny_shakespeare", split="test", data_dir=str(tmp_path))[i]["text"] for i in range(3)
        )
    assert info.vocab_size == 256 and info.name == "tiny_shakespeare" and len(train) >= 1
    assert decode(test.tokens, info) == expected
