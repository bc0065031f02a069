"""Diffusion samplers: accuracy against exact scores of a Gaussian mixture, and speed on a trained model.

    python benchmarks/diffusion_samplers.py                                   # mixture table, default spacings
    python benchmarks/diffusion_samplers.py --spacings all --nfe 10,20 --out bench   # + every spacing, + PNG
    python benchmarks/diffusion_samplers.py --skip_mixture --workdir runs/ddpm_mnist   # timings on a model

Part 1: the 1-D mixture 0.3 N(-2, 0.1^2) + 0.7 N(1.5, 0.3^2) (mode widths 3x apart, the narrow one light) or,
with --data 2d, 0.3 N((1, 0), 0.05^2 I) + 0.7 N((-1, 0.5), [[0.25, 0.05], [0.05, 0.16]]) (widths 8-10x apart).
The samplers get the exact x0 prediction E[x0 | x_t] (jgen.diffusion.analytic), on `--schedules rectified_flow`
the exact velocity (x_t - E[x0 | x_t]) / t. For every schedule, sampler,
spacing and NFE the table gives the W1 distance to as many exact draws (sliced W1 in 2-D) next to the Monte
Carlo floor (W1 between two exact samples), the largest mode-weight error and the relative std errors of the
narrow and the broad mode (per axis, the worst). Printed as Markdown; with --out also written there as
mixture.md with mixture.png (error against NFE, log-log, one line per sampler at its default spacing: the ODE path
error in 1-D, W1 in 2-D).
Part 2 (--workdir): wall time per image for each sampler at 20 NFE on a trained run's EMA parameters, against
20 calls of the bare network on the same batch (the difference is the sampler's own overhead).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jgen.diffusion import SAMPLERS, SamplingSpec, check_fits, make_denoiser, sample  # noqa: E402
from jgen.diffusion.analytic import (
    mixture_draw,
    mixture_flow_map_1d,
    mixture_model_fn,
    mode_stats,  # noqa: E402
    wasserstein1,
)
from jgen.diffusion.sampler_core import sampler_names  # noqa: E402
from jgen.diffusion.samplers import Given, steps_for_nfe  # noqa: E402
from jgen.diffusion.schedules import RECTIFIED_FLOW, alpha_sigma, make_schedule, start_std  # noqa: E402
from jgen.diffusion.timegrid import SPACINGS, time_grid  # noqa: E402

MIXTURES = {
    "1d": (np.array([0.3, 0.7]), np.array([[-2.0], [1.5]]), np.array([[[0.01]], [[0.09]]])),
    "2d": (
        np.array([0.3, 0.7]),
        np.array([[1.0, 0.0], [-1.0, 0.5]]),
        np.array([0.0025 * np.eye(2), [[0.25, 0.05], [0.05, 0.16]]]),
    ),
}
STOCHASTIC = ("ddpm", "dpm_solver_sde")
FLOOR_PAIRS = 8


def mixture_errors(x: np.ndarray, exact: np.ndarray, data) -> dict[str, float]:
    """W1 to the exact draws, worst mode-weight error, worst relative std error of the narrow and broad modes."""
    weights, means, covs = data
    frac, std = mode_stats(x, weights, means, covs)
    true_std = np.sqrt(np.stack([np.diag(c) for c in covs]))  # [K, d]
    rel = np.abs(std / true_std - 1.0).max(axis=1)  # [K]
    narrow = int(np.argmin(true_std.max(axis=1)))
    return {
        "w1": wasserstein1(x, exact),
        "weight_err": float(np.abs(frac - weights).max()),
        "narrow_std_err": float(rel[narrow]),
        "broad_std_err": float(rel[1 - narrow]),
    }


def mixture_rows(data_name: str, samplers, spacings: str, nfes, schedules, num: int, seed: int):
    """Yield one dict per (schedule, sampler, spacing, NFE) measurement, with the Monte Carlo floor."""
    data = MIXTURES[data_name]
    weights, means, covs = data
    exact = mixture_draw(np.random.default_rng(seed), num, *data)
    floor = float(
        np.mean(
            [
                wasserstein1(
                    mixture_draw(np.random.default_rng(seed + 1 + 2 * i), num, *data),
                    mixture_draw(np.random.default_rng(seed + 2 + 2 * i), num, *data),
                )
                for i in range(FLOOR_PAIRS)
            ]
        )
    )
    d = means.shape[1]
    z = jax.random.normal(jax.random.PRNGKey(seed), (num, d), jnp.float32)
    for sched_name in schedules:
        s = make_schedule(sched_name)
        param = "flow" if s.path == RECTIFIED_FLOW else "x0"
        fn = mixture_model_fn(s, jnp.asarray(weights), jnp.asarray(means), jnp.asarray(covs), param)
        for name in samplers:
            for spacing in SPACINGS if spacings == "all" else (SAMPLERS[name].spacing,):
                if spacing == "trailing" and name not in ("ddim", "ddpm"):
                    continue
                for nfe in nfes:
                    steps = steps_for_nfe(name, nfe)
                    spec = SamplingSpec(sampler=name, steps=steps, spacing=spacing)
                    try:
                        check_fits(spec, s)
                    except ValueError:
                        continue  # EDM's samplers cannot start at t = 1 of the rectified-flow path
                    x_T = start_std(s, time_grid(s, steps, spacing)[0]) * z  # what sample() would draw
                    f = jax.jit(
                        lambda k, z, fn=fn, s=s, param=param, spec=spec: sample(
                            make_denoiser(fn, s, param), s, k, z.shape, spec, Given(noise=z)
                        )
                    )
                    t0 = time.perf_counter()
                    out = f(jax.random.PRNGKey(seed + 1), x_T)
                    x = np.asarray(jax.block_until_ready(out.samples), np.float64)
                    secs = time.perf_counter() - t0
                    errs = (
                        mixture_errors(x, exact, data)
                        if np.all(np.isfinite(x))
                        else {"w1": np.inf, "weight_err": np.inf, "narrow_std_err": np.inf, "broad_std_err": np.inf}
                    )
                    errs["path_err"] = np.nan  # mean |x - exact ODE map(z)|: deterministic samplers in 1-D
                    if d == 1 and name not in STOCHASTIC:
                        a0, s0 = alpha_sigma(s, time_grid(s, steps, spacing)[0])
                        ref = mixture_flow_map_1d(
                            np.asarray(x_T[:, 0]), float(a0), float(s0), weights, means, np.sqrt(covs[:, 0, 0])
                        )
                        errs["path_err"] = float(np.mean(np.abs(x[:, 0] - ref)))
                    yield {
                        "schedule": sched_name,
                        "sampler": name,
                        "spacing": spacing,
                        "nfe": out.nfe,
                        "floor": floor,
                        "seconds": secs,
                        **errs,
                    }


def markdown(rows) -> str:
    head = (
        "| schedule | sampler | spacing | NFE | W1 | W1 / floor | mode-weight err | narrow-std err | "
        "broad-std err | ODE path err |\n|---|---|---|---|---|---|---|---|---|---|\n"
    )
    return head + "".join(
        f"| {r['schedule']} | {r['sampler']} | {r['spacing']} | {r['nfe']} | {r['w1']:.4f} | "
        f"{r['w1'] / r['floor']:.1f} | {r['weight_err']:.3f} | {100 * r['narrow_std_err']:.1f}% | "
        f"{100 * r['broad_std_err']:.1f}% | {'' if np.isnan(r['path_err']) else format(r['path_err'], '.2e')} |\n"
        for r in rows
    )


def plot(rows, path: str) -> None:
    from jgen.viz import pyplot

    plt = pyplot()
    schedules = sorted({r["schedule"] for r in rows})
    paths = any(np.isfinite(r["path_err"]) for r in rows)  # 1-D: the discretisation error alone
    key, label = ("path_err", "mean |x - exact ODE map(z)|") if paths else ("w1", "W1 to exact samples")
    fig, axes = plt.subplots(1, len(schedules), figsize=(5.5 * len(schedules), 4.2), squeeze=False)
    for ax, sched in zip(axes[0], schedules):
        for name in sorted({r["sampler"] for r in rows}):
            pts = sorted(
                (r["nfe"], r[key])
                for r in rows
                if r["schedule"] == sched
                and r["sampler"] == name
                and r["spacing"] == SAMPLERS[name].spacing
                and np.isfinite(r[key])
            )
            if pts:
                ax.loglog(*zip(*pts), marker="o", label=name)
        if key == "w1":
            floor = next(r["floor"] for r in rows if r["schedule"] == sched)
            ax.axhline(floor, color="gray", ls="--", lw=1, label="Monte Carlo floor")
        ax.set(title=f"{sched} schedule", xlabel="NFE", ylabel=label)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def model_timings(
    workdir: str, guidance: float | None, seed: int, num: int = 64, repeats: int = 1, samplers: list[str] | None = None
) -> None:
    """Wall time per image of each sampler at 20 NFE against 20 bare network calls, on a trained run (each the
    median of `repeats` timed calls after a compiling one)."""
    from jgen.run import load_run
    from jgen.sampling import generate

    run = load_run(workdir)
    config, method, state, info = run.config, run.method, run.state, run.method.info
    labels = np.arange(num) % method.num_classes if method.num_classes else None
    g = config.method.guidance if guidance is None else guidance
    print(
        f"\nrun {workdir}: step {int(state.step)}, image {info.shape}, guidance {g}, {num} images per batch, "
        f"{jax.device_count()} {jax.devices()[0].platform} device(s) ({jax.devices()[0].device_kind}), "
        f"median of {repeats}"
    )
    net = jax.jit(lambda p, x, t, lab: method.model_fn(p)(x, t, lab))
    x = jax.random.normal(jax.random.PRNGKey(seed), (num, *info.shape))
    t = jnp.full((num,), 0.5)
    lab = None if labels is None else jnp.asarray(labels, jnp.int32)
    jax.block_until_ready(net(state.ema_params, x, t, lab))
    bares = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(20):
            out = net(state.ema_params, x, t, lab)
        jax.block_until_ready(out)
        bares.append((time.perf_counter() - t0) / num)
    bare = float(np.median(bares))
    print(f"20 bare network calls: {1000 * bare:.3f} ms per image\n")
    print("| sampler | NFE | ms per image | overhead vs 20 calls |\n|---|---|---|---|")
    for name in samplers or sampler_names():
        steps = steps_for_nfe(name, 20)
        key = jax.random.PRNGKey(seed)
        per = []
        for _ in range(repeats):
            spec = method.sampling_spec(sampler=name, steps=steps, guidance=g)
            _, info = generate(
                method,
                state.ema_params,
                state.model_state,
                num,
                spec,
                key=key,
                labels=labels,
                batch_size=num,
                timed=True,
            )  # compile excluded
            per.append(info.seconds / num)
        nfe = info.nfe_per_image
        p = float(np.median(per))
        print(f"| {name} | {nfe} | {1000 * p:.3f} | {100 * (p / (bare * nfe / 20) - 1):+.0f}% |", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="1d", choices=sorted(MIXTURES))
    p.add_argument(
        "--samplers",
        default=None,
        help="comma-separated sampler names, or 'all' (default: the ODE samplers for the mixture table, "
        "every sampler for the timings)",
    )
    p.add_argument(
        "--spacings", default="default", choices=("default", "all"), help="each sampler's own spacing, or every spacing"
    )
    p.add_argument("--nfe", default="5,10,15,20,50", help="comma-separated network-evaluation budgets")
    p.add_argument("--schedules", default="linear,cosine")
    p.add_argument("--num", type=int, default=20000, help="samples per measurement")
    p.add_argument(
        "--seed",
        type=int,
        default=5,
        help="noise key (5: a typical draw for the 1-D mixture; see tests/diffusion/test_diffusion_mixture.py)",
    )
    p.add_argument("--out", default=None, help="directory for mixture.md and mixture.png")
    p.add_argument("--workdir", help="a trained diffusion run directory (for the timing table)")
    p.add_argument("--guidance", type=float, default=None, help="guidance scale for the timings (default: config)")
    p.add_argument("--skip_mixture", action="store_true")
    p.add_argument("--timing_batch", type=int, default=64, help="images per batch for the timings")
    p.add_argument("--repeats", type=int, default=1, help="timed calls per sampler (the median is shown)")
    args = p.parse_args()
    samplers = (
        None if args.samplers is None else sampler_names() if args.samplers == "all" else args.samplers.split(",")
    )
    if not args.skip_mixture:
        rows = []
        ode = [n for n in sampler_names() if n not in STOCHASTIC]
        for r in mixture_rows(
            args.data,
            samplers or ode,
            args.spacings,
            [int(v) for v in args.nfe.split(",")],
            args.schedules.split(","),
            args.num,
            args.seed,
        ):
            rows.append(r)
            print(
                f"{r['schedule']:7} {r['sampler']:14} {r['spacing']:15} NFE {r['nfe']:3d} W1 {r['w1']:.4f} "
                f"(floor {r['floor']:.4f}) weight {r['weight_err']:.3f} narrow {100 * r['narrow_std_err']:.1f}% "
                f"broad {100 * r['broad_std_err']:.1f}% path {r['path_err']:.2e}  {r['seconds']:.1f}s",
                flush=True,
            )
        table = markdown(rows)
        print(f"\n{args.data} mixture, {args.num} samples, Monte Carlo floor W1 = {rows[0]['floor']:.4f}\n\n{table}")
        if args.out:
            os.makedirs(args.out, exist_ok=True)
            with open(os.path.join(args.out, "mixture.md"), "w") as f:
                f.write(table)
            plot(rows, os.path.join(args.out, "mixture.png"))
    if args.workdir:
        model_timings(args.workdir, args.guidance, args.seed, args.timing_batch, args.repeats, samplers)


if __name__ == "__main__":
    main()
