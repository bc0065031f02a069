"""Sample quality of a generative model: generate, embed with a feature network, compare with test images.

Used by the training loop (`config.eval.sample_metrics_every`) and by `python -m jgen eval --workdir RUN`.
The feature network is `config.eval.feature_net` (default `mnist_classifier`); metric names carry it,
e.g. `fid_mnist_classifier`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jgen.metrics.feature_nets import FeatureNet, get_feature_net
from jgen.metrics.sample_metrics import compute_sample_metrics

SAMPLE_SALT = 0x5A4D
GENERATE_BATCH = 250


def real_images(source, num: int) -> np.ndarray:
    """The first `num` images of a source (all of them when it has fewer): [n, H, W, C] in [0, 1]."""
    n = min(num, len(source))
    return np.stack([source[i]["image"] for i in range(n)])


def generate_images(method, state, num: int, seed: int, batch_size: int = GENERATE_BATCH) -> np.ndarray:
    """`num` samples [num, H, W, C] in [0, 1] from the EMA parameters, in fixed-size jitted batches.
    Conditional methods get class-balanced labels (0, 1, ..., K-1, 0, ...) and their configured sampler/guidance."""
    k = method.num_classes
    labels = jnp.arange(batch_size, dtype=jnp.int32) % k if k else None
    gen = jax.jit(lambda params, ms, key, labels: method.generate(params, ms, key, batch_size, labels)[0])
    base = jax.random.fold_in(jax.random.PRNGKey(seed), SAMPLE_SALT)
    out = []
    for i in range(-(-num // batch_size)):
        key = jax.random.fold_in(base, i)
        out.append(np.asarray(jax.device_get(gen(state.ema_params, state.model_state, key, labels))))
    return np.concatenate(out)[:num]


def images_quality(real: np.ndarray, fake: np.ndarray, net: FeatureNet, seed: int = 0) -> dict[str, float]:
    """All sample metrics of images `fake` against images `real` (both [N, H, W, C] in [0, 1]) under `net`."""
    real_feats = net.features(real)
    fake_feats, fake_probs = net.features_and_probs(fake)
    return compute_sample_metrics(real_feats, fake_feats, fake_probs, net.name, seed=seed)


def sample_quality(method, state, test_source, config, net: FeatureNet | None = None) -> dict[str, float]:
    """Metrics of `config.eval.num_samples` samples against as many test images (fewer if the split is smaller)."""
    net = net or get_feature_net(config.eval.feature_net)
    num = int(config.eval.num_samples)
    real = real_images(test_source, num)
    fake = generate_images(method, state, num, int(config.seed))
    return images_quality(real, fake, net, seed=int(config.seed))


def evaluate_workdir(workdir: str, num_samples: int = 1000, seed: int = 0,
                     feature_net: str | None = None) -> dict[str, float]:
    """Sample metrics of a trained run: `num_samples` samples (seeded) against the test split, under
    `feature_net` (default: the run's config.eval.feature_net)."""
    from jgen.data import get_source
    from jgen.train.checkpoint import load_run

    if not (isinstance(num_samples, int) and num_samples >= 2):
        raise ValueError(f"num_samples={num_samples!r}: must be an integer >= 2")
    config, method, state, info = load_run(workdir)
    net = get_feature_net(feature_net or config.eval.feature_net)
    _, test_source, _ = get_source(config.data)
    real = real_images(test_source, num_samples)
    fake = generate_images(method, state, num_samples, seed)
    return {"workdir": workdir, "step": int(jax.device_get(state.step)), **images_quality(real, fake, net, seed)}
