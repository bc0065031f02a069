"""Mixed precision (config.model.dtype = "bfloat16"): the config checks, float32 train state, training and sampling
next to float32, and the UNet's rematerialisation (config.model.remat)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jgen.config import ConfigError
from jgen.data import DataInfo, get_source, make_train_iterator
from jgen.run import build_method, validate, with_defaults
from jgen.train.loop import jitted_train_step
from jgen.train.sharding import make_mesh
from tests.conftest import tiny_config

DIGITS = DataInfo("digits", (8, 8, 1), 10, 1000, 100)
PRECISION_METHODS = ("diffusion", "vae", "autoencoder", "gan", "classifier", "autoregressive")


def _config(name: str, dtype: str = "float32", method: dict | None = None, **model):
    """A tiny config of `name` on the 8x8 digits computing in `dtype`."""
    c = with_defaults(tiny_config(name))
    c.method.update(method or {})
    if name == "diffusion":
        # one level keeps compile times short (the middle block still has attention)
        c.model.update(dict(channels=8, channel_mult=(1,), num_res_blocks=1, attention_resolutions=()))
    elif name == "vae":
        c.model.update(dict(kind="conv", features=(8, 16), hidden=32))
    elif name == "gan":
        c.model.update(dict(g_features=(8, 8), d_features=(8,)))
    elif name == "classifier":
        c.model.update(dict(features=(4,), feature_dim=8))
    c.model.update(dict(dtype=dtype, **model))
    validate(c, num_devices=1)
    return c


def _batch(n: int = 4) -> dict:
    return {"image": jnp.linspace(0.0, 1.0, n * 64).reshape(n, 8, 8, 1), "label": jnp.arange(n, dtype=jnp.int32)}


@pytest.mark.parametrize("name", PRECISION_METHODS)
def test_precision_fields_are_checked(name):
    c = _config(name)
    c.model.dtype = "float16"
    with pytest.raises(
        ConfigError,
        match=r"config.model.dtype='float16' is invalid: choose one of "
        r"\['float32', 'bfloat16'\]",
    ):
        validate(c, num_devices=1)
    c.model.dtype, c.model.param_dtype = "bfloat16", "bfloat16"
    with pytest.raises(
        ConfigError,
        match=r"config.model.param_dtype='bfloat16' is invalid: choose one of "
        r"\['float32'\].*model.dtype=bfloat16",
    ):
        validate(c, num_devices=1)


def test_remat_must_be_a_bool():
    c = _config("diffusion")
    c.model = type(c.model)({**c.model.to_dict(), "remat": "yes"})  # as a JSON or hand-built config may hold it
    with pytest.raises(ConfigError, match=r"config.model.remat='yes' is invalid: must be true or false"):
        validate(c, num_devices=1)


@pytest.mark.parametrize(
    "name", [n if n in ("diffusion", "vae") else pytest.param(n, marks=pytest.mark.slow) for n in PRECISION_METHODS]
)  # the shared conv/MLP modules: make test-slow
def test_bfloat16_networks_keep_a_float32_state(name):
    """Traced, not compiled: with model.dtype=bfloat16 the train step computes in bfloat16 (bf16 values in its
    program; none with float32), while parameters, optimizer state and EMA before and after the step, and every
    metric, are float32."""
    programs = {}
    for dtype in ("float32", "bfloat16"):
        method = build_method(_config(name, dtype), DIGITS, None)
        state = jax.eval_shape(method.init_state, jax.random.PRNGKey(0), _batch())
        jaxpr, (new_state, metrics) = jax.make_jaxpr(method.train_step, return_shape=True)(
            state, _batch(), jax.random.PRNGKey(1)
        )
        programs[dtype] = str(jaxpr)
        for s in (state, new_state):
            floats = [
                x.dtype
                for x in jax.tree.leaves((s.params, s.opt_state, s.ema_params))
                if jnp.issubdtype(x.dtype, jnp.floating)
            ]
            assert floats and set(floats) == {jnp.dtype(jnp.float32)}, (dtype, set(floats))
        assert {m.dtype for m in jax.tree.leaves(metrics)} == {jnp.dtype(jnp.float32)}
    assert "bf16[" in programs["bfloat16"] and "bf16[" not in programs["float32"]


def test_bfloat16_vae_trains_like_float32():
    """The tiny VAE (the suite's default model) trained 25 steps in each dtype from the same seed and batches, with
    the loop's train step: the bfloat16 loss, averaged over windows of 5 steps, follows the float32 one within 10%
    (the first window averages the wild early steps of a Gaussian likelihood, where 4.7% was seen) and within 3% at
    the last, falling to under a third of the first."""
    c = tiny_config("vae")
    train, _, info = get_source(c.data)
    it = make_train_iterator(train, c.seed, c.data.batch_size)
    batches = [next(it) for _ in range(25)]
    losses, start = {}, None
    for dtype in ("float32", "bfloat16"):
        c.model.dtype = dtype
        method = build_method(c, info, train)
        if start is None:  # float32 parameters either way: one initial state for both
            start = jax.device_get(jax.jit(method.init_state)(jax.random.PRNGKey(c.seed), batches[0]))
        state = jax.tree.map(jnp.asarray, start)
        step = jitted_train_step(method, make_mesh())
        per_step = []
        for b in batches:
            state, metrics = step(state, b)
            per_step.append(float(metrics["loss"]))
        losses[dtype] = np.mean(np.reshape(per_step, (5, 5)), axis=1)
    f32, bf16 = losses["float32"], losses["bfloat16"]
    assert f32[-1] < f32[0] / 3 and bf16[-1] < bf16[0] / 3, (f32, bf16)
    np.testing.assert_allclose(bf16, f32, rtol=0.1)
    assert bf16[-1] == pytest.approx(f32[-1], rel=0.03)
    assert not np.array_equal(bf16, f32)  # bfloat16 really computed


def _random_params(abstract, seed: int = 0):
    """Random weights for a parameter tree of ShapeDtypeStructs, drawn on the host (no init to compile): kernels
    and embeddings N(0, 1/fan_in), biases N(0, 0.05^2), normalisation scales 1 + N(0, 0.05^2)."""
    rng = np.random.default_rng(seed)

    def draw(path, x):
        name = jax.tree_util.keystr(path[-1:])
        noise = rng.standard_normal(x.shape).astype(np.float32)
        if "kernel" in name or "embedding" in name:
            return noise / np.sqrt(np.prod(x.shape[:-1]))
        return (1.0 if "scale" in name else 0.0) + 0.05 * noise

    return jax.tree_util.tree_map_with_path(draw, abstract)


def test_bfloat16_sampling_matches_float32_for_the_same_weights():
    """One set of float32 UNet weights (v-prediction, conditional) sampled with DDIM (4 steps, guidance 2) by a
    float32 and a bfloat16 network: the samples are float32 and differ by under 4% in relative L2 norm (bfloat16
    keeps 8 significant bits; 1.3-1.6% was measured for 4 weight draws), and by more than 1e-4 (the bfloat16
    network really ran). The sampler's scan carries only float32 values while the network computes in bfloat16."""
    v_pred = dict(parameterization="v", clip_denoised=True)
    methods = {d: build_method(_config("diffusion", d, v_pred), DIGITS, None) for d in ("float32", "bfloat16")}
    m32 = methods["float32"]
    params = _random_params(jax.eval_shape(m32.init_variables, jax.random.PRNGKey(0), _batch())[0])
    labels = jnp.arange(16, dtype=jnp.int32) % 10
    samples = {}
    for dtype, m in methods.items():

        def draw(p, key, lab, m=m):
            return m.run_sampler(p, key, 16, lab, m.sampling_spec(sampler="ddim", steps=4, guidance=2.0)).samples

        samples[dtype] = jax.jit(draw)(params, jax.random.PRNGKey(2), labels)
        assert samples[dtype].dtype == jnp.float32
    a, b = samples["float32"], samples["bfloat16"]
    rel = float(jnp.linalg.norm(b - a) / jnp.linalg.norm(a))
    assert 1e-4 < rel < 0.04, rel
    jaxpr = jax.make_jaxpr(
        lambda p: methods["bfloat16"].run_sampler(
            p,
            jax.random.PRNGKey(2),
            16,
            labels,
            methods["bfloat16"].sampling_spec(sampler="ddim", steps=4, guidance=2.0),
        )
    )(params)
    scans = [e for e in jaxpr.jaxpr.eqns if e.primitive.name == "scan"]
    assert scans, "the sampler runs one lax.scan over its grid"
    carried = [v.aval.dtype for v in scans[0].outvars if jnp.issubdtype(v.aval.dtype, jnp.floating)]
    assert carried and set(carried) == {jnp.dtype(jnp.float32)}, carried
    assert "bf16[" in str(scans[0].params["jaxpr"])


def test_bfloat16_transformer_gives_float32_logits_near_float32():
    """The pixel transformer (2 layers, d_model 32) with one set of float32 weights: in bfloat16 its program computes
    in bf16 and its key/value cache is bf16, yet its logits are float32 and within 2% (relative L2) of the float32
    network's (0.8% measured for these weights), and not equal to them."""
    methods = {d: build_method(_config("autoregressive", d, d_model=32), DIGITS, None) for d in ("float32", "bfloat16")}
    params = _random_params(jax.eval_shape(methods["float32"].init_variables, jax.random.PRNGKey(0), _batch())[0])
    inputs, _ = methods["float32"].sequences(_batch())  # [4, 64]
    logits = {d: jax.jit(m.logits)(params, inputs) for d, m in methods.items()}
    a, b = logits["float32"], logits["bfloat16"]
    assert a.dtype == b.dtype == jnp.float32
    rel = float(jnp.linalg.norm(b - a) / jnp.linalg.norm(a))
    assert 1e-4 < rel < 0.02, rel
    program = str(jax.make_jaxpr(methods["bfloat16"].logits)(params, inputs))
    assert "bf16[" in program and "bf16[" not in str(jax.make_jaxpr(methods["float32"].logits)(params, inputs))
    cache = methods["bfloat16"].net.init_cache(4)
    assert {c.dtype for c in jax.tree.leaves(cache)} == {jnp.dtype(jnp.bfloat16)}


def _remat_nets(name: str = "diffusion"):
    return {r: build_method(_config(name, remat=r), DIGITS, None) for r in (False, True)}


def _grad_fn(method, batch):
    return jax.grad(lambda p: method.loss_fn(p, {}, batch, jax.random.PRNGKey(3))[0])


@pytest.mark.parametrize("name", ["diffusion", "autoregressive"])  # the UNet's blocks, the transformer's
def test_remat_keeps_the_parameter_tree_and_recomputes_in_the_backward_pass(name):
    """Traced, not compiled: model.remat gives the same parameter tree (names included, so checkpoints load
    either way) and a gradient program with checkpointed (recomputed) regions, which the plain network lacks."""
    nets, batch = _remat_nets(name), _batch()
    params = {r: jax.eval_shape(m.init_variables, jax.random.PRNGKey(0), batch)[0] for r, m in nets.items()}
    assert jax.tree.structure(params[False]) == jax.tree.structure(params[True])
    assert jax.tree.map(lambda x: (x.shape, x.dtype), params[False]) == jax.tree.map(
        lambda x: (x.shape, x.dtype), params[True]
    )
    programs = {r: str(jax.make_jaxpr(_grad_fn(m, batch))(params[False])) for r, m in nets.items()}
    assert "remat" in programs[True] and "remat" not in programs[False]  # jax.checkpoint prints as remat


@pytest.mark.slow  # two UNet gradient compilations
def test_remat_gives_the_same_initial_values_and_gradients():
    nets, batch = _remat_nets(), _batch()
    params = {r: jax.jit(m.init_variables)(jax.random.PRNGKey(0), batch)[0] for r, m in nets.items()}
    for x, y in zip(jax.tree.leaves(params[False]), jax.tree.leaves(params[True])):
        np.testing.assert_array_equal(x, y)
    p = _random_params(params[False])
    grads = {r: jax.jit(_grad_fn(m, batch))(p) for r, m in nets.items()}
    for x, y in zip(jax.tree.leaves(grads[False]), jax.tree.leaves(grads[True])):
        np.testing.assert_allclose(y, x, rtol=1e-4, atol=1e-6)
