"""Post-hoc EMA (Karras et al. 2024, "Analyzing and Improving the Training Dynamics of Diffusion Models", sec. 3):
power-function EMA profiles kept during training, and the least-squares reconstruction of any other EMA length
from periodic snapshots of them. Pure functions; the loop keeps the profiles, `jgen ema` reconstructs.

The power-function EMA with exponent gamma > -1 averages the parameters theta_1..theta_T of the first T steps as

    ema_T = beta_T ema_{T-1} + (1 - beta_T) theta_T,    beta_t = (1 - 1/t)^(gamma + 1)

(beta_1 = 0: the EMA starts at theta_1). Unrolled, theta_t gets the weight

    w_t = (1 - beta_t) prod_{s=t+1..T} beta_s = (t^(gamma+1) - (t-1)^(gamma+1)) / T^(gamma+1)
        = integral over [t-1, t] of  p_{gamma,T}(tau) = (gamma + 1) tau^gamma / T^(gamma+1)   (0 <= tau <= T),

so the EMA is exactly the average of the piecewise-constant trajectory under the density p_{gamma,T}, whatever T.
Its width relative to its length, sigma_rel = std(p) / T, is

    sigma_rel^2 = (gamma + 1) / ((gamma + 2)^2 (gamma + 3))                                    (EDM2, eq. 123)

(sigma_rel 0.05 -> gamma 16.97, 0.10 -> gamma 6.94). sigma_rel(gamma) rises from 0 at gamma = -1 to its maximum
SIGMA_REL_MAX ~ 0.3003 at gamma = (sqrt(5) - 3) / 2 and falls back to 0 as gamma -> inf; jgen uses the falling
branch (gamma >= (sqrt(5) - 3) / 2, the largest root of the cubic), as EDM2 does.

Reconstruction. Snapshots i (profile gamma_i saved at step t_i) hold sum_t theta_t int_{t-1}^{t} p_i. A combination
sum_i x_i snapshot_i has the profile sum_i x_i p_i; the x minimising || sum_i x_i p_i - p_r ||^2 in L2([0, inf))
for the wanted profile r = (gamma_r, t_r) solves A x = b with A_ij = <p_i, p_j>, b_i = <p_i, p_r>, where

    <p_{a,s}, p_{b,u}> = (a+1)(b+1) / (s^(a+1) u^(b+1)) int_0^min(s,u) tau^(a+b) dtau
                       = (a+1)(b+1) min(s,u)^(a+b+1) / ((a+b+1) s^(a+1) u^(b+1))        (a + b > -1)
                       = (a+1)(b+1) / ((a+b+1) max(s,u)) * (min/max)^(exponent of the longer one),

the last form (EDM2's Algorithm 3) free of overflow: for s <= u it is (s/u)^b / u times the constants. The weights
are then scaled to sum to 1 (EDM2 does the same), so a parameter that never moved is reconstructed exactly. Because
the discrete weights are the profiles' integrals over unit intervals, a wanted profile in the span of the snapshots'
(a stored gamma at a snapshot step) is reconstructed exactly, and for any other the error in each parameter is at
most ||residual||_L2 * ||theta||_2 (Cauchy-Schwarz, Jensen on each unit interval).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np

GAMMA_AT_MAX = (math.sqrt(5.0) - 3.0) / 2.0  # d sigma_rel / d gamma = 0: gamma^2 + 3 gamma + 1 = 0


def sigma_rel_from_gamma(gamma: float) -> float:
    """The relative width sigma_rel of the power-function profile with exponent `gamma` (> -1)."""
    g = float(gamma)
    return math.sqrt((g + 1.0) / ((g + 2.0) ** 2 * (g + 3.0)))


SIGMA_REL_MAX = sigma_rel_from_gamma(GAMMA_AT_MAX)  # ~0.3003: no power-function profile is wider


def gamma_from_sigma_rel(sigma_rel: float) -> float:
    """The exponent gamma >= GAMMA_AT_MAX whose profile has width `sigma_rel` in (0, SIGMA_REL_MAX]: the largest
    real root of (gamma + 2)^2 (gamma + 3) = (gamma + 1) / sigma_rel^2, i.e. of
    gamma^3 + 7 gamma^2 + (16 - 1/sigma_rel^2) gamma + 12 - 1/sigma_rel^2 = 0."""
    s = float(sigma_rel)
    if not 0.0 < s <= SIGMA_REL_MAX:
        raise ValueError(f"sigma_rel={sigma_rel!r} must be in (0, {SIGMA_REL_MAX:.4f}]")
    k = s**-2
    roots = np.roots([1.0, 7.0, 16.0 - k, 12.0 - k])
    return float(max(r.real for r in roots if abs(r.imag) < 1e-7 * max(1.0, abs(r.real))))


def init_profiles(params: Any, num: int) -> tuple:
    """`num` power-function EMAs of `params`, each a copy of it (overwritten at step 1, where beta = 0)."""
    return tuple(jax.tree.map(jnp.copy, params) for _ in range(num))


def update_profiles(profiles: tuple, params: Any, gammas: Sequence[float], t: jax.Array) -> tuple:
    """Each profile after averaging in `params`, the parameters after step `t` (int32 [], >= 1):
    ema <- beta_t ema + (1 - beta_t) params, beta_t = (1 - 1/t)^(gamma + 1). Pure (jit, sharding); beta is computed
    as exp((gamma + 1) log1p(-1/t)) and 1 - beta as -expm1(...), accurate in float32 for any t."""
    chex.assert_equal(len(profiles), len(gammas))
    chex.assert_shape(t, ())
    tf = jnp.asarray(t, jnp.float32)
    out = []
    for ema, gamma in zip(profiles, gammas):
        chex.assert_trees_all_equal_shapes(ema, params)
        a = (gamma + 1.0) * jnp.log1p(-1.0 / tf)  # -inf at t = 1
        beta, one_minus = jnp.exp(a), -jnp.expm1(a)
        out.append(jax.tree.map(lambda e, p, b=beta, w=one_minus: (b * e + w * p).astype(e.dtype), ema, params))
    return tuple(out)


def profile_weights(gamma: float, t: int) -> np.ndarray:
    """float64 [t]: the weight of theta_1..theta_t in the power-function EMA at step t (sums to 1)."""
    s = np.arange(1, t + 1, dtype=np.float64)
    return (s ** (gamma + 1.0) - (s - 1.0) ** (gamma + 1.0)) / float(t) ** (gamma + 1.0)


def profile_inner(t_a, gamma_a, t_b, gamma_b) -> np.ndarray:
    """<p_a, p_b> in L2([0, inf)) of power-function profiles (steps t > 0, exponents gamma > -1/2), broadcast,
    float64 (see the module docstring for the derivation)."""
    t_a, g_a, t_b, g_b = (np.asarray(x, np.float64) for x in (t_a, gamma_a, t_b, gamma_b))
    longer = np.where(t_a <= t_b, g_b, g_a)  # exponent of the profile that reaches further
    ratio = np.minimum(t_a, t_b) / np.maximum(t_a, t_b)
    return (g_a + 1.0) * (g_b + 1.0) * ratio**longer / ((g_a + g_b + 1.0) * np.maximum(t_a, t_b))


def solve_weights(
    snapshot_steps: Sequence[int], snapshot_gammas: Sequence[float], step: int, gamma: float
) -> tuple[np.ndarray, float]:
    """(x float64 [n] summing to 1, relative L2 residual ||sum x_i p_i - p_r|| / ||p_r||): the least-squares
    weights of the n snapshot profiles (steps [n], exponents [n]) for the profile (`step`, `gamma`)."""
    t, g = np.asarray(snapshot_steps, np.float64), np.asarray(snapshot_gammas, np.float64)
    chex.assert_equal_shape((t, g))
    chex.assert_rank(t, 1)
    a = profile_inner(t[:, None], g[:, None], t[None, :], g[None, :])  # [n, n]
    b = profile_inner(t, g, float(step), float(gamma))  # [n]
    x = np.linalg.lstsq(a, b, rcond=None)[0]
    x = x / np.sum(x)
    rr = float(profile_inner(step, gamma, step, gamma))
    residual_sq = float(x @ a @ x - 2.0 * x @ b + rr)
    return x, math.sqrt(max(residual_sq, 0.0) / rr)


def combine(weights: Sequence[float], trees: Sequence[Any]) -> Any:
    """sum_i weights[i] * trees[i] leaf by leaf, as float64 numpy arrays (the caller casts to the leaves' dtype)."""
    return jax.tree.map(lambda *xs: sum(float(w) * np.asarray(x, np.float64) for w, x in zip(weights, xs)), *trees)


def with_profiles(init_state, num: int):
    """`init_state(key, batch) -> TrainState` that also starts `num` power-function profiles (none: unchanged)."""
    if not num:
        return init_state

    def init(key, batch):
        state = init_state(key, batch)
        return state.replace(power_ema=init_profiles(state.params, num))

    return init


def with_profile_updates(train_step, gammas: Sequence[float]):
    """`train_step(state, batch, key) -> (state, metrics)` that then averages the new parameters into the
    profiles of exponents `gammas` at t = the new step (no gammas: unchanged). Any family's step works: the profiles
    follow `state.params`, whatever the method did to them."""
    gammas = tuple(float(g) for g in gammas)
    if not gammas:
        return train_step

    def step(state, batch, key):
        new, metrics = train_step(state, batch, key)
        return new.replace(power_ema=update_profiles(new.power_ema, new.params, gammas, new.step)), metrics

    return step
