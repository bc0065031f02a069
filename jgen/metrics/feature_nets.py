"""Feature networks for sample metrics, by name: a jit-compiled, batched map from images to features and
class probabilities.

    net = get_feature_net("mnist_classifier")        # after `import jgen.run`, which registers the built-in nets
    feats = net.features(images)                     # images [N, 28, 28, 1] in [0, 1] -> [N, 128] float32
    probs = net.probs(images)                        # -> [N, 10]

The run layer registers the two built-in networks: "mnist_classifier" (trained by jgen itself into
`cache_dir("mnist_classifier")` by experiments/configs/classifier_mnist.py; see `jgen.run.load_mnist_classifier`)
and "inception" (the FID InceptionV3, jgen.metrics.inception). Other networks add themselves with
`register_feature_net`. Nothing is downloaded.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from jgen.config import InputError
from jgen.metrics.inputs import finite_array

MNIST_CLASSIFIER = "mnist_classifier"
_LOADERS: dict[str, Callable[..., FeatureNet]] = {}


@dataclasses.dataclass(frozen=True)
class FeatureNet:
    """A named feature extractor. `apply(images [B, H, W, C]) -> (features [B, D], probs [B, K])` is pure
    (parameters closed over); the methods below jit it and run it in fixed-size batches."""

    name: str
    input_shape: tuple[int, int, int] | None  # (H, W, C) it accepts (None: any size), values in [0, 1]
    feature_dim: int
    num_classes: int
    apply: Callable[[jax.Array], tuple[jax.Array, jax.Array]]
    batch_size: int = 500

    def __post_init__(self):
        object.__setattr__(self, "_jit_apply", jax.jit(self.apply))

    def _check(self, images) -> np.ndarray:
        x = finite_array("images", images, np.float32)
        want = "H, W, C" if self.input_shape is None else ", ".join(map(str, self.input_shape))
        if x.ndim != 4 or (self.input_shape is not None and x.shape[1:] != tuple(self.input_shape)):
            raise ValueError(f"feature net {self.name!r} takes images [N, {want}]; got shape {x.shape}")
        if x.size and (x.min() < -1e-3 or x.max() > 1.0 + 1e-3):
            raise ValueError(
                f"feature net {self.name!r} takes images in [0, 1]; got values in "
                f"[{x.min():.3g}, {x.max():.3g}] (convert [-1, 1] images with "
                "jgen.data.from_model_range first)"
            )
        return x

    def features_and_probs(self, images, progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """(features [N, D], probs [N, K]) as float32 numpy arrays; one compiled batch shape for all calls. Long
        work shows a progress bar on a terminal unless `progress` is off (a caller showing its own)."""
        x = self._check(images)
        n, bs = x.shape[0], self.batch_size
        feats, probs = [], []
        starts = range(0, n, bs)
        if progress and len(starts) > 4:  # long work (e.g. Inception on the CPU) shows progress on a terminal
            starts = tqdm(starts, desc=f"{self.name} features", unit="batch", leave=False, disable=None)
        for start in starts:
            chunk = x[start : start + bs]
            valid = chunk.shape[0]
            if valid < bs:  # pad the last batch so the compiled shape never changes
                chunk = np.concatenate([chunk, np.zeros((bs - valid, *chunk.shape[1:]), np.float32)])
            f, p = self._jit_apply(jnp.asarray(chunk))
            feats.append(np.asarray(f)[:valid])
            probs.append(np.asarray(p)[:valid])
        if not feats:
            return np.zeros((0, self.feature_dim), np.float32), np.zeros((0, self.num_classes), np.float32)
        return np.concatenate(feats), np.concatenate(probs)

    def features(self, images) -> np.ndarray:
        return self.features_and_probs(images)[0]

    def fingerprint(self, shape: tuple[int, int, int]) -> str:
        """12 hex digits that change with the network's weights: a hash of its features of 2 fixed pseudo-random
        images [2, *shape] (one compiled batch). Part of the key of cached reference statistics."""
        probe = np.random.default_rng(0).uniform(size=(2, *shape)).astype(np.float32)
        feats = np.ascontiguousarray(self.features_and_probs(probe, progress=False)[0])
        return hashlib.sha256(feats.tobytes()).hexdigest()[:12]

    def probs(self, images) -> np.ndarray:
        return self.features_and_probs(images)[1]


def register_feature_net(name: str, loader: Callable[..., FeatureNet]) -> None:
    """Make `loader(**kwargs) -> FeatureNet` available as `get_feature_net(name)` (config.eval.feature_net)."""
    if name in _LOADERS and _LOADERS[name] is not loader:
        raise ValueError(f"feature net {name!r} is registered twice")
    _LOADERS[name] = loader


def feature_net_names() -> list[str]:
    return sorted(_LOADERS)


def get_feature_net(name: str, **kwargs) -> FeatureNet:
    if name not in _LOADERS:
        raise InputError(f"feature_net={name!r} is not known; choose one of {sorted(_LOADERS)}")
    return _LOADERS[name](**kwargs)


def cache_dir(*parts: str) -> str:
    """Where feature networks live: `$JGEN_CACHE/<parts>` if JGEN_CACHE is set, else `~/.cache/jgen/<parts>`."""
    root = os.environ.get("JGEN_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "jgen")
    return os.path.join(root, *parts)


def classifier_feature_net(method, params, name: str = MNIST_CLASSIFIER, batch_size: int = 500) -> FeatureNet:
    """A FeatureNet from a `classifier` Method and its parameters (penultimate ReLU features, softmax probs)."""

    def apply(images):
        logits, feats = method.apply(params, images)
        return feats, jax.nn.softmax(logits, axis=-1)

    return FeatureNet(
        name=name,
        input_shape=tuple(method.info.shape),
        feature_dim=method.net.feature_dim,
        num_classes=method.info.num_classes,
        apply=apply,
        batch_size=batch_size,
    )
