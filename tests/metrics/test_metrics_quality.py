"""Sample quality glue: seeded batched generation and the metric dict of a feature network."""

import types

import jax
import jax.numpy as jnp
import numpy as np

import jgen.methods.classifier  # noqa: F401
from jgen.data import ArraySource, DataInfo
from jgen.methods import get_method
from jgen.metrics.feature_nets import classifier_feature_net
from jgen.metrics.quality import generate_images, real_images, sample_quality
from classifier_test_config import tiny_classifier_config as _tiny_config


class _NoiseGenerator:
    """A generator of uniform-noise images: enough to exercise the batching and seeding."""

    num_classes = 0  # unconditional, as the Method contract spells it

    def generate(self, params, model_state, key, num, labels=None):
        return jax.random.uniform(key, (num, 28, 28, 1)) * params["scale"], 1


def test_generate_images_is_seeded_and_trims_the_last_batch():
    state = types.SimpleNamespace(ema_params={"scale": jnp.float32(1.0)}, model_state={})
    a = generate_images(_NoiseGenerator(), state, 7, seed=3, batch_size=4)
    b = generate_images(_NoiseGenerator(), state, 7, seed=3, batch_size=4)
    c = generate_images(_NoiseGenerator(), state, 7, seed=4, batch_size=4)
    assert a.shape == (7, 28, 28, 1)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_sample_quality_returns_named_metrics():
    info = DataInfo("mnist", (28, 28, 1), 10, 0, 30)
    method = get_method("classifier")(_tiny_config(), info)
    rng = np.random.default_rng(0)
    test = ArraySource(rng.uniform(size=(30, 28, 28, 1)).astype(np.float32), np.arange(30) % 10)
    params = method.init_variables(jax.random.PRNGKey(0), {"image": test.images[:1]})[0]
    net = classifier_feature_net(method, params, batch_size=16)
    config = _tiny_config()
    config.eval.num_samples = 20
    state = types.SimpleNamespace(ema_params={"scale": jnp.float32(0.5)}, model_state={})
    out = sample_quality(_NoiseGenerator(), state, test, config, net=net)
    assert out["num_real"] == 20 and out["num_fake"] == 20
    assert {"fid_mnist_classifier", "is_mnist_classifier", "precision_mnist_classifier"} <= set(out)
    assert np.isfinite(out["fid_mnist_classifier"]) and out["fid_mnist_classifier"] > 0
    assert real_images(test, 100).shape == (30, 28, 28, 1)
