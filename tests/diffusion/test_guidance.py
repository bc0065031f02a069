"""The guidance interval and autoguidance against exact denoisers: a class-conditional Gaussian mixture, whose
per-class posterior mean E[x0 | x_t, k] = m_k + alpha c_k / (alpha^2 c_k + sigma^2) (x_t - alpha m_k) (covariance
c_k I) is written out here, and the library's exact mixture network (analytic.py) in its parameterisations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jgen.config import OptionError
from jgen.diffusion import SamplingSpec, make_denoiser
from jgen.diffusion.analytic import mixture_model_fn
from jgen.diffusion.schedules import alpha_sigma, linear_schedule

WEIGHTS = jnp.array([0.4, 0.6])
MEANS = jnp.array([[1.0, 0.0], [-1.0, 0.5]])
C_MAIN, C_GUIDE = jnp.array([0.05, 0.1]), jnp.array([0.2, 0.3])  # the guide's components are broader
LABELS = jnp.array([0, 1, 1, 0, 2])  # 2 = the null label (the whole mixture)
X = jax.random.normal(jax.random.PRNGKey(0), (5, 2))
TIMES = (0.02, 0.3, 0.6)  # noise levels s = sigma / alpha of 0.076, 1.23, 6.1 on the linear schedule


def exact(schedule, variances, param="x0"):
    return mixture_model_fn(schedule, WEIGHTS, MEANS, variances[:, None, None] * jnp.eye(2), param)


def at(denoiser, t):
    """A jitted denoiser at X, time t of the linear schedule, and the noise level s there."""
    alpha, sigma = alpha_sigma(linear_schedule(), jnp.asarray(t))
    return denoiser(X, jnp.asarray(t), alpha, sigma), float(sigma / alpha)


def test_outside_the_interval_conditional_inside_cfg_exactly():
    s = linear_schedule()
    fn, interval = exact(s, C_MAIN, "edm"), (0.5, 2.0)  # s = 1.23 inside
    common = dict(labels=LABELS, null_label=2)
    with_interval = jax.jit(make_denoiser(fn, s, "edm", guidance=3.0, guidance_interval=interval, **common))
    cond = jax.jit(make_denoiser(fn, s, "edm", guidance=1.0, **common))
    cfg = jax.jit(make_denoiser(fn, s, "edm", guidance=3.0, **common))
    inside = []
    for t in TIMES:
        (x0, eps), level = at(with_interval, t)
        (want_x0, want_eps), _ = at(cfg if interval[0] < level <= interval[1] else cond, t)
        np.testing.assert_array_equal(np.asarray(x0), np.asarray(want_x0))
        np.testing.assert_array_equal(np.asarray(eps), np.asarray(want_eps))
        inside.append(interval[0] < level <= interval[1])
    assert any(inside) and not all(inside)  # both branches were taken
    assert not np.allclose(at(cond, 0.3)[0][0], at(cfg, 0.3)[0][0])  # and they differ


def test_autoguidance_with_the_model_itself_is_the_model():
    s = linear_schedule()
    fn = exact(s, C_MAIN, "edm")
    main = jax.jit(make_denoiser(fn, s, "edm", labels=LABELS, null_label=2))
    guide = make_denoiser(fn, s, "edm", labels=LABELS, null_label=2)
    auto = jax.jit(make_denoiser(fn, s, "edm", labels=LABELS, guidance=2.5, null_label=2, guide=guide))
    for t in TIMES:
        for got, want in zip(at(auto, t)[0], at(main, t)[0]):
            np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


@pytest.mark.parametrize("w", [0.0, 1.0, 2.0])
def test_autoguidance_extrapolates_from_a_weaker_guide_in_closed_form(w):
    """Main: the exact EDM network of the mixture; guide: the exact x0 network of a broader one (each in its own
    parameterisation); both conditioned on the same labels. D = D_guide + w (D_main - D_guide), per class."""
    s = linear_schedule()
    labels = LABELS[:4]  # class-conditional rows
    guide = make_denoiser(exact(s, C_GUIDE, "x0"), s, "x0", labels=labels, null_label=2)
    auto = jax.jit(
        make_denoiser(exact(s, C_MAIN, "edm"), s, "edm", labels=labels, guidance=w, null_label=2, guide=guide)
    )
    m = MEANS[labels]
    for t in TIMES:
        alpha, sigma = alpha_sigma(s, jnp.asarray(t))
        main_d, guide_d = (
            m + alpha * c / (alpha**2 * c + sigma**2) * (X[:4] - alpha * m)
            for c in (C_MAIN[labels][:, None], C_GUIDE[labels][:, None])
        )
        want = guide_d + w * (main_d - guide_d)
        x0, eps = auto(X[:4], jnp.asarray(t), alpha, sigma)
        np.testing.assert_allclose(np.asarray(x0), np.asarray(want), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(np.asarray(alpha * x0 + sigma * eps), np.asarray(X[:4]), atol=1e-4)


def test_guidance_interval_is_checked_in_the_spec():
    assert SamplingSpec(guidance=2.0, guidance_interval=[0.28, 2.9]).guidance_interval == (0.28, 2.9)
    assert SamplingSpec(guidance_interval=(0, float("inf"))).guidance_interval == (0.0, float("inf"))
    for bad in [(2.9, 0.28), (0.1,), (-1.0, 2.0), ("a", 1.0), 3.0]:
        with pytest.raises(OptionError, match="guidance_interval="):
            SamplingSpec(guidance=2.0, guidance_interval=bad)
    with pytest.raises(OptionError, match="guide="):
        SamplingSpec(guide="")
