"""The diffusion part of the course: charts 19 (reverse corruption), 22 (diffusion mathematics), 24 (from noise to
image in 1000 steps) and 27 (the Stable Diffusion API).

Chart 22 needs no run: it is exact, from the closed-form marginals of a 1-D Gaussian mixture (jgen.diffusion.analytic)
and the schedules. The others read a trained diffusion run through `load_run` / `Pipeline`; the reverse process
runs only through the method's own sampler (`Diffusion.run_sampler`, the function `generate` calls, which also
returns the trajectory) and the network only through `jgen.diffusion.make_denoiser`.
"""

from __future__ import annotations

import statistics
from typing import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jgen.diffusion import alpha_sigma, make_denoiser, make_schedule, sample as diffusion_sample
from jgen.diffusion.analytic import mixture_density_1d, mixture_marginal_1d, mixture_model_fn, pf_ode_path_1d
from jgen.diffusion.schedules import SCHEDULES
from jgen.diffusion.timegrid import time_grid
from jgen.diffusion.trajectory import forward_trajectory
from jgen.figures.common import new_figure, save, show_images
from jgen.run import Run, load_run

# The 1-D data of chart 22: three modes of different widths and weights.
MIXTURE = {"weights": (0.3, 0.3, 0.4), "means": (-1.2, 0.1, 1.1), "stds": (0.12, 0.08, 0.2)}


# -- 22: diffusion mathematics -----------------------------------------------------------------------------------
def _alpha_sigma(schedule, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(alpha_t, sigma_t) as float64 arrays, with t = 0 the clean data (alpha 1, sigma 0)."""
    a, s = (np.asarray(v, np.float64) for v in alpha_sigma(schedule, jnp.asarray(t, jnp.float32)))
    return np.where(t <= 0, 1.0, a), np.where(t <= 0, 0.0, s)


def diffusion_maths_data(runs: Mapping[str, str] | None = None, schedule: str = "linear", timesteps: int = 1000,
                         num_times: int = 201, num_x: int = 301, x_range: tuple[float, float] = (-3.0, 3.0),
                         num_ode_paths: int = 16, num_sde_paths: int = 6, seed: int = 0,
                         mixture: Mapping[str, Sequence[float]] = MIXTURE) -> dict:
    """Chart 22's data, exact for the 1-D mixture `mixture` under `schedule` (needs no run):

    t [Tn] (0 = data .. 1), x [X], density [Tn, X]: the forward marginal q(x_t) on the grid;
    ode: {"t": t, "paths": [Tn, P]}: exact probability-flow ODE trajectories from P equal-mass quantiles of N(0, 1)
      at t = 1 (`pf_ode_path_1d`: the monotone transport between the marginals);
    sde: {"t": [K], "paths": [K, Q]}: reverse-SDE trajectories: DDPM ancestral sampling over all `timesteps` steps
      with the exact denoiser (`mixture_model_fn`) through `jgen.diffusion.sample`;
    schedules: {name: {"t", "alpha", "sigma", "log_snr"}} at the discrete steps of each schedule in SCHEDULES.
    """
    w, m, s = (np.asarray(mixture[k], np.float64) for k in ("weights", "means", "stds"))
    sched = make_schedule(schedule, timesteps)
    t = np.linspace(0.0, 1.0, num_times)
    x = np.linspace(*x_range, num_x)
    alphas, sigmas = _alpha_sigma(sched, t)
    density = np.stack([mixture_density_1d(x, *mixture_marginal_1d(a, sg, w, m, s)) for a, sg in zip(alphas, sigmas)])
    dist = statistics.NormalDist()
    starts = np.array([dist.inv_cdf((k + 0.5) / num_ode_paths) for k in range(num_ode_paths)])
    ode = pf_ode_path_1d(starts, alphas[-1], sigmas[-1], alphas, sigmas, w, m, s)

    model_fn = mixture_model_fn(sched, jnp.asarray(w, jnp.float32), jnp.asarray(m[:, None], jnp.float32),
                                jnp.asarray((s ** 2)[:, None, None], jnp.float32))
    keep = tuple(int(k) for k in np.unique(np.linspace(0, timesteps, min(timesteps + 1, 201)).round()))
    out = jax.jit(lambda key: diffusion_sample(model_fn, sched, key, (num_sde_paths, 1), sampler="ddpm",
                                               steps=timesteps, parameterization="x0", trajectory_steps=keep))(
        jax.random.PRNGKey(seed))
    grid = np.append(np.asarray(time_grid(sched, timesteps, "time_uniform"), np.float64), 0.0)  # state k's time
    schedules = {}
    for name in SCHEDULES:
        other = make_schedule(name, timesteps)
        ts = np.arange(1, timesteps + 1) / timesteps
        a, sg = _alpha_sigma(other, ts)
        schedules[name] = {"t": ts, "alpha": a, "sigma": sg, "log_snr": np.asarray(other.log_snrs, np.float64)}
    return {"schedule": schedule, "mixture": {"weights": w, "means": m, "stds": s}, "t": t, "x": x,
            "density": density, "ode": {"t": t, "paths": ode},
            "sde": {"t": grid[list(keep)], "paths": np.asarray(out.trajectory, np.float64)[..., 0]},
            "schedules": schedules}


def draw_diffusion_maths(data: dict, path: str) -> None:
    plt, fig = new_figure(14, 5.2)
    gs = fig.add_gridspec(2, 3, width_ratios=[2.2, 1, 1])
    ax = fig.add_subplot(gs[:, 0])
    t, x = data["t"], data["x"]
    ax.imshow(data["density"].T ** 0.5, origin="lower", aspect="auto", cmap="magma",
              extent=(t[0], t[-1], x[0], x[-1]))
    for p in data["ode"]["paths"].T:
        ax.plot(data["ode"]["t"], p, color="white", lw=0.9)
    for p in data["sde"]["paths"].T:
        ax.plot(data["sde"]["t"], p, color="tab:cyan", lw=0.6, alpha=0.9)
    ax.plot([], [], color="white", label="probability-flow ODE (exact transport)")
    ax.plot([], [], color="tab:cyan", label="reverse SDE (DDPM ancestral, exact denoiser)")
    ax.legend(fontsize=8, loc="lower right", facecolor="0.3", labelcolor="white")
    ax.set_xlabel("t (0: data, 1: noise)")
    ax.set_ylabel("x")
    ax.set_ylim(x[0], x[-1])
    ax.set_title(f"forward marginals q(x_t) of a 1-D mixture ({data['schedule']} schedule; colour: sqrt density)",
                 fontsize=10)
    ax_a, ax_l = fig.add_subplot(gs[:, 1]), fig.add_subplot(gs[:, 2])
    for (name, sc), style in zip(data["schedules"].items(), ("-", "--")):
        ax_a.plot(sc["t"], sc["alpha"], style, color="tab:blue", label=f"alpha_t, {name}")
        ax_a.plot(sc["t"], sc["sigma"], style, color="tab:red", label=f"sigma_t, {name}")
        ax_l.plot(sc["t"], sc["log_snr"], style, color="k", label=name)
    ax_a.set_title("alpha_t and sigma_t (alpha² + sigma² = 1)", fontsize=10)
    ax_l.set_title("log SNR = log(alpha² / sigma²)", fontsize=10)
    for a in (ax_a, ax_l):
        a.set_xlabel("t")
        a.legend(fontsize=8)
    fig.suptitle("22 Diffusion mathematics: x_t = alpha_t x_0 + sigma_t eps")
    fig.tight_layout()
    save(fig, path)
