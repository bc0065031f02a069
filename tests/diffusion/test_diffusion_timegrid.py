"""Time grids: every spacing starts where it should, ends at the schedule's t_min (trailing aside), and is evenly
spaced in its own variable; DDIM's leading/trailing reproduce Lin et al. (2023), Table 2."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

from jgen.diffusion.schedules import alpha_sigma, cosine_schedule, linear_schedule, log_snr, make_schedule
from jgen.diffusion.timegrid import MAX_NOISE, SPACINGS, time_grid


def noise_level(schedule, t):
    a, s = alpha_sigma(schedule, jnp.asarray(t))
    return np.asarray(s / a, np.float64)


@pytest.mark.parametrize("schedule_name", ["linear", "cosine"])
@pytest.mark.parametrize("spacing", [s for s in SPACINGS if s != "trailing"])
def test_grids_end_at_t_min_and_decrease(schedule_name, spacing):
    s = make_schedule(schedule_name, 1000)
    for steps in (2, 7, 20):
        t = np.asarray(time_grid(s, steps, spacing))
        assert t.shape == (steps,) and t.dtype == np.float32
        assert np.all(np.diff(t) < 0), t
        assert t[-1] == pytest.approx(1e-3, abs=1e-7)  # t_min = 1/T: the data prediction is taken there
        if spacing in ("time_uniform", "time_quadratic"):
            assert t[0] == 1.0
        elif spacing in ("logsnr_uniform", "karras"):  # the largest noise level, capped at EDM's s = 80
            expect = min(float(noise_level(s, 1.0)), MAX_NOISE)
            assert float(noise_level(s, t[0])) == pytest.approx(expect, rel=2e-3)
    assert np.asarray(time_grid(s, 1, spacing)).shape == (1,)


def test_each_spacing_is_even_in_its_own_variable():
    s = cosine_schedule()
    t = np.asarray(time_grid(s, 12, "time_uniform"), np.float64)
    np.testing.assert_allclose(np.diff(t), np.diff(t)[0], atol=1e-6)
    t = np.asarray(time_grid(s, 12, "time_quadratic"), np.float64)
    np.testing.assert_allclose(np.diff(np.sqrt(t)), np.diff(np.sqrt(t))[0], atol=1e-5)
    lam = np.asarray(log_snr(s, time_grid(s, 12, "logsnr_uniform")), np.float64)
    np.testing.assert_allclose(np.diff(lam), np.diff(lam)[0], rtol=2e-3)
    for rho in (7.0, 3.0):
        lv = noise_level(s, time_grid(s, 12, "karras", rho=rho)) ** (1 / rho)
        np.testing.assert_allclose(np.diff(lv), np.diff(lv)[0], rtol=5e-3)


def test_ddim_leading_and_trailing_match_lin_et_al():
    s = linear_schedule(1000)
    # Lin et al. 2023, Table 2, T = 1000, 10 steps (1-based step numbers): leading 1, 101, ..., 901 and
    # trailing 1000, 900, ..., 100; step k (1-based) sits at t = k / T.
    np.testing.assert_allclose(np.asarray(time_grid(s, 10, "leading")), np.arange(901, 0, -100) / 1000, atol=1e-7)
    np.testing.assert_allclose(np.asarray(time_grid(s, 10, "trailing")), np.arange(1000, 0, -100) / 1000, atol=1e-7)
    np.testing.assert_allclose(np.asarray(time_grid(s, 1000, "trailing")), np.arange(1000, 0, -1) / 1000, atol=1e-7)
    assert np.asarray(time_grid(s, 3, "trailing")).shape == (3,)
    np.testing.assert_allclose(
        np.asarray(time_grid(s, 1000, "time_uniform")), np.arange(1000, 0, -1) / 1000, atol=1e-6
    )  # all T steps: time_uniform is every discrete step


def test_bad_spacings_raise():
    s = linear_schedule(100)
    with pytest.raises(ValueError, match="spacing='cubic' is unknown"):
        time_grid(s, 10, "cubic")
    with pytest.raises(ValueError, match="steps=0"):
        time_grid(s, 0)
    with pytest.raises(ValueError, match="at most the schedule's T=100"):
        time_grid(s, 101, "trailing")
    assert np.asarray(time_grid(s, 300, "logsnr_uniform")).shape == (300,)  # continuous spacings: any count
    with pytest.raises(ValueError, match="rho=0"):
        time_grid(s, 10, "karras", rho=0)
    assert math.isfinite(float(np.asarray(time_grid(s, 5, "karras"))[0]))
