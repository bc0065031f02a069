"""The denoising UNet: shapes at 28x28 and 8x8, conditioning, null label, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jgen.nn.unet import UNet, _groups, init_params, timestep_embedding


def test_timestep_embedding():
    e = timestep_embedding(jnp.array([0.0, 0.5, 1.0]), 7)
    assert e.shape == (3, 7)
    np.testing.assert_allclose(np.asarray(e[0, :3]), 0.0)  # sin(0)
    np.testing.assert_allclose(np.asarray(e[0, 3:6]), 1.0)  # cos(0)
    assert float(jnp.abs(e[1] - e[2]).max()) > 0.1


def test_unet_shapes_at_28x28():
    net = UNet(channels=16, channel_mult=(1, 2, 2), num_res_blocks=1, attention_resolutions=(7,), num_classes=10)
    x, t, labels = jnp.zeros((2, 28, 28, 1)), jnp.array([0.1, 0.9]), jnp.array([3, 10])
    variables = jax.eval_shape(net.init, jax.random.PRNGKey(0), x, t, labels)  # shapes only: no compute
    out = jax.eval_shape(net.apply, variables, x, t, labels)
    assert out.shape == x.shape
    n_params = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(variables))
    assert 2e5 < n_params < 4e5, n_params  # the CPU-sized default of ddpm_mnist
    assert "AttentionBlock_0" in variables["params"]  # attention at 7x7


def test_unet_8x8_conditioning_and_null_label():
    net = UNet(
        channels=8, channel_mult=(1, 2), num_res_blocks=1, attention_resolutions=(4,), num_classes=10, dropout=0.1
    )
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 8, 8, 1))
    t = jnp.array([0.1, 0.9])
    labels = jnp.array([3, 10])  # 10 is the null label
    params = jax.jit(lambda k: init_params(net, k, x, t, labels))(jax.random.PRNGKey(1))

    x4 = jnp.tile(x, (4, 1, 1, 1))  # four variants in one batch: one compiled program
    t4 = jnp.concatenate([t, t, jnp.array([0.5, 0.9]), t])
    l4 = jnp.concatenate([labels, jnp.array([4, 10]), labels, jnp.array([10, 10])])

    @jax.jit
    def outputs(p):
        f = lambda xx, tt, lab, **kw: net.apply({"params": p}, xx, tt, lab, **kw)  # noqa: E731
        return jnp.split(f(x4, t4, l4), 4), f(x, t, None)

    assert float(jnp.abs(outputs(params)[1]).max()) == 0.0  # zero-initialised output convolution
    # perturb the parameters so that the rest of the network is visible in the output
    params = jax.tree.map(lambda p: np.asarray(p) + 0.05 * np.cos(np.arange(p.size)).reshape(p.shape), params)
    (base, other_label, other_time, null), none = outputs(params)
    assert base.shape == x.shape
    assert float(jnp.abs(base - other_label).max()) > 1e-4  # label matters
    assert float(jnp.abs(base - other_time).max()) > 1e-4  # time matters
    np.testing.assert_allclose(np.asarray(none), np.asarray(null), atol=1e-5)  # labels None = the null label


def test_unet_errors_and_groups():
    net = UNet(channels=8, channel_mult=(1, 2, 2), attention_resolutions=())
    with pytest.raises(ValueError, match="divisible by 4; got 10x10"):
        net.init(jax.random.PRNGKey(0), jnp.zeros((1, 10, 10, 1)), jnp.zeros((1,)))
    with pytest.raises(ValueError, match="unconditional UNet"):
        net.init(jax.random.PRNGKey(0), jnp.zeros((1, 8, 8, 1)), jnp.zeros((1,)), jnp.zeros((1,), jnp.int32))
    assert (_groups(128), _groups(16), _groups(24), _groups(3)) == (32, 4, 6, 1)
