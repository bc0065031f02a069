"""Charts 19, 22, 24 and 27: the exact diffusion maths, and a tiny diffusion run's forward and reverse processes."""

import jax
import jax.numpy as jnp
import numpy as np

from jgen.diffusion import make_schedule, sample
from jgen.diffusion.analytic import mixture_density_1d, mixture_model_fn
from jgen.figures import CHARTS
from jgen.figures.diffusion import MIXTURE, diffusion_maths_data, draw_diffusion_maths


def test_chart22_is_exact_and_its_ode_paths_are_what_a_fine_ddim_solve_gives(tmp_path):
    T = 200
    d = diffusion_maths_data(timesteps=T, num_times=41, num_x=241, x_range=(-6.0, 6.0), num_ode_paths=8,
                             num_sde_paths=3)
    w, m, s = (np.asarray(MIXTURE[k]) for k in ("weights", "means", "stds"))
    # every column of the heat map is a density; t = 0 is the data's own
    np.testing.assert_allclose(np.trapezoid(d["density"], d["x"], axis=1), 1.0, atol=1e-3)
    np.testing.assert_allclose(d["density"][0], mixture_density_1d(d["x"], w, m, s))
    # the exact probability-flow paths end where DDIM (the ODE's first-order solver) on the exact denoiser lands
    # from the same points at t = 1
    sched = make_schedule("linear", T)
    model_fn = mixture_model_fn(sched, jnp.asarray(w, jnp.float32), jnp.asarray(m[:, None], jnp.float32),
                                jnp.asarray((s ** 2)[:, None, None], jnp.float32))
    starts = d["ode"]["paths"][-1]
    ddim = sample(model_fn, sched, jax.random.PRNGKey(0), (8, 1), sampler="ddim", steps=T, parameterization="x0",
                  noise=jnp.asarray(starts[:, None], jnp.float32)).samples[:, 0]
    np.testing.assert_allclose(d["ode"]["paths"][0], np.asarray(ddim), atol=0.03)
    assert np.all(np.diff(d["ode"]["paths"], axis=1) > 0)  # 1-D flows never cross
    assert d["sde"]["t"][0] == 1.0 and d["sde"]["t"][-1] == 0.0 and d["sde"]["paths"].shape[1] == 3
    for sc in d["schedules"].values():
        np.testing.assert_allclose(sc["alpha"] ** 2 + sc["sigma"] ** 2, 1.0, atol=1e-5)
    np.testing.assert_allclose(d["schedules"]["linear"]["alpha"] ** 2, sched.alpha_bars, rtol=1e-4)
    draw_diffusion_maths(d, str(tmp_path / CHARTS[22].filename))
    assert (tmp_path / CHARTS[22].filename).stat().st_size > 50_000
