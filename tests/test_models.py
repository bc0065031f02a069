import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jgen.config import base_config
from jgen.data import DataInfo
from jgen.methods import get_method
from jgen.nn.conv import ConvDecoder, ConvEncoder, upsample2x
from jgen.nn.mlp import MLPDecoder, MLPEncoder

MNIST = DataInfo("mnist", (28, 28, 1), 10, 4000, 1000)


def _param_shapes(tree):
    return [tuple(x.shape) for x in jax.tree.leaves(tree)]


def test_course_autoencoder_has_the_course_architecture():
    import importlib.util

    spec = importlib.util.spec_from_file_location("ae", "experiments/configs/ae_mnist.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    c = mod.get_config()
    m = get_method("autoencoder")(c, MNIST)
    x = jnp.zeros((2, 28, 28, 1))
    params, _ = m.init_variables(jax.random.PRNGKey(0), {"image": x})
    kernels = [tuple(params[part][f"Dense_{i}"]["kernel"].shape) for part in ("encoder", "decoder") for i in range(3)]
    assert kernels == [(784, 512), (512, 256), (256, 128), (128, 256), (256, 512), (512, 784)]
    out = m.reconstruct(params, x)
    assert out.shape == x.shape and out.dtype == jnp.float32
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0  # sigmoid output
    assert c.optim.name == "adam" and c.optim.learning_rate == 1e-3 and c.train.steps * 128 >= 100 * 4000


# 28x28 compiles for ~20 s; the 8x8 case runs the same layers in make test
@pytest.mark.parametrize("shape", [pytest.param((28, 28, 1), marks=pytest.mark.slow), (8, 8, 1)])
def test_conv_encoder_decoder_shapes(shape):
    x = jnp.ones((3, *shape), jnp.float32)
    enc, dec = ConvEncoder(10, (8, 16), 32), ConvDecoder(shape, (8, 16), 32)
    code, _ = enc.init_with_output(jax.random.PRNGKey(0), x)
    assert code.shape == (3, 10) and code.dtype == jnp.float32
    out, _ = dec.init_with_output(jax.random.PRNGKey(1), code)
    assert out.shape == (3, *shape) and out.dtype == jnp.float32


def test_mlp_shapes():
    x = jnp.ones((2, 8, 8, 1))
    code, _ = MLPEncoder((16, 4)).init_with_output(jax.random.PRNGKey(0), x)
    assert code.shape == (2, 4) and float(code.min()) >= 0.0  # ReLU'd bottleneck
    out, _ = MLPDecoder((8, 8, 1), (16,)).init_with_output(jax.random.PRNGKey(0), code)
    assert out.shape == (2, 8, 8, 1)


@pytest.mark.parametrize("likelihood", ["gaussian", "bernoulli"])
def test_vae_shapes_and_sampling(likelihood):
    c = base_config()
    c.method.update(dict(name="vae", latent_dim=6, likelihood=likelihood, beta=1.0, eval_iw_samples=3))
    c.model.update(dict(kind="conv", features=(8, 16), hidden=32))
    m = get_method("vae")(c, MNIST)
    batch = {"image": jnp.full((4, 28, 28, 1), 0.5), "label": jnp.zeros((4,), jnp.int32)}
    state = m.init_state(jax.random.PRNGKey(0), batch)
    mean, logvar = m.encode(state.params, batch["image"])
    assert mean.shape == logvar.shape == (4, 6)
    s, nfe = m.generate(state.params, None, jax.random.PRNGKey(1), 5)
    assert nfe == 1
    assert s.shape == (5, 28, 28, 1) and 0.0 <= float(s.min()) <= float(s.max()) <= 1.0
    ev = m.eval_step(state.params, {}, batch, jax.random.PRNGKey(2))
    assert set(ev) == {"elbo", "kl", "bpd", "iwae", "bpd_iwae"} and all(v.shape == (4,) for v in ev.values())
    assert np.all(np.asarray(ev["iwae"]) > -np.inf)
    strip = m.interpolate(state.params, batch["image"][0], batch["image"][1], 7)
    assert strip.shape == (7, 28, 28, 1)


def test_spatial_latent_vae():
    c = base_config()
    c.method.update(dict(name="vae", latent_dim=4, likelihood="logistic", beta=1.0, eval_iw_samples=2))
    c.model.update(dict(kind="conv_spatial", features=(8, 16)))
    m = get_method("vae")(c, MNIST)
    batch = {"image": jnp.full((3, 28, 28, 1), 0.5), "label": jnp.zeros((3,), jnp.int32)}
    state = m.init_state(jax.random.PRNGKey(0), batch)
    mean, logvar = m.encode(state.params, batch["image"])
    assert m.latent_shape == (7, 7, 4) and mean.shape == logvar.shape == (3, 7, 7, 4)
    assert m.decode(state.params, mean).shape == (3, 28, 28, 1)
    ev = m.eval_step(state.params, {}, batch, jax.random.PRNGKey(1))
    assert all(v.shape == (3,) for v in ev.values())
    assert m.interpolate(state.params, batch["image"][0], batch["image"][1], 4).shape == (4, 28, 28, 1)


@pytest.mark.parametrize("shape", [(2, 7, 7, 3), (3, 4, 5, 2)])
def test_upsample2x_is_nearest_resize_values_and_gradients(shape):
    """The broadcast form of upsample2x is exactly jax.image.resize "nearest" (x2), forward and backward."""
    x = jax.random.normal(jax.random.PRNGKey(0), shape)
    w = jax.random.normal(jax.random.PRNGKey(1), (shape[0], 2 * shape[1], 2 * shape[2], shape[3]))

    def resize(h):
        b, hh, ww, c = h.shape
        return jax.image.resize(h, (b, 2 * hh, 2 * ww, c), "nearest")

    np.testing.assert_array_equal(upsample2x(x), resize(x))
    np.testing.assert_array_equal(upsample2x(x)[:, ::2, 1::2], x)
    g_new = jax.grad(lambda h: jnp.sum(jnp.sin(upsample2x(h)) * w))(x)
    g_ref = jax.grad(lambda h: jnp.sum(jnp.sin(resize(h)) * w))(x)
    np.testing.assert_allclose(g_new, g_ref, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    "shape,groups",
    [
        ((4, 7, 7, 32), 8),
        pytest.param((2, 5, 6, 12), 3, marks=pytest.mark.slow),
        pytest.param((3, 16), 4, marks=pytest.mark.slow),
    ],
)
def test_group_norm_matches_flax(shape, groups):
    """jgen's two-stage GroupNorm has flax's parameters and computes the same values and gradients."""
    import flax.linen as nn

    from jgen.nn.norm import GroupNorm

    x = jax.random.normal(jax.random.PRNGKey(0), shape) * 3 + 2
    ref, new = nn.GroupNorm(num_groups=groups), GroupNorm(groups)
    assert jax.tree.map(jnp.shape, ref.init(jax.random.PRNGKey(1), x)) == jax.tree.map(
        jnp.shape, new.init(jax.random.PRNGKey(1), x)
    )
    p = {
        "params": {
            "scale": jax.random.normal(jax.random.PRNGKey(2), shape[-1:]),
            "bias": jax.random.normal(jax.random.PRNGKey(3), shape[-1:]),
        }
    }
    np.testing.assert_allclose(jax.jit(new.apply)(p, x), jax.jit(ref.apply)(p, x), rtol=1e-5, atol=1e-5)
    w = jax.random.normal(jax.random.PRNGKey(4), shape)
    g_new = jax.jit(jax.grad(lambda p, x: jnp.sum(new.apply(p, x) * w), argnums=(0, 1)))(p, x)  # jit: one compile,
    g_ref = jax.jit(jax.grad(lambda p, x: jnp.sum(ref.apply(p, x) * w), argnums=(0, 1)))(p, x)  # not one per op
    for a, b in zip(jax.tree.leaves(g_new), jax.tree.leaves(g_ref)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
