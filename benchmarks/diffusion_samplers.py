"""Diffusion samplers: accuracy against an exact denoiser, and speed on a trained model.

    python benchmarks/diffusion_samplers.py                        # analytic table (about a minute on CPU)
    python benchmarks/diffusion_samplers.py --workdir runs/ddpm_mnist [--guidance 2.0] [--out runs/ddpm_mnist/bench]

Part 1 (always): 3-D Gaussian data N(m, S) with the exact denoiser E[x0 | x_t]. For each schedule, sampler and
step count it prints the mean error |mean - m| and covariance error ||cov - S||_F / ||S||_F of --num samples,
and for the deterministic samplers the exact errors of the affine map x_T -> x_0 they implement on Gaussian
data (no Monte Carlo noise). The Monte Carlo floor (the same statistics of exact draws) is printed first.
Part 2 (--workdir): wall time to draw 64 images with DDPM-1000, DDIM-50, DPM-Solver++-20 and Heun-18 on the
run's EMA parameters (compile time reported apart), and a PNG grid per sampler with --out.
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

from jgen.diffusion.analytic import mixture_model_fn  # noqa: E402
from jgen.diffusion.samplers import sample  # noqa: E402
from jgen.diffusion.schedules import make_schedule  # noqa: E402

MEAN = np.array([0.5, -0.3, 0.1])
_A = np.array([[0.6, 0.2, 0.0], [0.0, 0.4, 0.1], [0.1, 0.0, 0.3]])
COV = _A @ _A.T
SAMPLERS = ("ddpm", "ddim", "dpm_solver", "heun")


def _errors(x: np.ndarray) -> tuple[float, float]:
    return (float(np.linalg.norm(x.mean(0) - MEAN)),
            float(np.linalg.norm(np.cov(x.T) - COV) / np.linalg.norm(COV)))


def analytic_table(num: int, seed: int) -> None:
    exact = np.random.default_rng(seed).multivariate_normal(MEAN, COV, size=num)
    me, ce = _errors(exact)
    print(f"data: 3-D Gaussian, {num} samples; Monte Carlo floor (exact draws): mean err {me:.4f}, rel cov err {ce:.4f}")
    print(f"{'schedule':8} {'sampler':10} {'steps':>5} {'NFE':>4} {'mean err':>9} {'rel cov err':>11} "
          f"{'exact mean':>10} {'exact cov':>9} {'run s':>6}")
    for sched_name in ("linear", "cosine"):
        s = make_schedule(sched_name)
        fn = mixture_model_fn(s, jnp.ones(1), jnp.asarray(MEAN)[None], jnp.asarray(COV)[None])
        for name in SAMPLERS:
            for steps in (10, 20, 50):
                f = jax.jit(lambda k, z, name=name, steps=steps: sample(
                    fn, s, k, z.shape, sampler=name, steps=steps, parameterization="x0", noise=z))
                z = jax.random.normal(jax.random.PRNGKey(seed), (num, 3))
                out = f(jax.random.PRNGKey(seed + 1), z)  # compile
                t0 = time.perf_counter()
                out = f(jax.random.PRNGKey(seed + 1), z)
                x = np.asarray(jax.block_until_ready(out.samples))
                secs = time.perf_counter() - t0
                me, ce = _errors(x)
                ex = "" if name == "ddpm" else "{:>10.4f} {:>9.4f}".format(*_affine_errors(f, seed))
                print(f"{sched_name:8} {name:10} {steps:>5} {out.nfe:>4} {me:>9.4f} {ce:>11.4f} {ex or ' ' * 20:>20} "
                      f"{secs:>6.2f}")


def _affine_errors(f, seed: int) -> tuple[float, float]:
    basis = jnp.concatenate([jnp.zeros((1, 3)), jnp.eye(3)])
    out = np.asarray(f(jax.random.PRNGKey(seed), basis).samples, np.float64)
    b, a = out[0], (out[1:] - out[0]).T
    return float(np.linalg.norm(b - MEAN)), float(np.linalg.norm(a @ a.T - COV) / np.linalg.norm(COV))


def model_timings(workdir: str, guidance: float | None, out_dir: str | None, seed: int) -> None:
    import jgen.methods.diffusion  # noqa: F401  (registers the method)
    from jgen.diffusion import sample_images
    from jgen.train.checkpoint import load_run
    from jgen.viz import image_grid, save_png

    config, method, state, info = load_run(workdir)
    labels = np.arange(64) % method.num_classes if method.num_classes else None
    g = config.method.guidance if guidance is None else guidance
    print(f"\nrun {workdir}: step {int(state.step)}, image {info.shape}, guidance {g}, 64 samples, "
          f"{jax.device_count()} {jax.devices()[0].platform} device(s)")
    print(f"{'sampler':14} {'NFE':>5} {'compile s':>9} {'sample s':>9} {'ms/NFE':>7}")
    for name, steps in (("ddpm", 1000), ("ddim", 50), ("dpm_solver", 20), ("heun", 18)):
        key = jax.random.PRNGKey(seed)
        t0 = time.perf_counter()
        images, nfe = sample_images(method, state.ema_params, state.model_state, key, 64, labels, name, steps, g)
        jax.block_until_ready(images)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        images, nfe = sample_images(method, state.ema_params, state.model_state, key, 64, labels, name, steps, g)
        jax.block_until_ready(images)
        secs = time.perf_counter() - t0
        print(f"{name + '-' + str(steps):14} {nfe:>5} {first - secs:>9.1f} {secs:>9.2f} {1000 * secs / nfe:>7.1f}")
        if out_dir:
            ncol = method.num_classes or 8
            save_png(os.path.join(out_dir, f"{name}_{steps}.png"), image_grid(np.asarray(images), ncol=ncol))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", help="a trained diffusion run directory (for the timing table)")
    p.add_argument("--guidance", type=float, default=None, help="guidance scale for the timings (default: config)")
    p.add_argument("--out", default=None, help="directory for one PNG grid per sampler")
    p.add_argument("--num", type=int, default=20000, help="samples per analytic measurement")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--skip_analytic", action="store_true")
    args = p.parse_args()
    if not args.skip_analytic:
        analytic_table(args.num, args.seed)
    if args.workdir:
        model_timings(args.workdir, args.guidance, args.out, args.seed)


if __name__ == "__main__":
    main()
