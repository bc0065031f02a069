"""The diffusion part of the course: charts 19 (reverse corruption), 22 (diffusion mathematics), 24 (from noise to
image in 1000 steps) and 27 (the Stable Diffusion API).

Chart 22 needs no run: it is exact, from the closed-form marginals of a 1-D Gaussian mixture (jgen.diffusion.analytic)
and the schedules. The others read a trained diffusion run through `load_run` / `Pipeline`; the reverse process
runs only through the method's own sampler (`Diffusion.run_sampler`, the function `generate` calls, which also
returns the trajectory) and the network only through its denoiser (`Diffusion.denoiser`).
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from course.common import MissingData, new_figure, save, show_images
from jgen.diffusion import Given, SamplingSpec, alpha_sigma, make_denoiser, make_schedule, sample
from jgen.diffusion.analytic import mixture_density_1d, mixture_marginal_1d, mixture_model_fn, pf_ode_path_1d
from jgen.diffusion.schedules import SCHEDULES
from jgen.diffusion.timegrid import time_grid
from jgen.diffusion.trajectory import forward_trajectory
from jgen.pipeline import Pipeline
from jgen.run import Run, load_run

# The 1-D data of chart 22: three modes of different widths and weights.
MIXTURE = {"weights": (0.3, 0.3, 0.4), "means": (-1.2, 0.1, 1.1), "stds": (0.12, 0.08, 0.2)}


# -- 22: diffusion mathematics -----------------------------------------------------------------------------------
def _alpha_sigma(schedule, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(alpha_t, sigma_t) as float64 arrays, with t = 0 the clean data (alpha 1, sigma 0)."""
    a, s = (np.asarray(v, np.float64) for v in alpha_sigma(schedule, jnp.asarray(t, jnp.float32)))
    return np.where(t <= 0, 1.0, a), np.where(t <= 0, 0.0, s)


def diffusion_maths_data(
    runs: Mapping[str, str] | None = None,
    schedule: str = "linear",
    timesteps: int = 1000,
    num_times: int = 201,
    num_x: int = 301,
    x_range: tuple[float, float] = (-3.0, 3.0),
    num_ode_paths: int = 16,
    num_sde_paths: int = 6,
    seed: int = 0,
    mixture: Mapping[str, Sequence[float]] = MIXTURE,
) -> dict:
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

    model_fn = mixture_model_fn(
        sched,
        jnp.asarray(w, jnp.float32),
        jnp.asarray(m[:, None], jnp.float32),
        jnp.asarray((s**2)[:, None, None], jnp.float32),
    )
    keep = tuple(int(k) for k in np.unique(np.linspace(0, timesteps, min(timesteps + 1, 201)).round()))
    spec = SamplingSpec(sampler="ddpm", steps=timesteps, trajectory_steps=keep)
    denoise = make_denoiser(model_fn, sched, "x0")
    out = jax.jit(lambda key: sample(denoise, sched, key, (num_sde_paths, 1), spec))(jax.random.PRNGKey(seed))
    grid = np.append(np.asarray(time_grid(sched, timesteps, "time_uniform"), np.float64), 0.0)  # state k's time
    schedules = {}
    for name in SCHEDULES:
        other = make_schedule(name, timesteps)
        ts = np.arange(1, timesteps + 1) / timesteps
        a, sg = _alpha_sigma(other, ts)
        schedules[name] = {"t": ts, "alpha": a, "sigma": sg, "log_snr": np.asarray(other.log_snrs, np.float64)}
    return {
        "schedule": schedule,
        "mixture": {"weights": w, "means": m, "stds": s},
        "t": t,
        "x": x,
        "density": density,
        "ode": {"t": t, "paths": ode},
        "sde": {"t": grid[list(keep)], "paths": np.asarray(out.trajectory, np.float64)[..., 0]},
        "schedules": schedules,
    }


def draw_diffusion_maths(data: dict, path: str) -> None:
    plt, fig = new_figure(14, 5.2)
    gs = fig.add_gridspec(2, 3, width_ratios=[2.2, 1, 1])
    ax = fig.add_subplot(gs[:, 0])
    t, x = data["t"], data["x"]
    ax.imshow(data["density"].T ** 0.5, origin="lower", aspect="auto", cmap="magma", extent=(t[0], t[-1], x[0], x[-1]))
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
    ax.set_title(
        f"forward marginals q(x_t) of a 1-D mixture ({data['schedule']} schedule; colour: sqrt density)", fontsize=10
    )
    ax_a, ax_l = fig.add_subplot(gs[:, 1]), fig.add_subplot(gs[:, 2])
    for (name, sc), style in zip(data["schedules"].items(), ("-", "--", ":", "-.")):
        ax_a.plot(sc["t"], sc["alpha"], style, color="tab:blue", label=f"alpha_t, {name}")
        ax_a.plot(sc["t"], sc["sigma"], style, color="tab:red", label=f"sigma_t, {name}")
        ax_l.plot(sc["t"], sc["log_snr"], style, color="k", label=name)
    ax_a.set_title("alpha_t and sigma_t (alpha² + sigma² = 1; rectified flow: alpha + sigma = 1)", fontsize=9)
    ax_l.set_title("log SNR = log(alpha² / sigma²)", fontsize=10)
    for a in (ax_a, ax_l):
        a.set_xlabel("t")
        a.legend(fontsize=8)
    fig.suptitle("22 Diffusion mathematics: x_t = alpha_t x_0 + sigma_t eps")
    fig.tight_layout()
    save(fig, path)


# -- a trained diffusion run's pieces -----------------------------------------------------------------------------
def x0_predictor(run: Run, labels: jax.Array | None):
    """A jitted (x [B, ...] in model space, t scalar) -> the network's estimate of x_0, with the run's own
    parameterisation, guidance, null label and clipping (as its sampler sees it)."""
    m, cfg = run.method, run.method.config.method

    def predict(params, x, t):
        denoise = m.denoiser(params, labels, cfg.guidance, cfg.clip_denoised)
        a, s = alpha_sigma(m.schedule, t)
        return denoise(x, t, a, s)[0]

    fn = jax.jit(predict)
    return lambda x, t: fn(run.state.ema_params, x, jnp.float32(t))


def _trajectory(
    run: Run,
    key: jax.Array,
    num: int,
    labels,
    sampler: str,
    steps: int,
    keep: tuple[int, ...],
    noise: jax.Array | None = None,
) -> np.ndarray:
    """The states [K, num, ...] (model space) the run's sampler passes through at the state indices `keep`."""
    m = run.method
    spec = dataclasses.replace(m.sampling_spec(sampler=sampler, steps=steps, eta=0.0), trajectory_steps=keep)
    given = Given(noise=noise)

    def traj(params, key, labels):
        return m.run_sampler(params, key, num, labels, spec, given).trajectory

    return np.asarray(jax.jit(traj)(run.state.ema_params, key, labels))


def _state_times(run: Run, steps: int, keep: Sequence[int]) -> np.ndarray:
    """Time of each kept state of a `steps`-step time-uniform sampler: the grid's times, then 0 for the sample."""
    grid = np.append(np.asarray(time_grid(run.method.schedule, steps, "time_uniform"), np.float64), 0.0)
    return grid[list(keep)]


def _spread_labels(run: Run, num: int) -> jax.Array | None:
    k = run.method.num_classes
    return None if k == 0 else jnp.asarray((np.arange(num) * 3) % k, jnp.int32)


# -- 19: reverse corruption ---------------------------------------------------------------------------------------
def reverse_corruption_data(
    runs: Mapping[str, str],
    run: str = "ddpm_mnist",
    index: int = 0,
    num_points: int = 11,
    steps: int = 50,
    seed: int = 0,
) -> dict:
    """Chart 19's data: test image `index` of `runs[run]` (image [H, W, C], label), and at `num_points` times:
    forward {"t" [K], "images" [K, H, W, C]}: x_t = alpha_t x_0 + sigma_t eps, one eps for all t (t = 0: the image);
    x0_predictions [K, H, W, C]: the network's one-call estimate of x_0 from each forward x_t;
    reverse {"t" [K], "images"}: deterministic DDIM (`steps` steps, the digit's label) from the forward process's
    last state x_1 back to t = 0: the noise has erased the image, so it draws a new one."""
    r = load_run(runs[run])
    m = r.method
    example = r.test_source[index]
    image, label = np.asarray(example["image"]), int(example["label"])
    k_f, k_r = jax.random.split(jax.random.PRNGKey(seed))
    times = np.linspace(0.0, 1.0, num_points)
    fwd = forward_trajectory(m.schedule, m.encode_x0(jnp.asarray(image)[None]), k_f, jnp.asarray(times, jnp.float32))
    labels = None if m.num_classes == 0 else jnp.asarray([label], jnp.int32)
    predict = x0_predictor(r, labels)
    x0_hat = [fwd[0, 0]] + [predict(fwd[k], times[k])[0] for k in range(1, num_points)]
    keep = tuple(int(v) for v in np.round(np.linspace(0, steps, num_points)))
    back = _trajectory(r, k_r, 1, labels, "ddim", steps, keep, noise=fwd[-1])
    decode = lambda x: np.asarray(m.decode_x0(jnp.asarray(x)))  # noqa: E731
    return {
        "run": run,
        "index": index,
        "image": image,
        "label": label,
        "forward": {"t": times, "images": decode(fwd[:, 0])},
        "x0_predictions": decode(jnp.stack(x0_hat)),
        "reverse": {"t": _state_times(r, steps, keep), "images": decode(back[:, 0])},
        "steps": steps,
    }


def draw_reverse_corruption(data: dict, path: str) -> None:
    rows = [
        ("forward: x_t = alpha_t x_0 + sigma_t eps", data["forward"]["images"], data["forward"]["t"]),
        ("the model's estimate of x_0 from that x_t (one network call)", data["x0_predictions"], data["forward"]["t"]),
        (
            f"reverse: DDIM, {data['steps']} steps, label {data['label']}, from the x_1 above",
            data["reverse"]["images"],
            data["reverse"]["t"],
        ),
    ]
    k = len(data["forward"]["t"])
    plt, fig = new_figure(1.1 * k, 4.6)
    axes = fig.subplots(3, k, squeeze=False)
    for i, (title, images, times) in enumerate(rows):
        for j in range(k):
            show_images(axes[i, j], images[j][None], title=f"t={times[j]:.2f}")
        axes[i, 0].annotate(title, (0, 1.32), xycoords="axes fraction", fontsize=9, ha="left")
    fig.suptitle(f"19 Reverse corruption ({data['run']}, test image {data['index']})", y=1.02)
    fig.subplots_adjust(hspace=0.75)
    save(fig, path)


# -- 24: from noise to image in 1000 steps ------------------------------------------------------------------------
def ddpm_trajectory_data(
    runs: Mapping[str, str],
    run: str = "ddpm_mnist",
    num: int = 4,
    num_points: int = 11,
    steps: int | None = None,
    seed: int = 0,
) -> dict:
    """Chart 24's data: DDPM ancestral sampling with one step per trained step (steps = T by default) for `num`
    images, kept at `num_points` states: "t" [K] and "step" [K] = t T (1000, 900, ..., 0 for T = 1000),
    x_t [K, num, H, W, C] and x0 [K, num, H, W, C], the network's estimate of x_0 from each x_t (the last state is the
    sample itself). The sampler's key is batch 0's of `generate(..., seed=seed)`, so the last x_t is the image
    `generate` draws."""
    r = load_run(runs[run])
    m = r.method
    steps = m.schedule.num_steps if steps is None else steps
    keep = tuple(int(v) for v in np.round(np.linspace(0, steps, num_points)))
    labels = _spread_labels(r, num)
    traj = _trajectory(r, jax.random.fold_in(jax.random.PRNGKey(seed), 0), num, labels, "ddpm", steps, keep)
    times = _state_times(r, steps, keep)
    predict = x0_predictor(r, labels)
    x0 = np.stack([traj[k] if times[k] == 0 else np.asarray(predict(traj[k], times[k])) for k in range(len(keep))])
    decode = lambda x: np.asarray(m.decode_x0(jnp.asarray(x)))  # noqa: E731
    step = np.round(times * m.schedule.num_steps).astype(int)
    return {
        "run": run,
        "steps": steps,
        "step": step,
        "t": times,
        "labels": None if labels is None else np.asarray(labels),
        "x_t": decode(traj),
        "x0": decode(x0),
    }


def draw_ddpm_trajectory(data: dict, path: str) -> None:
    k, num = data["x_t"].shape[:2]
    plt, fig = new_figure(0.75 * k + 1, 1.6 * num + 1.2)
    axes = fig.subplots(2, 1)
    for ax, key, title in ((axes[0], "x_t", "x_t"), (axes[1], "x0", "predicted x_0 = E[x_0 | x_t] (network)")):
        images = np.swapaxes(data[key], 0, 1).reshape(-1, *data[key].shape[2:])  # one row per sample
        show_images(ax, images, ncol=k, title=title)
        h = images.shape[1] + 1
        ax.set_xticks([(j + 0.5) * h for j in range(k)], [f"{s}" for s in data["step"]], fontsize=8)
        ax.tick_params(length=0)
    axes[1].set_xlabel("t (discrete step)")
    labels = "" if data["labels"] is None else f", labels {', '.join(map(str, data['labels']))}"
    fig.suptitle(f"24 From noise to image in {data['steps']} steps (DDPM ancestral sampling, {data['run']}{labels})")
    fig.tight_layout()
    save(fig, path)


# -- 27: the Stable Diffusion API ------------------------------------------------------------------------------
def pipeline_call(workdir: str, kwargs: Mapping) -> str:
    """The Python that makes chart 27's images with `kwargs` (the same dict the chart calls the pipeline with)."""
    pad = " " * len("images = {g: pipe(")
    args = f",\n{pad}".join(f"{k}={v!r}" for k, v in kwargs.items())
    return (
        f"from jgen.pipeline import Pipeline\n\npipe = Pipeline.from_workdir({workdir!r})\n"
        f"images = {{g: pipe({args},\n{pad}guidance=g)\n          for g in GUIDANCE_SCALES}}"
    )


def guidance_data(
    runs: Mapping[str, str],
    run: str = "ldm_mnist",
    labels: Sequence[int] = tuple(range(10)),
    scales: Sequence[float] = (0.0, 1.0, 2.0, 4.0, 8.0),
    sampler: str = "dpm_solver",
    steps: int = 20,
    seed: int = 0,
) -> dict:
    """Chart 27's data: {"code": the Pipeline call as text, "scales", "labels", "images": [S, L, H, W, C] in [0, 1]},
    one `Pipeline` call per guidance scale with one sample per label, all from the same seed (0: unconditional,
    1: conditional, > 1: guided)."""
    pipe = Pipeline.from_workdir(runs[run])
    if pipe.num_classes == 0:
        raise MissingData(f"{runs[run]} is an unconditional model: guidance needs a class-conditional run")
    kwargs = {"labels": list(labels), "num_samples_per_label": 1, "sampler": sampler, "steps": steps, "seed": seed}
    images = np.stack([pipe(**kwargs, guidance=float(g)) for g in scales]).astype(np.float32) / 255.0
    return {
        "run": run,
        "method": pipe.method.name,
        "code": pipeline_call(runs[run], kwargs),
        "scales": list(scales),
        "labels": list(labels),
        "images": images,
    }


def draw_guidance(data: dict, path: str) -> None:
    s, n = data["images"].shape[:2]
    code = f"GUIDANCE_SCALES = {data['scales']}\n{data['code']}"
    code_h = 0.16 * (code.count("\n") + 1) + 0.3
    plt, fig = new_figure(0.75 * n + 1.5, 0.8 * s + code_h + 1.0)
    gs = fig.add_gridspec(2, 1, height_ratios=[code_h, 0.8 * s], hspace=0.05)
    ax = fig.add_subplot(gs[0])
    ax.axis("off")
    ax.text(
        0.0,
        0.5,
        code,
        family="monospace",
        fontsize=8,
        va="center",
        ha="left",
        transform=ax.transAxes,
        bbox={"facecolor": "0.95", "edgecolor": "0.7", "boxstyle": "round"},
    )
    ax = fig.add_subplot(gs[1])
    show_images(ax, data["images"].reshape(-1, *data["images"].shape[2:]), ncol=n)
    h = data["images"].shape[2] + 1
    ax.set_yticks([(i + 0.5) * h for i in range(s)], [f"guidance {g:g}" for g in data["scales"]], fontsize=8)
    ax.set_xticks([(j + 0.5) * h for j in range(n)], [str(c) for c in data["labels"]], fontsize=8)
    ax.tick_params(length=0)
    ax.set_xlabel("class label")
    fig.suptitle(
        f"27 The Stable Diffusion API ({data['run']}, {data['method']}): 0 unconditional, 1 conditional, > 1 guided",
        fontsize=10,
    )
    save(fig, path)
