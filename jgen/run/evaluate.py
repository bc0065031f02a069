"""Evaluating a loaded run: sample quality against a reference, and the likelihood a method computes on demand.

    row = evaluate_run(run, num_samples=1000)           # FID/IS/KID/precision/recall (+ bits/dim, images/s)
    lik = evaluate_likelihood(run, num_images=64)       # diffusion's probability-flow ODE bits/dim

`jgen eval`, `jgen compare`, the course's charts and notebooks all evaluate through `evaluate_run`; samples come from
the one generation path (`jgen.sampling.generate_batches`), streamed through the feature network batch by batch.
Reference statistics of a split are cached on disk (`reference_cache_path`).
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Hashable, Iterable, Iterator

import jax
import ml_collections
import numpy as np
from tqdm.auto import tqdm

from jgen.config import InputError, cache_dir, check_int
from jgen.metrics.feature_nets import FeatureNet
from jgen.metrics.fid import finalize_stats, load_stats, save_stats
from jgen.metrics.quality import real_image_batches, real_images, summarize
from jgen.metrics.sample_metrics import (
    ALL_FEATURES_MAX_BYTES,
    ALL_FEATURES_METRICS,
    FeatureSummary,
    ReferenceStats,
    empty_summary,
    fits_all_features,
    summary_metrics,
)
from jgen.run.workdir import Run, load_feature_net
from jgen.sampling import balanced_labels, generate_batches
from jgen.train.loop import evaluate
from jgen.train.writer import read_metrics

log = logging.getLogger("jgen")


REF_SPLITS = ("test", "train")


class _Progress:
    """Images done out of `total`: a tqdm bar on a terminal, else a log line at every tenth (batch jobs' logs)."""

    def __init__(self, total: int, desc: str):
        self.total, self.desc, self.done, self.next_line = total, desc, 0, 0.1
        self.bar = tqdm(total=total, desc=desc, unit="img", dynamic_ncols=True, disable=None, leave=False)

    def update(self, n: int) -> None:
        self.done += n
        self.bar.update(n)
        if self.bar.disable and self.done >= self.next_line * self.total:
            log.info("%s: %d / %d images", self.desc, self.done, self.total)
            self.next_line = math.floor(10 * self.done / self.total + 1) / 10

    def wrap(self, batches: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        for batch in batches:
            yield batch
            self.update(len(batch))
        self.bar.close()


def reference_cache_path(
    config: ml_collections.ConfigDict, split: str, net: FeatureNet, num: int, shape: tuple[int, ...]
) -> str:
    """Where the statistics of `num` images of a split under `net` are cached: keyed by the dataset (and TFDS split
    string), the split, the network's name and a fingerprint of its weights (`FeatureNet.fingerprint`, so that a
    retrained MNIST classifier does not reuse stale statistics) and the image count."""
    d = config.data
    dataset = f"tfds-{d.tfds_name}" if d.name == "tfds" else d.name
    split_name = (d.train_split if split == "train" else d.test_split) if d.name == "tfds" else split
    key = f"{dataset}_{split_name}_{net.name}-{net.fingerprint(shape)}_{num}"
    return cache_dir("fid_stats", re.sub(r"[^A-Za-z0-9_.+-]", "-", key) + ".npz")


def _reference(
    run: Run,
    net: FeatureNet,
    num_samples: int,
    keep_features: bool,
    real: np.ndarray | None,
    ref_stats: str | None,
    ref_split: str,
) -> tuple[FeatureSummary | ReferenceStats, str]:
    """The reference side of an evaluation and a line saying what it is: a statistics file, the given images, or
    evenly spread images of a split (embedded now when every feature is kept, else statistics from the cache or
    computed once and cached)."""
    if ref_stats is not None:
        mu, sigma, extra = load_stats(ref_stats, net.feature_dim)
        count = int(extra["num_images"]) if "num_images" in extra else None
        return ReferenceStats(mu, sigma, count), f"statistics from {ref_stats}"
    if real is not None:
        return summarize([real], net, keep_features, name="real features"), f"{len(real)} given images"
    source = run.train_source if ref_split == "train" else run.test_source
    num = min(num_samples, len(source))
    what = f"{num} images of the {ref_split} split"
    batches = real_image_batches(source, num, max(net.batch_size, 1000 // net.batch_size * net.batch_size))
    if keep_features:
        return summarize(_Progress(num, f"{what} through {net.name}").wrap(batches), net, True, name="real"), what
    path = reference_cache_path(run.config, ref_split, net, num, tuple(run.info.shape))
    if os.path.exists(path):
        try:
            mu, sigma, _ = load_stats(path, net.feature_dim)
            return ReferenceStats(mu, sigma, num), f"{what} (cached statistics {path})"
        except InputError as e:  # a damaged cache file is recomputed
            log.warning("recomputing damaged cached statistics: %s", e)
    summary = summarize(_Progress(num, f"{what} through {net.name}").wrap(batches), net, False, name="real")
    mu, sigma = finalize_stats(summary.stats)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    save_stats(path, mu, sigma, num_images=num)
    return ReferenceStats(mu, sigma, num), f"{what} (statistics cached in {path})"


def _check_likelihood_images(run: Run, num_images) -> None:
    check_int("likelihood_images", num_images, 2, " (test images, e.g. 64)")
    if "likelihood" not in run.method.capabilities:
        raise InputError(
            f"likelihood_images={num_images}: a {run.method.name!r} run has no on-demand likelihood "
            "(diffusion's ODE is one); its bits/dim, where it has one, comes from its evaluations"
        )


LIKELIHOOD_BATCH = 32  # test images per compiled call of an on-demand likelihood (one progress tick each)


def evaluate_likelihood(run: Run, num_images: int, seed: int = 0, batch_size: int = LIKELIHOOD_BATCH) -> dict:
    """Bits/dim of `num_images` test images (evenly spread over the split) by the method's on-demand likelihood
    ("likelihood" capability, e.g. diffusion's probability-flow ODE) with its EMA parameters: {"bits_per_dim" (the
    mean), "bits_per_dim_kind", "bits_per_dim_se" (standard error over the images), "likelihood_images"}."""
    _check_likelihood_images(run, num_images)
    metric, kind = run.method.likelihood_metric()
    images = real_images(run.test_source, num_images)
    bs = min(batch_size, len(images))
    step = run.method.jitted("likelihood_step", run.method.likelihood_step)
    key = jax.random.fold_in(jax.random.PRNGKey(seed), 1)  # a stream apart from generate's PRNGKey(seed)
    values = []
    for i in tqdm(range(0, len(images), bs), desc=f"{metric} ({kind})", unit="batch", leave=False, disable=None):
        chunk = images[i : i + bs]
        padded = np.concatenate([chunk, np.zeros((bs - len(chunk), *chunk.shape[1:]), chunk.dtype)])
        out = step(run.state.ema_params, run.state.model_state, {"image": padded}, jax.random.fold_in(key, i))
        values.append(np.asarray(out[metric])[: len(chunk)])
    values = np.concatenate(values).astype(np.float64)
    return {
        "bits_per_dim": float(values.mean()),
        "bits_per_dim_kind": kind,
        "bits_per_dim_se": float(values.std(ddof=1) / np.sqrt(len(values))),
        "likelihood_images": len(values),
    }


def evaluate_run(
    run: Run,
    num_samples: int = 1000,
    seed: int = 0,
    feature_net: FeatureNet | str | None = None,
    real: np.ndarray | None = None,
    timed: bool = False,
    ref_stats: str | None = None,
    ref_split: str = "test",
    ref_stats_out: str | None = None,
    all_features_max_bytes: int = ALL_FEATURES_MAX_BYTES,
    likelihood_images: int = 0,
    spec: Hashable = None,
) -> dict:
    """The one evaluation of a run: `num_samples` EMA samples (class-balanced labels for a conditional method;
    `spec` its sampling settings, `run.method.sampling_spec(...)`, None: the configured ones) against a reference
    under `feature_net` (default: the run's config.eval.feature_net): FID, IS, KID, precision/recall,
    density/coverage, plus bits/dim where the method has a likelihood (from its last evaluation, or with
    `likelihood_images` > 0 and an on-demand likelihood, `evaluate_likelihood` on that many test images), and
    images/s (generation only, after compilation) with `timed`.

    Samples are generated, embedded and dropped batch by batch: memory holds one batch of images, the running
    feature statistics and the class probabilities, and every feature only when KID, precision/recall and
    density/coverage will be computed (`fits_all_features`: both sets as float64 within `all_features_max_bytes`);
    otherwise the row lists them under `skipped`, with `skipped_reason`. The reference is `ref_stats` (a `.npz` of
    mu/sigma, FID only), else the images `real`, else min(num_samples, split size) evenly spread images of
    `ref_split` ("test", jgen's default, or "train", the DDPM/score_sde CIFAR-10 protocol), whose statistics are
    cached on disk when the features are not kept. `ref_stats_out` writes the reference statistics as `.npz`."""
    check_int("num_samples", num_samples, 2)
    if ref_split not in REF_SPLITS:
        raise InputError(f"ref_split={ref_split!r}: choose one of {list(REF_SPLITS)}")
    if ref_stats is not None and real is not None:
        raise InputError("give the reference as images (real) or as statistics (ref_stats), not both")
    if likelihood_images:  # checked before the samples cost anything
        _check_likelihood_images(run, likelihood_images)
    head = {
        "workdir": run.workdir,
        "run": os.path.basename(os.path.normpath(run.workdir)),
        "method": run.method.name,
        "step": run.step,
    }
    if "text" in run.method.capabilities:  # a language model: its test-split likelihood, not image metrics
        mesh = jax.sharding.Mesh(np.array(jax.devices()), ("data",))
        return {**head, **evaluate(run.method, run.state, run.test_source, run.config, mesh)}
    net = (
        feature_net
        if isinstance(feature_net, FeatureNet)
        else load_feature_net(feature_net or run.config.eval.feature_net)
    )
    source = run.train_source if ref_split == "train" else run.test_source
    num_real = len(real) if real is not None else min(num_samples, len(source))
    keep = ref_stats is None and fits_all_features(num_real, num_samples, net.feature_dim, all_features_max_bytes)
    reference, reference_line = _reference(run, net, num_samples, keep, real, ref_stats, ref_split)
    if ref_stats_out is not None:
        mu, sigma = (
            (reference.mu, reference.sigma)
            if isinstance(reference, ReferenceStats)
            else finalize_stats(reference.stats)
        )
        save_stats(ref_stats_out, mu, sigma, **({} if reference.count is None else {"num_images": reference.count}))
    fake, seconds, nfe = empty_summary(net.feature_dim, keep), 0.0, 0
    progress = _Progress(num_samples, f"{num_samples} samples through {net.name}")
    for images, batch_nfe, dt in generate_batches(
        run.method,
        run.state.ema_params,
        run.state.model_state,
        num_samples,
        spec,
        seed=seed,
        labels=balanced_labels(num_samples, run.method.num_classes),
        timed=timed,
    ):
        fake = summarize([images], net, keep, fake, name="sample features")
        seconds += dt
        nfe = batch_nfe  # the same for every batch
        progress.update(len(images))
    progress.bar.close()
    row = {
        **head,
        "num_samples": fake.count,
        "reference": reference_line,
        **summary_metrics(reference, fake, net.name, seed=seed),
        "nfe": nfe,
        "feature_net": net.name,  # which network scored it: its name and a fingerprint of its weights
        "feature_net_fingerprint": net.fingerprint(tuple(run.info.shape)),
    }
    if not keep:
        row["skipped"] = [f"{m}_{net.name}" for m in ALL_FEATURES_METRICS]
        row["skipped_reason"] = (
            "the reference is statistics only (ref_stats); these metrics need every reference feature"
            if ref_stats is not None
            else f"they need every feature: {num_real} reference + {num_samples} sample features of dimension "
            f"{net.feature_dim} take {(num_real + num_samples) * net.feature_dim * 8 / 2**20:.0f} MiB as float64, "
            f"over the {all_features_max_bytes / 2**20:.0f} MiB limit (fits_all_features); evaluate fewer samples "
            "for them"
        )
        log.info("skipped %s: %s", ", ".join(row["skipped"]), row["skipped_reason"])
    if timed:
        row["images_per_sec"] = num_samples / max(seconds, 1e-9)
    likelihood = run.method.likelihood_metric()
    if likelihood_images:
        row.update(evaluate_likelihood(run, likelihood_images, seed))
    elif likelihood:  # the run's last evaluation (the metrics file is read only when it can answer)
        evals = read_metrics(run.workdir, "eval")
        if evals and likelihood[0] in evals[-1]:
            row["bits_per_dim"], row["bits_per_dim_kind"] = evals[-1][likelihood[0]], likelihood[1]
    return row
