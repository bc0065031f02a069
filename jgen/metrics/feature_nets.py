"""Feature networks for sample metrics: a jit-compiled, batched map from images to features and class
probabilities (`FeatureNet`), and the registry of the networks jgen knows by name (one `FeatureNetSpec` each).

    net = jgen.run.load_feature_net("mnist_classifier")   # the run layer loads a net by name
    feats = net.features(images)                          # images [N, 28, 28, 1] in [0, 1] -> [N, 128] float32
    probs = net.probs(images)                             # -> [N, 10]

The two built-in networks are registered here, where the registry is defined, so `feature_net_names()` is complete
as soon as this module is imported: "mnist_classifier", a classifier jgen trains itself into
`cache_dir("mnist_classifier")` (experiments/configs/classifier_mnist.py; the run layer loads that run), and
"inception", the FID InceptionV3 whose weights are a converted file (jgen.metrics.inception). Other networks add
themselves with `register_feature_net`. Nothing is downloaded.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from jgen.metrics import inception
from jgen.metrics.inputs import finite_array

MNIST_CLASSIFIER = "mnist_classifier"


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


@dataclasses.dataclass(frozen=True)
class FeatureNetSpec:
    """One feature network jgen knows, by the name configs and flags use (`eval.feature_net`, `--feature_net`).

    Either `load(**kwargs) -> FeatureNet` builds it from a weights file, or it is a classifier jgen trains itself
    with the config `trained_by` into `cache_dir(name)`, for images `input_shape` of `num_classes` classes; the run
    layer loads that run (`jgen.run.load_feature_net`)."""

    name: str
    about: str  # what it is, in a line (help texts and docs)
    load: Callable[..., FeatureNet] | None = None
    trained_by: str = ""
    input_shape: tuple[int, int, int] | None = None
    num_classes: int = 0


def load_inception(path: str | None = None, batch_size: int = 50) -> FeatureNet:
    """The FID Inception as a FeatureNet named "inception" (metrics fid_inception, is_inception, ...); weights from
    `path` (default: `inception.default_weights_path()` or $JGEN_INCEPTION_WEIGHTS)."""
    variables = inception.load_inception_variables(path)
    return FeatureNet(
        name=inception.INCEPTION,
        input_shape=None,
        feature_dim=2048,
        num_classes=inception.NUM_LOGITS if inception.has_logits(variables) else 0,
        apply=inception.inception_apply(variables),
        batch_size=batch_size,
    )


FEATURE_NETS: dict[str, FeatureNetSpec] = {
    spec.name: spec
    for spec in (
        FeatureNetSpec(
            MNIST_CLASSIFIER,
            "jgen's MNIST classifier: 128 penultimate ReLU features, a 10-way softmax (for 28x28 digits)",
            trained_by="experiments/configs/classifier_mnist.py",
            input_shape=(28, 28, 1),
            num_classes=10,
        ),
        FeatureNetSpec(
            inception.INCEPTION,
            "the FID InceptionV3 of pytorch-fid: 2,048 pool features (for natural images)",
            load=load_inception,
        ),
    )
}


def register_feature_net(spec: FeatureNetSpec) -> None:
    """Make `spec` available by its name (config.eval.feature_net, --feature_net)."""
    if spec.name in FEATURE_NETS and FEATURE_NETS[spec.name] != spec:
        raise ValueError(f"feature net {spec.name!r} is registered twice")
    FEATURE_NETS[spec.name] = spec


def feature_net_names() -> list[str]:
    return sorted(FEATURE_NETS)
