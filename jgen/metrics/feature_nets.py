"""Feature networks for sample metrics, by name: a jit-compiled, batched map from images to features and
class probabilities.

    net = get_feature_net("mnist_classifier")        # or load_mnist_classifier(workdir)
    feats = net.features(images)                     # images [N, 28, 28, 1] in [0, 1] -> [N, 128] float32
    probs = net.probs(images)                        # -> [N, 10]

The MNIST classifier is trained by jgen itself (experiments/configs/classifier_mnist.py) into a cache
directory: `$JGEN_CACHE/mnist_classifier` if JGEN_CACHE is set, else `~/.cache/jgen/mnist_classifier`.
Nothing is downloaded; a missing or unfinished checkpoint is refused with the command that makes it.
The FID InceptionV3 (jgen.metrics.inception) is registered as "inception"; other networks add themselves
with `register_feature_net`.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

MNIST_CLASSIFIER = "mnist_classifier"
_LOADERS: dict[str, Callable[..., "FeatureNet"]] = {}


@dataclasses.dataclass(frozen=True)
class FeatureNet:
    """A named feature extractor. `apply(images [B, H, W, C]) -> (features [B, D], probs [B, K])` is pure
    (parameters closed over); the methods below jit it and run it in fixed-size batches."""
    name: str
    input_shape: tuple[int, int, int] | None   # (H, W, C) it accepts (None: any size), values in [0, 1]
    feature_dim: int
    num_classes: int
    apply: Callable[[jax.Array], tuple[jax.Array, jax.Array]]
    batch_size: int = 500

    def __post_init__(self):
        object.__setattr__(self, "_jit_apply", jax.jit(self.apply))

    def _check(self, images) -> np.ndarray:
        x = np.asarray(images, np.float32)
        want = "H, W, C" if self.input_shape is None else ", ".join(map(str, self.input_shape))
        if x.ndim != 4 or (self.input_shape is not None and x.shape[1:] != tuple(self.input_shape)):
            raise ValueError(f"feature net {self.name!r} takes images [N, {want}]; got shape {x.shape}")
        if x.size and (x.min() < -1e-3 or x.max() > 1.0 + 1e-3):
            raise ValueError(f"feature net {self.name!r} takes images in [0, 1]; got values in "
                             f"[{x.min():.3g}, {x.max():.3g}] (convert [-1, 1] images with "
                             "jgen.data.from_model_range first)")
        return x

    def features_and_probs(self, images) -> tuple[np.ndarray, np.ndarray]:
        """(features [N, D], probs [N, K]) as float32 numpy arrays; one compiled batch shape for all calls."""
        x = self._check(images)
        n, bs = x.shape[0], self.batch_size
        feats, probs = [], []
        starts = range(0, n, bs)
        if len(starts) > 4:  # long work (e.g. Inception on the CPU) shows progress on a terminal
            from tqdm.auto import tqdm
            starts = tqdm(starts, desc=f"{self.name} features", unit="batch", leave=False, disable=None)
        for start in starts:
            chunk = x[start:start + bs]
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

    def probs(self, images) -> np.ndarray:
        return self.features_and_probs(images)[1]


def register_feature_net(name: str, loader: Callable[..., FeatureNet]) -> None:
    """Make `loader(**kwargs) -> FeatureNet` available as `get_feature_net(name)` (config.eval.feature_net)."""
    if name in _LOADERS and _LOADERS[name] is not loader:
        raise ValueError(f"feature net {name!r} is registered twice")
    _LOADERS[name] = loader


def get_feature_net(name: str, **kwargs) -> FeatureNet:
    if name not in _LOADERS:
        raise ValueError(f"feature_net={name!r} is not known; choose one of {sorted(_LOADERS)}")
    return _LOADERS[name](**kwargs)


def cache_dir(*parts: str) -> str:
    """Where feature networks live: `$JGEN_CACHE/<parts>` if JGEN_CACHE is set, else `~/.cache/jgen/<parts>`."""
    root = os.environ.get("JGEN_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "jgen")
    return os.path.join(root, *parts)


def default_classifier_dir() -> str:
    """`cache_dir("mnist_classifier")`."""
    return cache_dir(MNIST_CLASSIFIER)


def classifier_feature_net(method, params, name: str = MNIST_CLASSIFIER, batch_size: int = 500) -> FeatureNet:
    """A FeatureNet from a `classifier` Method and its parameters (penultimate ReLU features, softmax probs)."""
    def apply(images):
        logits, feats = method.apply(params, images)
        return feats, jax.nn.softmax(logits, axis=-1)
    return FeatureNet(name=name, input_shape=tuple(method.info.shape), feature_dim=method.net.feature_dim,
                      num_classes=method.info.num_classes, apply=apply, batch_size=batch_size)


def load_mnist_classifier(workdir: str | None = None, batch_size: int = 500) -> FeatureNet:
    """The trained MNIST classifier of `workdir` (default: `default_classifier_dir()`), EMA parameters."""
    import jgen.methods.classifier  # noqa: F401  (registers the method before the run is loaded)
    from jgen.train import checkpoint as ckpt

    workdir = workdir or default_classifier_dir()
    how = (f"Train it first (about 7 minutes on 2 CPU cores): python -m jgen train "
           f"--config experiments/configs/classifier_mnist.py --workdir {workdir}")
    if not os.path.exists(os.path.join(workdir, "config.json")):
        raise FileNotFoundError(f"no MNIST classifier in {workdir!r}. {how}")
    config = ckpt.read_config(workdir)
    if config.method.name != "classifier":
        raise ValueError(f"{workdir!r} holds a {config.method.name!r} run, not a classifier. {how}")
    try:
        config, method, state, info = ckpt.load_run(workdir)
    except FileNotFoundError as e:
        raise FileNotFoundError(f"the MNIST classifier in {workdir!r} has no checkpoint. {how}") from e
    step = int(jax.device_get(state.step))
    if step < config.train.steps:
        raise ValueError(f"the MNIST classifier in {workdir!r} is unfinished (step {step} of {config.train.steps}); "
                         f"its features would not be the reference ones. Rerun the same command to finish it: "
                         f"{how.split(': ', 1)[1]}")
    if tuple(info.shape) != (28, 28, 1) or info.num_classes != 10:
        raise ValueError(f"{workdir!r} holds a classifier of {info.shape} images with {info.num_classes} classes; "
                         "the MNIST classifier takes (28, 28, 1) images and 10 classes")
    params = jax.tree.map(jnp.asarray, jax.device_get(state.ema_params))
    return classifier_feature_net(method, params, MNIST_CLASSIFIER, batch_size)


register_feature_net(MNIST_CLASSIFIER, load_mnist_classifier)


def _load_inception(**kwargs) -> FeatureNet:
    from jgen.metrics.inception import load_inception

    return load_inception(**kwargs)


register_feature_net("inception", _load_inception)
