"""Data: sources (embedded MNIST, scikit-learn digits, TFDS images; embedded and TFDS text) and the grain pipeline.

Image sources yield float32 images in [0, 1], NHWC, with int32 labels; text sources yield int32 token windows
{"tokens": [L + 1]}. Methods that model images in [-1, 1] convert with `to_model_range` / `from_model_range`: the
one place where that happens.
"""

import jax.numpy as jnp

from jgen.config import InputError
from jgen.data.pipeline import TrainIterator, eval_batches, make_train_iterator, spread_batch, train_batches
from jgen.data.sources import IMAGE_SOURCES, ArraySource, DataInfo
from jgen.data.text import TextInfo, load_pydoc_text, load_tfds_text

# data.name -> loader(data_cfg) -> (train_source, test_source, DataInfo)
SOURCES = {**IMAGE_SOURCES, "pydoc_text": load_pydoc_text, "tfds_text": load_tfds_text}


def get_source(data_cfg):
    """(train_source, test_source, DataInfo) for `data_cfg.name`."""
    if data_cfg.name not in SOURCES:
        raise InputError(f"data.name={data_cfg.name!r} is not a known dataset; choose one of {sorted(SOURCES)}")
    return SOURCES[data_cfg.name](data_cfg)


def to_model_range(x):
    """Images in [0, 1] -> [-1, 1]."""
    return 2.0 * x - 1.0


def from_model_range(x):
    """Images in [-1, 1] -> [0, 1], clipped."""
    return jnp.clip((x + 1.0) / 2.0, 0.0, 1.0)


__all__ = [
    "DataInfo",
    "TextInfo",
    "ArraySource",
    "get_source",
    "SOURCES",
    "TrainIterator",
    "make_train_iterator",
    "train_batches",
    "eval_batches",
    "spread_batch",
    "to_model_range",
    "from_model_range",
]
