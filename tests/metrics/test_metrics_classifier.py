"""The digit classifier, its Method, the FeatureNet wrapper and the checkpoint loader's refusals."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from classifier_test_config import tiny_classifier_config as _tiny_config

import jgen.methods.classifier  # noqa: F401  (registers "classifier")
from jgen.config import cache_dir
from jgen.data import DataInfo
from jgen.methods import get_method
from jgen.metrics.feature_nets import classifier_feature_net
from jgen.nn.classifier import DigitClassifier, random_shift
from jgen.run import load_feature_net
from jgen.sampling import generate

MNIST = DataInfo("mnist", (28, 28, 1), 10, 4000, 1000)


def test_classifier_shapes():
    net = DigitClassifier(num_classes=10, features=(4, 8), feature_dim=16, dropout=0.5)
    x = jnp.zeros((3, 28, 28, 1))
    params = net.init(jax.random.PRNGKey(0), x)["params"]
    logits, feats = net.apply({"params": params}, x)
    assert logits.shape == (3, 10) and feats.shape == (3, 16)
    assert bool(jnp.all(feats >= 0))  # ReLU features
    a, _ = net.apply({"params": params}, x + 0.3, train=True, rngs={"dropout": jax.random.PRNGKey(1)})
    b, _ = net.apply({"params": params}, x + 0.3, train=True, rngs={"dropout": jax.random.PRNGKey(2)})
    assert not np.allclose(a, b)  # dropout is active in training only
    c, _ = net.apply({"params": params}, x + 0.3)
    np.testing.assert_array_equal(c, net.apply({"params": params}, x + 0.3)[0])


def test_random_shift_translates_without_losing_central_content():
    x = jnp.zeros((8, 12, 12, 1)).at[:, 5:7, 5:7, :].set(1.0)  # a 2x2 blob in the middle
    y = random_shift(jax.random.PRNGKey(0), x, 2)
    np.testing.assert_allclose(jnp.sum(y, axis=(1, 2, 3)), 4.0)
    assert len({np.argmax(np.asarray(img).ravel()) for img in y}) > 1  # offsets differ between images
    np.testing.assert_array_equal(random_shift(jax.random.PRNGKey(0), x, 0), x)


def test_method_loss_and_eval_step():
    method = get_method("classifier")(_tiny_config(), MNIST)
    rng = np.random.default_rng(0)
    batch = {"image": rng.uniform(size=(6, 28, 28, 1)).astype(np.float32), "label": np.arange(6, dtype=np.int32)}
    state = method.init_state(jax.random.PRNGKey(0), batch)
    loss, (metrics, _) = method.loss_fn(state.params, {}, batch, jax.random.PRNGKey(1))
    assert np.isfinite(loss) and abs(float(loss) - np.log(10)) < 1.0  # near-uniform predictions at init
    out = method.eval_step(state.params, {}, batch, jax.random.PRNGKey(2))
    assert out["accuracy"].shape == (6,) and out["loss"].shape == (6,)
    np.testing.assert_allclose(
        np.mean(out["loss"]), method.loss_fn(state.params, {}, batch, jax.random.PRNGKey(1))[0], rtol=0.5
    )
    assert "sample" not in method.capabilities
    with pytest.raises(ValueError, match="not a generative model"):
        generate(method, state.params, {}, 4, seed=0)
    new_state, m = jax.jit(method.train_step)(state, batch, jax.random.PRNGKey(3))
    assert int(new_state.step) == 1 and np.isfinite(m["loss"])


def test_feature_net_batches_and_checks_inputs():
    method = get_method("classifier")(_tiny_config(), MNIST)
    x = np.random.default_rng(1).uniform(size=(23, 28, 28, 1)).astype(np.float32)
    params = method.init_variables(jax.random.PRNGKey(0), {"image": x[:1]})[0]
    net = classifier_feature_net(method, params, batch_size=10)  # 3 batches, the last one padded
    feats, probs = net.features_and_probs(x)
    logits, want = method.apply(params, jnp.asarray(x))
    assert feats.shape == (23, 16) and probs.shape == (23, 10)
    np.testing.assert_allclose(feats, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(probs, jax.nn.softmax(logits), rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        net.features(2 * x - 1)
    with pytest.raises(ValueError, match="28, 28, 1"):
        net.features(x[:, :8, :8])


def test_loader_refuses_missing_and_unfinished_runs(tmp_path):
    missing = str(tmp_path / "nothing")
    with pytest.raises(FileNotFoundError, match="classifier_mnist.py"):
        load_feature_net("mnist_classifier", workdir=missing)
    from jgen.run import train_and_evaluate

    workdir = str(tmp_path / "cls")
    train_and_evaluate(_tiny_config(steps=2), workdir)
    net = load_feature_net("mnist_classifier", workdir=workdir)
    assert net.name == "mnist_classifier" and net.feature_dim == 16
    assert net.probs(np.zeros((3, 28, 28, 1), np.float32)).shape == (3, 10)
    path = os.path.join(workdir, "config.json")  # pretend the run was meant to be longer
    with open(path) as f:
        cfg = json.load(f)
    cfg["train"]["steps"] = 5
    with open(path, "w") as f:
        json.dump(cfg, f)
    with pytest.raises(ValueError, match="unfinished"):
        load_feature_net("mnist_classifier", workdir=workdir)


def test_default_cache_dir_follows_env(monkeypatch):
    monkeypatch.setenv("JGEN_CACHE", "/some/cache")
    assert cache_dir("mnist_classifier") == os.path.join("/some/cache", "mnist_classifier")
    monkeypatch.delenv("JGEN_CACHE")
    assert cache_dir("mnist_classifier").endswith(os.path.join(".cache", "jgen", "mnist_classifier"))
