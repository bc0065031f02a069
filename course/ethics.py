"""Ethics, measured: chart 31 (memorisation and representation), for every image family that ran.

Memorisation: each family's samples beside their nearest training images, in pixel space and in the feature space
of the run's feature network, and the data-copying test of Meehan et al. (2020) in its global form (no cells): the
distances from samples to their nearest training image against the distances from held-out test images to theirs.
With Mann-Whitney's U over the two sets of distances, Z_U = (U - m n / 2) / sqrt(m n (m + n + 1) / 12) is near 0 when
the samples are as far from the training set as new data are, negative when they sit closer (copying) and positive
when farther (under-fitting). Representation: the classes the feature network's classifier gives the samples, drawn
without labels, against the data's class frequencies.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from course.common import MissingData, new_figure, save, show_images
from jgen.run import load_feature_net, load_run, read_config
from jgen.sampling import generate


def nearest(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distance [N], index [N]) of the nearest row of b [M, D] to each row of a [N, D] (Euclidean)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    d2 = np.sum(a**2, 1)[:, None] + np.sum(b**2, 1)[None] - 2 * a @ b.T
    idx = np.argmin(d2, axis=1)
    return np.sqrt(np.maximum(d2[np.arange(len(a)), idx], 0.0)), idx


def copying_z(sample_dist: np.ndarray, test_dist: np.ndarray) -> float:
    """Meehan et al.'s Z_U over all points: < 0 when samples lie closer to the training set than test data do."""
    from scipy.stats import mannwhitneyu  # local: scipy only for this statistic

    m, n = len(sample_dist), len(test_dist)
    u = mannwhitneyu(sample_dist, test_dist, alternative="two-sided").statistic  # pairs with sample > test
    return float((u - m * n / 2) / math.sqrt(m * n * (m + n + 1) / 12))


def memorisation_data(
    runs: Mapping[str, str], num_samples: int = 500, num_shown: int = 6, seed: int = 0, feature_net: str | None = None
) -> dict:
    """Chart 31's data, under one feature net (default: the first run's config.eval.feature_net):

    data: {"test_pixel", "test_feature"}: each test image's distance to its nearest training image [T], and
      "class_freq" [K]: the test split's class frequencies;
    families: {run: {"samples" [num_shown, H, W, C], "pixel_nn", "feature_nn" [num_shown, H, W, C]: their nearest
      training images, "pixel_dist", "feature_dist" [num_samples]: every sample's nearest-training distance,
      "z_pixel", "z_feature": the copying statistic, "class_freq" [K]: the classifier's classes of the samples,
      "conditional": whether the model takes labels (sampled here without)}}."""
    if not runs:
        raise MissingData("chart 31 needs at least one image family's run")
    names = list(runs)
    net_name = feature_net or read_config(runs[names[0]]).eval.feature_net
    net = load_feature_net(net_name)
    first = load_run(runs[names[0]])
    train = np.stack([first.train_source[i]["image"] for i in range(len(first.train_source))])
    test = np.stack([first.test_source[i]["image"] for i in range(len(first.test_source))])
    test_labels = np.array([int(first.test_source[i]["label"]) for i in range(len(first.test_source))])
    flat = lambda x: x.reshape(len(x), -1)  # noqa: E731
    train_feats = net.features(train)
    test_pixel, _ = nearest(flat(test), flat(train))
    test_feature, _ = nearest(net.features(test), train_feats)
    k = net.num_classes
    out = {
        "net": net_name,
        "data": {
            "test_pixel": test_pixel,
            "test_feature": test_feature,
            "class_freq": np.bincount(test_labels, minlength=k) / len(test_labels),
        },
        "families": {},
    }
    for name in names:
        r = first if name == names[0] else load_run(runs[name])
        samples, _ = generate(r.method, r.state.ema_params, r.state.model_state, num_samples, seed=seed)
        feats, probs = net.features_and_probs(samples)
        pixel_dist, pixel_idx = nearest(flat(samples), flat(train))
        feature_dist, feature_idx = nearest(feats, train_feats)
        out["families"][name] = {
            "method": r.method.name,
            "conditional": r.method.num_classes > 0,
            "samples": samples[:num_shown],
            "pixel_nn": train[pixel_idx[:num_shown]],
            "feature_nn": train[feature_idx[:num_shown]],
            "pixel_dist": pixel_dist,
            "feature_dist": feature_dist,
            "z_pixel": copying_z(pixel_dist, test_pixel),
            "z_feature": copying_z(feature_dist, test_feature),
            "class_freq": np.bincount(np.argmax(probs, axis=1), minlength=k) / num_samples,
        }
    return out


def draw_memorisation(data: dict, path: str) -> None:
    fam = data["families"]
    n = len(fam)
    plt, fig = new_figure(15, 2.3 * n + 0.8)
    gs = fig.add_gridspec(n, 4, width_ratios=[2.2, 1.3, 1.3, 1.2])
    for i, (name, f) in enumerate(fam.items()):
        s = len(f["samples"])
        grid = np.concatenate([f["samples"], f["pixel_nn"], f["feature_nn"]])
        ax = fig.add_subplot(gs[i, 0])
        show_images(ax, grid, ncol=s, title=f"{name}: samples / nearest training image (pixels) / (features)")
        for j, (key, test_key, z) in enumerate(
            (("pixel_dist", "test_pixel", f["z_pixel"]), ("feature_dist", "test_feature", f["z_feature"]))
        ):
            ax = fig.add_subplot(gs[i, 1 + j])
            both = np.concatenate([f[key], data["data"][test_key]])
            bins = np.linspace(both.min(), both.max(), 30)
            ax.hist(data["data"][test_key], bins=bins, density=True, alpha=0.5, color="tab:blue", label="test")
            ax.hist(f[key], bins=bins, density=True, alpha=0.5, color="tab:red", label="samples")
            ax.set_title(f"{'pixel' if j == 0 else 'feature'} distance to nearest train; Z_U = {z:.1f}", fontsize=8)
            ax.tick_params(labelsize=7)
            if i == 0:
                ax.legend(fontsize=7)
        ax = fig.add_subplot(gs[i, 3])
        classes = np.arange(len(f["class_freq"]))
        ax.bar(classes - 0.2, data["data"]["class_freq"], width=0.4, label="test data", color="tab:blue")
        ax.bar(classes + 0.2, f["class_freq"], width=0.4, label="samples", color="tab:red")
        ax.set_xticks(classes)
        ax.tick_params(labelsize=7)
        note = " (conditional model, no labels)" if f["conditional"] else ""
        ax.set_title(f"classes of the samples{note}", fontsize=8)
        if i == 0:
            ax.legend(fontsize=7)
    fig.suptitle(
        f"31 Ethics: memorisation (Z_U < 0: samples closer to the training set than test data) and "
        f"representation ({data['net']} features and classes)",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.4 / fig.get_figheight()))  # the top 0.4 inch for the title
    save(fig, path)
