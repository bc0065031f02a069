"""Gaussian mixture model fitted by EM: the exact-likelihood baseline.

    p(x) = sum_k w_k N(x; mu_k, Sigma_k),   Sigma_k full [D, D], diagonal [D] or spherical (one variance).

The model lives directly in pixel space: x = (k + u) / 256 with k in {0..255} the 8-bit pixel values and
u ~ U[0, 1)^D fresh dequantisation noise (D = H * W * C). Its log-density is exact, so
bits/dim = (-log p(x) + D log 256) / (D log 2) is an exact (single-sample) estimate of an upper bound on the
discrete model's bits/dim, the same convention as the VAE's bound (`jgen.metrics.likelihood`).

EM is a pure state -> state function (`em_step`) of the parameters, running sufficient statistics and a
batch. The statistics are kept centred (mass n_k, mean m_k, scatter C_k about m_k, each per example), so
float32 stays accurate for pixels whose variance (~1e-6 for an always-black pixel) is tiny next to their
mean. Stepwise EM (Cappe & Moulines 2009) blends the batch's statistics into the running ones with step
size rho_t = (t + 2)^(-power); rho = 1 is plain EM, exact when the batch is the whole training set.
Responsibilities use log-sum-exp; every covariance gets `reg_covar` added to its diagonal (as scikit-learn).
Initialisation: k-means++ seeding, Lloyd iterations, then one M-step from the hard assignments.

The method plugs into the shared loop by overriding `init_state` (empty optimizer state) and `train_step`
(one EM step instead of an optax update).
"""

from __future__ import annotations

import math

import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jgen.config import fail, require_int
from jgen.methods.base import Batch, Method
from jgen.methods.registry import register
from jgen.metrics.likelihood import dequantized_bits_per_dim, uniform_dequantize
from jgen.train.state import TrainState

COVARIANCE_TYPES = ("full", "diag", "spherical")
EM_MODES = ("full_batch", "stepwise")
Params = dict[str, jax.Array]  # weights [K], means [K, D], covariances, precisions_cholesky
Stats = dict[str, jax.Array]  # n [K], mean [K, D], scatter [K, D, D] (full) or [K, D] (diag, spherical)


# -- densities ---------------------------------------------------------------------------------------
def precision_cholesky(covariances: jax.Array, cov_type: str) -> jax.Array:
    """Cholesky factor of the precision, as scikit-learn: full [K, D, D] (upper, P P^T = Sigma^-1),
    diag [K, D] and spherical [K] (1 / sqrt(variance))."""
    if cov_type == "full":
        d = covariances.shape[-1]
        chol = jnp.linalg.cholesky(covariances)  # lower, L L^T = Sigma
        eye = jnp.broadcast_to(jnp.eye(d, dtype=covariances.dtype), covariances.shape)
        inv = jax.scipy.linalg.solve_triangular(chol, eye, lower=True)  # L^-1
        return jnp.swapaxes(inv, -1, -2)
    return jax.lax.rsqrt(covariances)


def log_gaussian_prob(x: jax.Array, params: Params, cov_type: str) -> jax.Array:
    """log N(x_n; mu_k, Sigma_k): x [N, D] -> [N, K]."""
    chex.assert_rank(x, 2)
    d = x.shape[1]
    means, prec = params["means"], params["precisions_cholesky"]
    if cov_type == "full":
        log_det = jnp.sum(jnp.log(jnp.diagonal(prec, axis1=-2, axis2=-1)), axis=-1)  # [K]
        maha = jax.lax.map(lambda mp: jnp.sum(((x - mp[0]) @ mp[1]) ** 2, axis=1), (means, prec))  # [K, N]
    elif cov_type == "diag":
        log_det = jnp.sum(jnp.log(prec), axis=-1)
        maha = jax.lax.map(lambda mp: jnp.sum(((x - mp[0]) * mp[1]) ** 2, axis=1), (means, prec))
    else:
        log_det = d * jnp.log(prec)
        maha = jax.lax.map(lambda mp: jnp.sum((x - mp[0]) ** 2, axis=1) * mp[1] ** 2, (means, prec))
    return -0.5 * (d * math.log(2 * math.pi) + maha.T) + log_det


def responsibilities(params: Params, x: jax.Array, cov_type: str) -> tuple[jax.Array, jax.Array]:
    """(log responsibilities [N, K], log p(x_n) [N]) by log-sum-exp over components."""
    weighted = log_gaussian_prob(x, params, cov_type) + jnp.log(params["weights"])
    log_px = jax.nn.logsumexp(weighted, axis=1)
    return weighted - log_px[:, None], log_px


def log_likelihood(params: Params, x: jax.Array, cov_type: str) -> jax.Array:
    """Exact log p(x_n) in nats: x [N, D] -> [N]."""
    return responsibilities(params, x, cov_type)[1]


# -- EM ----------------------------------------------------------------------------------------------
def batch_statistics(x: jax.Array, resp: jax.Array, cov_type: str) -> Stats:
    """Centred sufficient statistics of a batch, per example: n_k = sum_n r_nk / N, the weighted mean m_k and
    the scatter sum_n r_nk (x_n - m_k)(x_n - m_k)^T / N (only its diagonal for diag/spherical).
    As scikit-learn, 10 machine epsilons are added to each component's mass."""
    chex.assert_rank([x, resp], 2)
    n_ex = x.shape[0]
    nk = jnp.sum(resp, axis=0) + 10 * jnp.finfo(resp.dtype).eps  # [K]
    mean = (resp.T @ x) / nk[:, None]  # [K, D]

    def scatter(r_m):
        r, m = r_m
        diff = x - m
        if cov_type == "full":
            return (r[:, None] * diff).T @ diff  # [D, D]
        return r @ (diff * diff)  # [D]

    s = jax.lax.map(scatter, (resp.T, mean))
    return {"n": nk / n_ex, "mean": mean, "scatter": s / n_ex}


def combine_statistics(old: Stats, new: Stats, rho: jax.Array) -> Stats:
    """(1 - rho) * old + rho * new as pooled weighted sets (Chan et al.'s parallel update of centred scatter)."""
    a, b = (1 - rho) * old["n"], rho * new["n"]
    n = a + b
    delta = old["mean"] - new["mean"]  # [K, D]
    mean = (a[:, None] * old["mean"] + b[:, None] * new["mean"]) / n[:, None]
    coef = a * b / n
    if old["scatter"].ndim == 3:
        cross = coef[:, None, None] * delta[:, :, None] * delta[:, None, :]
    else:
        cross = coef[:, None] * delta * delta
    return {"n": n, "mean": mean, "scatter": (1 - rho) * old["scatter"] + rho * new["scatter"] + cross}


def m_step(stats: Stats, cov_type: str, reg_covar: float) -> Params:
    """Maximum-likelihood parameters of the statistics, with `reg_covar` on every covariance's diagonal."""
    n, mean, s = stats["n"], stats["mean"], stats["scatter"]
    if cov_type == "full":
        d = mean.shape[1]
        cov = s / n[:, None, None] + reg_covar * jnp.eye(d, dtype=mean.dtype)
        cov = 0.5 * (cov + jnp.swapaxes(cov, 1, 2))  # exactly symmetric for the Cholesky
    elif cov_type == "diag":
        cov = s / n[:, None] + reg_covar
    else:
        cov = jnp.mean(s / n[:, None] + reg_covar, axis=1)
    return {
        "weights": n / jnp.sum(n),
        "means": mean,
        "covariances": cov,
        "precisions_cholesky": precision_cholesky(cov, cov_type),
    }


def em_step(
    params: Params, stats: Stats, x: jax.Array, rho: jax.Array, cov_type: str, reg_covar: float
) -> tuple[Params, Stats, jax.Array]:
    """One (stepwise) EM step on batch x [N, D]: returns (new params, new statistics, log p(x_n) [N] under the
    old params). rho = 1 with x the whole training set is one step of exact EM, which never lowers the
    training log-likelihood."""
    log_resp, log_px = responsibilities(params, x, cov_type)
    stats = combine_statistics(stats, batch_statistics(x, jnp.exp(log_resp), cov_type), rho)
    return m_step(stats, cov_type, reg_covar), stats, log_px


# -- initialisation and sampling -----------------------------------------------------------------------
def kmeans_plusplus(key: jax.Array, x: jax.Array, k: int) -> jax.Array:
    """k-means++ seeding (Arthur & Vassilvitskii 2007): indices [k] of x [N, D], each next centre drawn with
    probability proportional to the squared distance to the nearest centre so far."""
    keys = jax.random.split(key, k)
    first = jax.random.randint(keys[0], (), 0, x.shape[0])
    d2 = jnp.sum((x - x[first]) ** 2, axis=1)

    def body(i, carry):
        idx, d2 = carry
        logits = jnp.where(d2 > 0, jnp.log(jnp.maximum(d2, 1e-30)), -jnp.inf)
        logits = jnp.where(jnp.all(d2 <= 0), 0.0, logits)  # all points taken: draw uniformly
        j = jax.random.categorical(keys[i], logits)
        return idx.at[i].set(j), jnp.minimum(d2, jnp.sum((x - x[j]) ** 2, axis=1))

    idx, _ = jax.lax.fori_loop(1, k, body, (jnp.zeros((k,), jnp.int32).at[0].set(first), d2))
    return idx


def kmeans_assign(x: jax.Array, centres: jax.Array, iters: int) -> jax.Array:
    """`iters` Lloyd iterations from `centres` [K, D]; returns the final hard assignments [N] int32."""

    def assign(c):
        d2 = jnp.sum(x * x, axis=1, keepdims=True) - 2 * x @ c.T + jnp.sum(c * c, axis=1)
        return jnp.argmin(d2, axis=1)

    def body(_, c):
        onehot = jax.nn.one_hot(assign(c), c.shape[0], dtype=x.dtype)
        count = jnp.sum(onehot, axis=0)
        new = (onehot.T @ x) / jnp.maximum(count, 1)[:, None]
        return jnp.where(count[:, None] > 0, new, c)  # an empty cluster keeps its centre

    return assign(jax.lax.fori_loop(0, iters, body, centres))


def init_gmm(
    key: jax.Array, x: jax.Array, k: int, cov_type: str, reg_covar: float, kmeans_iters: int
) -> tuple[Params, Stats]:
    """k-means++ seeds, Lloyd iterations, then the M-step of the hard assignments: (params, statistics)."""
    chex.assert_rank(x, 2)
    centres = x[kmeans_plusplus(key, x, k)]
    resp = jax.nn.one_hot(kmeans_assign(x, centres, kmeans_iters), k, dtype=x.dtype)
    stats = batch_statistics(x, resp, cov_type)
    return m_step(stats, cov_type, reg_covar), stats


def sample_gmm(key: jax.Array, params: Params, num: int, cov_type: str) -> tuple[jax.Array, jax.Array]:
    """(samples [num, D], their components [num] int32): k ~ Cat(w), x = mu_k + chol(Sigma_k) z."""
    k_comp, k_z = jax.random.split(key)
    means, cov = params["means"], params["covariances"]
    comp = jax.random.categorical(k_comp, jnp.log(params["weights"]), shape=(num,))
    z = jax.random.normal(k_z, (num, means.shape[1]), means.dtype)
    if cov_type == "full":
        noise = jnp.einsum("nij,nj->ni", jnp.linalg.cholesky(cov)[comp], z)
    elif cov_type == "diag":
        noise = jnp.sqrt(cov[comp]) * z
    else:
        noise = jnp.sqrt(cov[comp])[:, None] * z
    return means[comp] + noise, comp


def dequantize(images: jax.Array, key: jax.Array) -> jax.Array:
    """Images [B, H, W, C] in [0, 1] (8-bit values) -> (k + u) / 256 flattened to [B, D], u ~ U[0, 1)."""
    x = uniform_dequantize(images, key)
    return x.reshape(x.shape[0], -1)


@register("gmm")
class GMM(Method):
    """Gaussian mixture on dequantised pixels, fitted by (stepwise) EM through the shared loop."""

    capabilities = frozenset({"sample"})
    progress_keys = ("bpd",)

    @classmethod
    def defaults(cls) -> ml_collections.ConfigDict:
        return ml_collections.ConfigDict(
            dict(
                method=dict(
                    name="gmm",
                    num_components=10,  # K
                    covariance_type="full",  # full | diag | spherical
                    reg_covar=1e-3,  # added to every covariance's diagonal (pixels in [0, 1])
                    em="full_batch",  # full_batch (data.batch_size = training-set size) | stepwise
                    stepwise_power=0.6,  # stepwise EM step size rho_t = (t + 2)^-power, in (0.5, 1]
                    kmeans_iters=10,  # Lloyd iterations after k-means++ seeding
                ),
                model=dict(),
            )
        )

    @classmethod
    def check(cls, config: ml_collections.ConfigDict) -> None:
        m = config.method
        k = m.num_components
        require_int("method.num_components", k, 1, "--config.method.num_components=10")
        if m.covariance_type not in COVARIANCE_TYPES:
            fail("method.covariance_type", m.covariance_type, f"choose one of {COVARIANCE_TYPES}")
        if not (isinstance(m.reg_covar, (int, float)) and math.isfinite(m.reg_covar) and m.reg_covar > 0):
            fail(
                "method.reg_covar",
                m.reg_covar,
                "must be a finite number > 0 (the covariance floor)",
                "--config.method.reg_covar=1e-3",
            )
        if m.em not in EM_MODES:
            fail("method.em", m.em, f"choose one of {EM_MODES}")
        if not 0.5 < m.stepwise_power <= 1.0:
            fail(
                "method.stepwise_power",
                m.stepwise_power,
                "must be in (0.5, 1] (a convergent step size)",
                "--config.method.stepwise_power=0.6",
            )
        require_int("method.kmeans_iters", m.kmeans_iters, 0)

    def __init__(self, config, info, resources=None):
        super().__init__(config, info, resources)
        m = config.method
        if m.em == "full_batch" and config.data.batch_size != info.num_train:
            fail(
                "data.batch_size",
                config.data.batch_size,
                f"method.em='full_batch' runs exact EM on the whole training set ({info.num_train} examples)",
                f"--config.data.batch_size={info.num_train}, or --config.method.em=stepwise for mini-batches",
            )
        self.k, self.cov_type, self.reg_covar = m.num_components, m.covariance_type, float(m.reg_covar)
        self.shape = tuple(info.shape)
        self.num_dims = int(np.prod(info.shape))

    # -- loop contract ---------------------------------------------------------------------------------
    def init_state(self, key: jax.Array, batch: Batch) -> TrainState:
        """k-means++ / Lloyd / M-step on the (dequantised) first batch; no optimizer state."""
        init_key, deq_key = jax.random.split(jax.random.fold_in(key, 0x6A11))
        x = dequantize(batch["image"], deq_key)
        params, stats = init_gmm(init_key, x, self.k, self.cov_type, self.reg_covar, self.config.method.kmeans_iters)
        return TrainState(
            step=jnp.zeros((), jnp.int32),
            params=params,
            opt_state={},
            ema_params=jax.tree.map(jnp.copy, params),
            model_state=stats,
            key=key,
        )

    def step_size(self, step: jax.Array) -> jax.Array:
        """rho_t: 1 for full-batch EM, (t + 2)^-power for stepwise EM."""
        if self.config.method.em == "full_batch":
            return jnp.ones((), jnp.float32)
        return (step.astype(jnp.float32) + 2.0) ** (-float(self.config.method.stepwise_power))

    def train_step(self, state: TrainState, batch: Batch, key: jax.Array) -> tuple[TrainState, dict]:
        """One EM step on the dequantised batch. Metrics are of the parameters before the step."""
        x = dequantize(batch["image"], key)
        params, stats, log_px = em_step(
            state.params, state.model_state, x, self.step_size(state.step), self.cov_type, self.reg_covar
        )
        nll = -jnp.mean(log_px)
        metrics = {"loss": nll, "bpd": dequantized_bits_per_dim(nll, self.num_dims)}
        # The EM iterate is the estimate: "EMA" parameters (used for evaluation and samples) equal it.
        new = state.replace(step=state.step + 1, params=params, ema_params=params, model_state=stats)
        return new, metrics

    def eval_step(self, params, model_state, batch: Batch, key):
        nll = -log_likelihood(params, dequantize(batch["image"], key), self.cov_type)  # [B]
        return {"nll": nll, "bpd": dequantized_bits_per_dim(nll, self.num_dims)}

    def likelihood_metric(self):
        return "bpd", "exact"

    def generate(self, params, model_state, key, num, labels=None, spec=None):
        """Images [num, H, W, C]: samples of the density on the (k + u) / 256 scale, clipped to [0, 1]; 1 NFE."""
        x, _ = sample_gmm(key, params, num, self.cov_type)
        return jnp.clip(x, 0.0, 1.0).reshape(num, *self.shape), 1

    @property
    def num_free_parameters(self) -> int:
        """K - 1 weights, K D means and the covariances' free entries."""
        d = self.num_dims
        cov = {"full": d * (d + 1) // 2, "diag": d, "spherical": 1}[self.cov_type]
        return self.k - 1 + self.k * d + self.k * cov
