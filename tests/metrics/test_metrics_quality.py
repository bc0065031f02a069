"""The one generation path (seeded, batched, compiled once) and the metric dict of a feature network."""

import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from classifier_test_config import tiny_classifier_config as _tiny_config

import jgen.methods
from jgen.data import ArraySource, DataInfo
from jgen.methods import get_method
from jgen.metrics.feature_nets import classifier_feature_net
from jgen.metrics.quality import real_images
from jgen.sampling import generate
from jgen.train.loop import sample_quality
from jgen.train.sharding import make_mesh


class _NoiseGenerator(jgen.methods.Method):
    """A generator of uniform-noise images: enough to exercise the batching, seeding and compile caching."""

    name = "noise"
    capabilities = frozenset({"sample"})
    traces = 0

    def __init__(self):
        pass

    def eval_step(self, params, model_state, batch, key):
        return {}

    def generate(self, params, model_state, key, num, labels=None, spec=None):
        type(self).traces += 1  # runs once per compilation (tracing), not once per call
        return jax.random.uniform(key, (num, 28, 28, 1)) * params["scale"], 1


def test_generate_is_seeded_trims_the_last_batch_and_compiles_once():
    params = {"scale": jnp.float32(1.0)}
    gen = _NoiseGenerator()
    a, info = generate(gen, params, {}, 7, seed=3, batch_size=4)
    b, _ = generate(gen, params, {}, 7, seed=3, batch_size=4)
    c, _ = generate(gen, params, {}, 7, seed=4, batch_size=4)
    assert a.shape == (7, 28, 28, 1) and info.num_images == 7 and info.nfe_per_image == 1
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert _NoiseGenerator.traces == 1  # three calls of two batches each: one program
    with pytest.raises(ValueError, match="unconditional"):
        generate(gen, params, {}, 2, seed=0, labels=[0, 1])
    with pytest.raises(ValueError, match="num=0"):
        generate(gen, params, {}, 0, seed=0)
    with pytest.raises(ValueError, match=r"sampling option\(s\) \['steps'\]"):
        generate(gen, params, {}, 2, gen.sampling_spec(steps=3), seed=0)


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
    mesh = make_mesh()  # the loop gathers the EMA parameters on its mesh
    out = sample_quality(_NoiseGenerator(), state, test, config, net, mesh)
    assert out["num_real"] == 20 and out["num_fake"] == 20
    assert {"fid_mnist_classifier", "is_mnist_classifier", "precision_mnist_classifier"} <= set(out)
    assert np.isfinite(out["fid_mnist_classifier"]) and out["fid_mnist_classifier"] > 0
    assert real_images(test, 100).shape == (30, 28, 28, 1)
