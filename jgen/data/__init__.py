"""Image data: sources (embedded MNIST, scikit-learn digits, TFDS) and the grain input pipeline.

Every source yields float32 images in [0, 1], NHWC, with int32 labels. Methods that model data in
[-1, 1] convert with `to_model_range` / `from_model_range`: the one place where that happens.
"""

import jax.numpy as jnp

from jgen.data.pipeline import eval_batches, make_train_iterator, spread_batch, train_batches
from jgen.data.sources import SOURCES, ArraySource, DataInfo, get_source


def to_model_range(x):
    """Images in [0, 1] -> [-1, 1]."""
    return 2.0 * x - 1.0


def from_model_range(x):
    """Images in [-1, 1] -> [0, 1], clipped."""
    return jnp.clip((x + 1.0) / 2.0, 0.0, 1.0)


__all__ = ["DataInfo", "ArraySource", "get_source", "SOURCES", "make_train_iterator", "train_batches",
           "eval_batches", "spread_batch", "to_model_range", "from_model_range"]
