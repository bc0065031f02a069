"""GANs where both densities are known: mixture densities, the optimal discriminator, mode coverage.

1. The optimal discriminator (`dstar_experiment`): 1-D data from a Gaussian mixture, a FIXED generator distribution
   (a Gaussian), and a discriminator trained with the minimax loss. Theory: D*(x) = p_data / (p_data + p_g);
   with p_g = p_data, D* = 1/2 everywhere and the discriminator's minimax loss is 2 log 2.
2. The geometric view (`ring_experiment`): 8 Gaussians on a circle, MLP generator and discriminator trained with any
   loss of jgen.gan.losses. Samples are kept at regular steps so mode coverage (or collapse) can be seen and counted.

The experiments return numbers and arrays; experiments/gan_toys.py runs them from a config file and writes the
JSON and PNG files.
"""

from __future__ import annotations

import math

import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from jgen.config import fail, require_choice, require_int
from jgen.gan.losses import LOSSES, discriminator_loss, generator_loss
from jgen.gan.step import Players, adversarial_update
from jgen.nn.mlp import MLPDecoder

FIELD_POINTS = 25  # grid points per axis where the ring experiment records D and the generator's gradient field


# -- densities -----------------------------------------------------------------------------------------------
def gaussian_mixture_logpdf(
    x: jax.Array, means: jax.Array, std: float | jax.Array, weights: jax.Array | None = None
) -> jax.Array:
    """log density of an isotropic Gaussian mixture at x [N, D]; means [K, D]; std scalar or [K] -> [N]."""
    chex.assert_rank([x, means], 2)
    k, d = means.shape
    std = jnp.broadcast_to(jnp.asarray(std, x.dtype), (k,))
    log_w = jnp.log(jnp.full((k,), 1.0 / k) if weights is None else jnp.asarray(weights))
    sq = jnp.sum((x[:, None, :] - means[None]) ** 2, axis=-1)  # [N, K]
    comp = -0.5 * sq / std**2 - d * jnp.log(std) - 0.5 * d * math.log(2 * math.pi)
    return jax.nn.logsumexp(comp + log_w, axis=-1)


def gaussian_mixture_sample(
    key: jax.Array, num: int, means: jax.Array, std: float | jax.Array, weights: jax.Array | None = None
) -> jax.Array:
    """num draws [num, D] from the mixture of gaussian_mixture_logpdf."""
    k, d = means.shape
    k_c, k_n = jax.random.split(key)
    logits = jnp.zeros((k,)) if weights is None else jnp.log(jnp.asarray(weights))
    comp = jax.random.categorical(k_c, logits, shape=(num,))
    std = jnp.broadcast_to(jnp.asarray(std, jnp.float32), (k,))
    return means[comp] + std[comp, None] * jax.random.normal(k_n, (num, d))


def optimal_discriminator(log_p_data: jax.Array, log_p_g: jax.Array) -> jax.Array:
    """D*(x) = p_data / (p_data + p_g), from log densities (stable for tiny densities)."""
    return jax.nn.sigmoid(log_p_data - log_p_g)


def ring_means(num_modes: int = 8, radius: float = 2.0) -> jax.Array:
    angles = 2 * jnp.pi * jnp.arange(num_modes) / num_modes
    return radius * jnp.stack([jnp.cos(angles), jnp.sin(angles)], axis=-1)  # [K, 2]


def mode_coverage(samples: np.ndarray, means: np.ndarray, std: float, min_share: float = 0.25) -> dict:
    """How many modes a 2-D sample set covers.

    A sample is high quality when it lies within 3 std of its nearest mode. A mode is covered when it receives
    at least `min_share` of its fair share (1 / num_modes) of the samples as high-quality samples.
    Returns modes_covered (int), high_quality (fraction of all samples) and the per-mode counts.
    """
    samples, means = np.asarray(samples, np.float64), np.asarray(means, np.float64)
    dist = np.linalg.norm(samples[:, None, :] - means[None], axis=-1)  # [N, K]
    nearest, d = dist.argmin(1), dist.min(1)
    good = d <= 3 * std
    counts = np.bincount(nearest[good], minlength=len(means))
    need = min_share * len(samples) / len(means)
    return {"modes_covered": int((counts >= need).sum()), "high_quality": float(good.mean()), "counts": counts.tolist()}


# -- 1. the optimal discriminator ----------------------------------------------------------------------------
def _mlp(hidden) -> MLPDecoder:
    """A ReLU MLP [B, D] -> [B, 1]; used for both players of the toy problems."""
    return MLPDecoder(out_shape=(1,), features=tuple(hidden))


def fit_discriminator(
    key: jax.Array, sample_data, sample_g, steps: int, batch_size: int, learning_rate: float, hidden=(64, 64)
):
    """Train D with the minimax loss against fixed data and generator samplers (key, n) -> [n, 1].

    Returns (d_fn: x [N, 1] -> D(x) probabilities [N], per-step losses [steps]).
    """
    net = _mlp(hidden)
    k_init, k_train = jax.random.split(key)
    params = net.init(k_init, jnp.zeros((1, 1)))["params"]
    tx = optax.adam(learning_rate)

    def logits(params, x):
        return net.apply({"params": params}, x)[:, 0]

    def step(carry, k):
        params, opt = carry
        k_r, k_f = jax.random.split(k)
        real, fake = sample_data(k_r, batch_size), sample_g(k_f, batch_size)

        def loss_fn(params):
            return jnp.mean(discriminator_loss("minimax", logits(params, real), logits(params, fake)))

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt = tx.update(grads, opt, params)
        return (optax.apply_updates(params, updates), opt), loss

    (params, _), losses = jax.jit(lambda p, o, ks: jax.lax.scan(step, (p, o), ks))(
        params, tx.init(params), jax.random.split(k_train, steps)
    )
    return (lambda x: jax.nn.sigmoid(logits(params, x))), losses


def check_dstar_config(cfg: ml_collections.ConfigDict) -> None:
    """Raise ConfigError for the first invalid field of the optimal-discriminator experiment's `config.toy`."""
    for k in ("steps", "batch_size"):
        require_int(f"toy.{k}", cfg[k])
    if not (cfg.data_std > 0 and cfg.g_std > 0 and cfg.learning_rate > 0):
        fail(
            "toy.data_std / toy.g_std / toy.learning_rate", (cfg.data_std, cfg.g_std, cfg.learning_rate), "must be > 0"
        )
    if not cfg.grid_min < cfg.grid_max:
        fail("toy.grid_min", cfg.grid_min, f"must be below toy.grid_max={cfg.grid_max}")


def dstar_experiment(cfg: ml_collections.ConfigDict, key: jax.Array) -> dict:
    """Fit D for p_g != p_data and for p_g = p_data; compare with D* on a grid. Returns numbers and curves."""
    check_dstar_config(cfg)
    data_means = jnp.asarray(cfg.data_means, jnp.float32)[:, None]  # [K, 1]
    g_means = jnp.asarray([[cfg.g_mean]], jnp.float32)

    def data(k, n):
        return gaussian_mixture_sample(k, n, data_means, cfg.data_std)

    def gen(k, n):
        return gaussian_mixture_sample(k, n, g_means, cfg.g_std)

    grid = jnp.linspace(cfg.grid_min, cfg.grid_max, 401)[:, None]  # [G, 1]
    log_pd = gaussian_mixture_logpdf(grid, data_means, cfg.data_std)
    log_pg = gaussian_mixture_logpdf(grid, g_means, cfg.g_std)
    d_star = optimal_discriminator(log_pd, log_pg)
    # Where D is judged: both samplers put mass there (elsewhere D is never trained and D* is 0/1 by fiat).
    mass = 0.5 * (jnp.exp(log_pd) + jnp.exp(log_pg)) > cfg.mass_threshold

    # The loss of D* itself: 2 log 2 - 2 JSD(p_data, p_g), by quadrature on a wide grid.
    wide = jnp.linspace(-12.0, 12.0, 8001)[:, None]
    lpd_w = gaussian_mixture_logpdf(wide, data_means, cfg.data_std)
    lpg_w = gaussian_mixture_logpdf(wide, g_means, cfg.g_std)
    integrand = jnp.exp(lpd_w) * jax.nn.softplus(lpg_w - lpd_w) + jnp.exp(lpg_w) * jax.nn.softplus(lpd_w - lpg_w)
    optimal_loss = float(jnp.sum(integrand) * (wide[1, 0] - wide[0, 0]))

    k1, k2 = jax.random.split(key)
    kw = dict(steps=cfg.steps, batch_size=cfg.batch_size, learning_rate=cfg.learning_rate, hidden=cfg.hidden)
    d_fn, losses = fit_discriminator(k1, data, gen, **kw)
    d_eq, losses_eq = fit_discriminator(k2, data, data, **kw)
    d_hat, d_hat_eq = d_fn(grid), d_eq(grid)
    tail = max(1, cfg.steps // 10)
    return {
        "max_abs_error_vs_dstar": float(jnp.max(jnp.where(mass, jnp.abs(d_hat - d_star), 0.0))),
        "mean_abs_error_vs_dstar": float(jnp.sum(jnp.where(mass, jnp.abs(d_hat - d_star), 0.0)) / jnp.sum(mass)),
        "equal_max_abs_dev_from_half": float(jnp.max(jnp.where(mass, jnp.abs(d_hat_eq - 0.5), 0.0))),
        "equal_final_loss": float(jnp.mean(losses_eq[-tail:])),
        "two_log_two": 2 * math.log(2),
        "final_loss": float(jnp.mean(losses[-tail:])),
        "optimal_loss": optimal_loss,
        "curves": {
            "x": np.asarray(grid[:, 0]),
            "d": np.asarray(d_hat),
            "d_star": np.asarray(d_star),
            "d_equal": np.asarray(d_hat_eq),
            "p_data": np.exp(np.asarray(log_pd)),
            "p_g": np.exp(np.asarray(log_pg)),
            "loss": np.asarray(losses),
            "loss_equal": np.asarray(losses_eq),
        },
    }


# -- 2. the 8-Gaussian ring ----------------------------------------------------------------------------------
def check_ring_config(cfg: ml_collections.ConfigDict) -> None:
    """Raise ConfigError for the first invalid field of the ring experiment's `config.toy`."""
    require_choice("toy.loss", cfg.loss, LOSSES)
    for k in ("n_critic", "steps", "snapshot_every", "batch_size", "num_eval", "num_modes", "latent_dim"):
        require_int(f"toy.{k}", cfg[k])
    if cfg.steps % cfg.snapshot_every:
        fail("toy.steps", cfg.steps, f"must be a multiple of toy.snapshot_every={cfg.snapshot_every}")
    if not (cfg.std > 0 and cfg.radius > 0 and cfg.learning_rate > 0):
        fail("toy.std / toy.radius / toy.learning_rate", (cfg.std, cfg.radius, cfg.learning_rate), "must be > 0")


def ring_experiment(cfg: ml_collections.ConfigDict, key: jax.Array) -> dict:
    """Train an MLP GAN on the ring; returns per snapshot: the coverage row, the samples of the same latents, the
    discriminator's D(x) on a FIELD_POINTS x FIELD_POINTS grid over [-1.6 r, 1.6 r]^2 ("grid_axis") and the
    generator's gradient field there ("push": -d g_loss(D(x)) / dx, the direction a sample at x is moved)."""
    check_ring_config(cfg)
    means = ring_means(cfg.num_modes, cfg.radius)
    g_net, d_net = MLPDecoder(out_shape=(2,), features=tuple(cfg.hidden)), _mlp(cfg.hidden)

    def make_tx():
        return optax.adam(cfg.learning_rate, b1=cfg.b1, b2=cfg.b2)

    players = Players(
        generate=lambda g, z: g_net.apply({"params": g}, z),
        discriminate=lambda d, x: d_net.apply({"params": d}, x)[:, 0],
        tx_g=make_tx(),
        tx_d=make_tx(),
        loss=cfg.loss,
        latent_dim=cfg.latent_dim,
        n_critic=cfg.n_critic,
        gp_weight=cfg.gp_weight,
        r1_gamma=cfg.r1_gamma,
    )
    k_g, k_d, k_train, k_eval = jax.random.split(key, 4)
    params = {
        "generator": g_net.init(k_g, jnp.zeros((1, cfg.latent_dim)))["params"],
        "discriminator": d_net.init(k_d, jnp.zeros((1, 2)))["params"],
    }
    opt = {
        "generator": players.tx_g.init(params["generator"]),
        "discriminator": players.tx_d.init(params["discriminator"]),
    }
    z_eval = players.latents(k_eval, cfg.num_eval)  # the same latents at every snapshot

    def one_step(carry, k):
        params, opt = carry
        k_x, k_s = jax.random.split(k)
        real = gaussian_mixture_sample(k_x, cfg.batch_size, means, cfg.std)
        params, opt, metrics = adversarial_update(players, params, opt, real, k_s)
        return (params, opt), metrics

    lim = cfg.radius * 1.6
    axis = jnp.linspace(-lim, lim, FIELD_POINTS)
    grid = jnp.stack(jnp.meshgrid(axis, axis, indexing="xy"), -1).reshape(-1, 2)  # [P*P, 2], row-major in y

    def fields(d_params):
        """D(x) on the grid and -d g_loss / dx: where the generator's loss pushes a sample at x."""
        d_of = lambda x: players.discriminate(d_params, x)  # noqa: E731
        push = -jax.grad(lambda x: jnp.sum(generator_loss(cfg.loss, d_of(x))))(grid)
        shape = (FIELD_POINTS, FIELD_POINTS)
        return jax.nn.sigmoid(d_of(grid)).reshape(shape), push.reshape(*shape, 2)

    @jax.jit
    def chunk(params, opt, keys):
        (params, opt), metrics = jax.lax.scan(one_step, (params, opt), keys)
        return (
            params,
            opt,
            jax.tree.map(jnp.mean, metrics),
            players.generate(params["generator"], z_eval),
            fields(params["discriminator"]),
        )

    snapshots, d_grids, pushes, rows = [], [], [], []
    for i, keys in enumerate(jax.random.split(k_train, cfg.steps).reshape(-1, cfg.snapshot_every, 2)):
        params, opt, metrics, samples, (d_grid, push) = chunk(params, opt, keys)
        samples = np.asarray(samples)
        cov = mode_coverage(samples, np.asarray(means), cfg.std)
        rows.append({"step": (i + 1) * cfg.snapshot_every, **{k: float(v) for k, v in metrics.items()}, **cov})
        snapshots.append(samples)
        d_grids.append(np.asarray(d_grid))
        pushes.append(np.asarray(push))
    return {
        "rows": rows,
        "snapshots": snapshots,
        "means": np.asarray(means),
        "grid_axis": np.asarray(axis),
        "d_grid": d_grids,
        "push": pushes,
    }
