"""Sample quality of a generative model: embed images with a feature network and compare with real images.

The feature network is `config.eval.feature_net` (default `mnist_classifier`); metric names carry it, e.g.
`fid_mnist_classifier`. Generating the images is `jgen.sampling.generate`'s job; evaluating a whole run directory
is `jgen.run.evaluate_run`'s. Images can be embedded all at once (`images_quality`) or batch by batch into a
`FeatureSummary` (`summarize`), which holds one batch of images at a time.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from jgen.metrics.feature_nets import FeatureNet
from jgen.metrics.sample_metrics import FeatureSummary, add_batch, compute_sample_metrics, empty_summary


def spread_indices(size: int, num: int) -> np.ndarray:
    """`min(num, size)` indices of a split of `size` examples, evenly spaced from the first to the last ([n] int)."""
    n = min(num, size)
    return np.round(np.linspace(0, size - 1, n)).astype(int)


def real_image_batches(source, num: int, batch_size: int = 1000) -> Iterator[np.ndarray]:
    """`real_images(source, num)` in consecutive batches of up to `batch_size` images [b, H, W, C]."""
    idx = spread_indices(len(source), num)
    for start in range(0, len(idx), batch_size):
        yield np.stack([source[int(i)]["image"] for i in idx[start : start + batch_size]])


def real_images(source, num: int) -> np.ndarray:
    """`num` images of a source at evenly spaced indices (all of them when it has fewer): [n, H, W, C] in [0, 1].
    Spread, not the first `num`: splits are often sorted by class (the embedded MNIST test split's first 500
    images are digits 0-4), and a prefix would score class-balanced samples against a few classes."""
    return np.concatenate(list(real_image_batches(source, num, max(num, 1))))


def summarize(
    images: Iterable[np.ndarray],
    net: FeatureNet,
    keep_features: bool,
    summary: FeatureSummary | None = None,
    name: str = "features",
) -> FeatureSummary:
    """Embed each batch of images [b, H, W, C] in [0, 1] with `net` and add it to `summary` (default: an empty one);
    only the summary outlives a batch. `name` names the set in errors about non-finite features."""
    summary = empty_summary(net.feature_dim, keep_features) if summary is None else summary
    for batch in images:
        feats, probs = net.features_and_probs(batch, progress=False)
        summary = add_batch(summary, feats, probs, name)
    return summary


def images_quality(real: np.ndarray, fake: np.ndarray, net: FeatureNet, seed: int = 0) -> dict[str, float]:
    """All sample metrics of images `fake` against images `real` (both [N, H, W, C] in [0, 1]) under `net`."""
    real_feats = net.features(real)
    fake_feats, fake_probs = net.features_and_probs(fake)
    return compute_sample_metrics(real_feats, fake_feats, fake_probs, net.name, seed=seed)
