"""FID at scale: feature summaries built batch by batch, reference statistics files, and evaluate_run streaming."""

import os
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jgen.methods
from jgen.config import InputError, base_config
from jgen.data import ArraySource, DataInfo
from jgen.metrics.feature_nets import FeatureNet
from jgen.metrics.fid import load_stats, save_stats
from jgen.metrics.quality import images_quality, real_images
from jgen.metrics.sample_metrics import (
    ALL_FEATURES_METRICS,
    ReferenceStats,
    add_batch,
    compute_sample_metrics,
    empty_summary,
    fits_all_features,
    summary_metrics,
)
from jgen.run import Run, evaluate_run
from jgen.sampling import balanced_labels, generate

UNEVEN = [1, 500, 2, 37, 463]  # batch sizes, 1003 rows


def _batches(x, sizes):
    starts = np.cumsum([0] + sizes)
    return [x[a:b] for a, b in zip(starts[:-1], starts[1:])]


def _probs(rng, n, k=4):
    logits = rng.normal(size=(n, k))
    return np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)


def test_summary_over_uneven_batches_equals_all_at_once():
    rng = np.random.default_rng(0)
    x = rng.normal(loc=50.0, scale=3.0, size=(1003, 7)).astype(np.float32)  # a large mean tests the merge's stability
    p = _probs(rng, 1003)
    kept, dropped = empty_summary(7, True), empty_summary(7, False)
    for xb, pb in zip(_batches(x, UNEVEN), _batches(p, UNEVEN)):
        kept, dropped = add_batch(kept, xb, pb), add_batch(dropped, xb, pb)
    x64 = x.astype(np.float64)
    for s in (kept, dropped):
        assert s.count == 1003
        np.testing.assert_allclose(s.stats.mean, x64.mean(axis=0), rtol=1e-12)
        np.testing.assert_allclose(s.stats.scatter / 1002, np.cov(x64, rowvar=False), rtol=1e-9, atol=1e-12)
        np.testing.assert_array_equal(s.all_probs(), p)
    np.testing.assert_array_equal(kept.all_features(), x)
    assert dropped.all_features() is None and dropped.features is None


def test_fid_from_streamed_stats_equals_fid_from_full_features():
    rng = np.random.default_rng(1)
    real, fake = rng.normal(size=(1003, 6)), rng.normal(size=(1003, 6)) * 1.3 + 0.2
    probs = _probs(rng, 1003)
    full = compute_sample_metrics(real, fake, probs, "net", kid_subset_size=100, kid_subsets=5)
    r, f = empty_summary(6, False), empty_summary(6, False)
    for rb, fb, pb in zip(_batches(real, UNEVEN), _batches(fake, UNEVEN[::-1]), _batches(probs, UNEVEN[::-1])):
        r, f = add_batch(r, rb), add_batch(f, fb, pb)
    streamed = summary_metrics(r, f, "net")
    np.testing.assert_allclose(streamed["fid_net"], full["fid_net"], rtol=1e-10)
    assert streamed["is_net"] == full["is_net"] and streamed["num_fake"] == 1003.0
    assert not any(f"{m}_net" in streamed for m in ALL_FEATURES_METRICS)  # features not kept: FID and IS only


def test_npz_round_trip_and_published_format(tmp_path):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(50, 5))
    mu, sigma = x.mean(axis=0), np.cov(x, rowvar=False)
    path = str(tmp_path / "stats.npz")
    save_stats(path, mu, sigma, num_images=50)
    mu2, sigma2, extra = load_stats(path, dim=5)
    np.testing.assert_array_equal(mu2, mu)
    np.testing.assert_array_equal(sigma2, sigma)
    assert int(extra["num_images"]) == 50
    np.savez(tmp_path / "pytorch_fid.npz", mu=mu.astype(np.float32), sigma=sigma)  # pytorch-fid's --save-stats
    mu3, _, extra3 = load_stats(str(tmp_path / "pytorch_fid.npz"), dim=5)
    np.testing.assert_allclose(mu3, mu, rtol=1e-6)
    assert extra3 == {}
    fake = add_batch(empty_summary(5, False), rng.normal(size=(40, 5)))
    from_file = summary_metrics(ReferenceStats(mu2, sigma2, 50), fake, "net")
    from_features = summary_metrics(add_batch(empty_summary(5, False), x), fake, "net")
    np.testing.assert_allclose(from_file["fid_net"], from_features["fid_net"], rtol=1e-12)


@pytest.mark.parametrize(
    "content, message",
    [
        ({"m": np.zeros(3), "s": np.eye(3)}, r"lack \['mu', 'sigma'\]: the file holds \['m', 's'\]"),
        ({"mu": np.zeros(3), "sigma": np.eye(3)}, "3-dimensional features, but the feature network gives 4"),
        ({"mu": np.zeros(4), "sigma": np.eye(3)}, r"sigma \[D, D\]; got mu \(4,\) and sigma \(3, 3\)"),
        (None, "not a readable .npz"),
    ],
)
def test_bad_npz_gives_a_clear_error(tmp_path, content, message):
    path = tmp_path / "ref.npz"
    if content is None:
        path.write_text("not an npz")
    else:
        np.savez(path, **content)
    with pytest.raises(InputError, match=message):
        load_stats(str(path), dim=4)
    with pytest.raises(InputError, match="do not exist"):
        load_stats(str(tmp_path / "missing.npz"), dim=4)


def test_the_all_features_rule():
    assert fits_all_features(10_000, 10_000, 2048) and not fits_all_features(50_000, 50_000, 2048)
    assert fits_all_features(50_000, 50_000, 128)


# -- evaluate_run, streaming ------------------------------------------------------------------------------------
class _Noise(jgen.methods.Method):
    """Uniform-noise 8x8 images: a generator with no network, for exercising the evaluation path."""

    name = "noise"
    capabilities = frozenset({"sample"})

    def __init__(self):
        pass

    def eval_step(self, params, model_state, batch, key):
        return {}

    def generate(self, params, model_state, key, num, labels=None, spec=None):
        return jax.random.uniform(key, (num, 8, 8, 1)) ** params["power"], 1


def _projection_net() -> FeatureNet:
    """Features: a fixed random projection of the pixels [B, 8]; probs: a softmax over 4 classes."""
    w = jnp.asarray(np.random.default_rng(3).normal(size=(64, 12)), jnp.float32)

    def apply(images):
        h = images.reshape(images.shape[0], -1) @ w
        return h[:, :8], jax.nn.softmax(h[:, 8:])

    return FeatureNet("proj", None, 8, 4, apply, batch_size=64)


@pytest.fixture
def noise_run(tmp_path, monkeypatch):
    monkeypatch.setenv("JGEN_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(4)
    test = ArraySource(rng.uniform(size=(100, 8, 8, 1)) ** 2, np.arange(100) % 10)
    config = base_config()
    config.data.name = "digits"
    state = types.SimpleNamespace(step=0, ema_params={"power": jnp.float32(1.5)}, model_state={})
    return Run(config, _Noise(), state, DataInfo("digits", (8, 8, 1), 0, 100, 100), str(tmp_path), test, test)


def test_evaluate_run_streams_and_matches_the_in_memory_metrics(noise_run, tmp_path):
    net, n = _projection_net(), 300  # two generate batches (250, 50) against 100 test images
    fake, _ = generate(noise_run.method, noise_run.state.ema_params, {}, n, seed=0, labels=balanced_labels(n, 0))
    want = images_quality(real_images(noise_run.test_source, n), fake, net)
    row = evaluate_run(noise_run, n, feature_net=net)
    assert row["num_samples"] == n and "skipped" not in row and row["reference"] == "100 images of the test split"
    for key, value in want.items():
        np.testing.assert_allclose(row[key], value, rtol=1e-9, err_msg=key)

    # Over the memory rule's limit: FID and IS only, the others named as skipped; the reference statistics cached.
    small = evaluate_run(
        noise_run, n, feature_net=net, all_features_max_bytes=0, ref_stats_out=str(tmp_path / "ref.npz")
    )
    assert small["skipped"] == [f"{m}_proj" for m in ALL_FEATURES_METRICS] and "0 MiB limit" in small["skipped_reason"]
    assert not set(small["skipped"]) & set(small)
    np.testing.assert_allclose(small["fid_proj"], want["fid_proj"], rtol=1e-9)
    assert small["is_proj"] == pytest.approx(want["is_proj"], rel=1e-9)
    cached = small["reference"].split("statistics cached in ")[1][:-1]
    assert os.path.dirname(cached) == str(tmp_path / "cache" / "fid_stats")
    mu, sigma, _ = load_stats(cached)
    save_stats(cached, mu + 1.0, sigma)  # a second evaluation reads the cache, not the split
    again = evaluate_run(noise_run, n, feature_net=net, all_features_max_bytes=0)
    assert "cached statistics" in again["reference"] and again["fid_proj"] > small["fid_proj"] + 1.0

    # The written reference statistics as --ref_stats: the same FID, and the reason for skipping says why.
    from_file = evaluate_run(noise_run, n, feature_net=net, ref_stats=str(tmp_path / "ref.npz"))
    np.testing.assert_allclose(from_file["fid_proj"], want["fid_proj"], rtol=1e-9)
    assert from_file["num_real"] == 100 and "statistics only" in from_file["skipped_reason"]
    with pytest.raises(InputError, match="ref_split='val'"):
        evaluate_run(noise_run, n, feature_net=net, ref_split="val")
