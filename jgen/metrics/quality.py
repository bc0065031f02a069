"""Sample quality of a generative model: embed images with a feature network and compare with real images.

The feature network is `config.eval.feature_net` (default `mnist_classifier`); metric names carry it, e.g.
`fid_mnist_classifier`. Generating the images is `jgen.sampling.generate`'s job; evaluating a whole run directory
is `jgen.run.evaluate_run`'s.
"""

from __future__ import annotations

import numpy as np

from jgen.metrics.feature_nets import FeatureNet
from jgen.metrics.sample_metrics import compute_sample_metrics


def real_images(source, num: int) -> np.ndarray:
    """`num` images of a source at evenly spaced indices (all of them when it has fewer): [n, H, W, C] in [0, 1].
    Spread, not the first `num`: splits are often sorted by class (the embedded MNIST test split's first 500
    images are digits 0-4), and a prefix would score class-balanced samples against a few classes."""
    n = min(num, len(source))
    idx = np.round(np.linspace(0, len(source) - 1, n)).astype(int)
    return np.stack([source[int(i)]["image"] for i in idx])


def images_quality(real: np.ndarray, fake: np.ndarray, net: FeatureNet, seed: int = 0) -> dict[str, float]:
    """All sample metrics of images `fake` against images `real` (both [N, H, W, C] in [0, 1]) under `net`."""
    real_feats = net.features(real)
    fake_feats, fake_probs = net.features_and_probs(fake)
    return compute_sample_metrics(real_feats, fake_feats, fake_probs, net.name, seed=seed)
