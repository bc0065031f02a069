"""GAN experiments with known densities, run from a config file; writes JSON numbers and a PNG figure.

    python experiments/gan_toys.py --config experiments/configs/gan_dstar.py --workdir runs/gan_dstar
    python experiments/gan_toys.py --config experiments/configs/gan_ring.py --workdir runs/gan_ring

`config.experiment` picks the experiment: "dstar" (the learned discriminator against D* = p_data / (p_data + p_g):
dstar.json, dstar_curves.json with the curves and both discriminators' losses, dstar.png) or "ring" (8 Gaussians on
a circle: samples from the same latents over training, modes covered and the share of high-quality samples per
snapshot in ring.json, ring.png; ring_snapshots.npz adds the discriminator and the generator's gradient field on a
grid at every snapshot). `python -m course` draws charts 25 and 20 from these files. The computations are
jgen.gan.toys; this script only validates the config, runs them and draws.
"""

from __future__ import annotations

import json
import os
import sys

import jax
import numpy as np
from absl import app, flags
from ml_collections import config_flags

from jgen.config import ConfigError, fail
from jgen.gan import toys
from jgen.viz import pyplot

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "experiments/configs/gan_dstar.py or gan_ring.py", lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for the JSON and PNG outputs.")


def run_dstar(config, workdir: str) -> dict:
    """Learned D against D* for p_g != p_data and p_g = p_data: dstar.json and dstar.png."""
    out = toys.dstar_experiment(config.toy, jax.random.PRNGKey(config.seed))
    curves = out.pop("curves")
    with open(os.path.join(workdir, "dstar.json"), "w") as f:
        json.dump(out, f, indent=2)
    with open(os.path.join(workdir, "dstar_curves.json"), "w") as f:  # what chart 25 of `python -m course` draws
        json.dump({k: np.asarray(v, np.float64).tolist() for k, v in curves.items()}, f)
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    x = curves["x"]
    for ax, d, ref, title, pg in (
        (axes[0], curves["d"], curves["d_star"], "p_g != p_data", curves["p_g"]),
        (axes[1], curves["d_equal"], np.full_like(x, 0.5), "p_g = p_data", curves["p_data"]),
    ):
        ax.plot(x, curves["p_data"], color="tab:blue", alpha=0.4, label="p_data")
        ax.plot(x, pg, color="tab:orange", alpha=0.4, label="p_g")
        ax.plot(x, ref, "k--", label="D* = p_data / (p_data + p_g)")
        ax.plot(x, d, color="tab:red", label="learned D")
        ax.set_title(title)
        ax.set_ylim(-0.02, 1.02)
    axes[0].legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(workdir, "dstar.png"), dpi=110)
    plt.close(fig)
    return out


def run_ring(config, workdir: str) -> dict:
    """The 8-Gaussian ring: ring.json (coverage and losses per snapshot) and ring.png (samples over training)."""
    cfg = config.toy
    out = toys.ring_experiment(cfg, jax.random.PRNGKey(config.seed))
    rows = out["rows"]
    with open(os.path.join(workdir, "ring.json"), "w") as f:
        json.dump({"loss": cfg.loss, "num_modes": cfg.num_modes, "std": cfg.std, "rows": rows}, f, indent=2)
    np.savez_compressed(
        os.path.join(workdir, "ring_snapshots.npz"),  # what chart 20 of `python -m course` draws
        steps=np.array([r["step"] for r in rows]),
        samples=np.stack(out["snapshots"]),
        means=out["means"],
        grid_axis=out["grid_axis"],
        d_grid=np.stack(out["d_grid"]),
        push=np.stack(out["push"]),
    )
    for r in rows:
        print(
            f"step {r['step']:6d}  modes covered {r['modes_covered']}/{cfg.num_modes}  "
            f"high quality {r['high_quality']:.3f}  d_loss {r['d_loss']:.3f}  g_loss {r['g_loss']:.3f}",
            flush=True,
        )
    plt = pyplot()
    shown = np.unique(np.linspace(0, len(rows) - 1, min(6, len(rows))).round().astype(int))
    fig, axes = plt.subplots(1, len(shown), figsize=(3 * len(shown), 3.2), squeeze=False)
    lim = cfg.radius * 1.6
    for ax, i in zip(axes[0], shown):
        s = out["snapshots"][i]
        ax.scatter(s[:, 0], s[:, 1], s=2, alpha=0.4, color="tab:red")
        ax.scatter(out["means"][:, 0], out["means"][:, 1], s=30, marker="x", color="k")
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        r = rows[i]
        ax.set_title(
            f"step {r['step']}: {r['modes_covered']}/{cfg.num_modes} modes\n"
            f"{100 * r['high_quality']:.0f}% high quality",
            fontsize=9,
        )
    fig.suptitle(f"8-Gaussian ring, loss = {cfg.loss}", fontsize=10)
    fig.tight_layout()
    fig.savefig(os.path.join(workdir, "ring.png"), dpi=110)
    plt.close(fig)
    final = rows[-1]
    return {
        "modes_covered": final["modes_covered"],
        "high_quality": final["high_quality"],
        "d_loss": final["d_loss"],
        "g_loss": final["g_loss"],
    }


EXPERIMENTS = {"dstar": (toys.check_dstar_config, run_dstar), "ring": (toys.check_ring_config, run_ring)}


def run(config, workdir: str) -> dict:
    """Validate `config` (before any compute), then run its experiment into `workdir`."""
    if config.get("experiment") not in EXPERIMENTS:
        fail("experiment", config.get("experiment"), f"choose one of {sorted(EXPERIMENTS)}")
    check, experiment = EXPERIMENTS[config.experiment]
    check(config.toy)
    os.makedirs(workdir, exist_ok=True)
    return experiment(config, workdir)


def main(argv) -> None:
    del argv
    if FLAGS.config is None or FLAGS.workdir is None:
        raise app.UsageError("needs --config <file> and --workdir <dir>")
    try:
        print(json.dumps(run(FLAGS.config, FLAGS.workdir), indent=2, default=float))
    except ConfigError as e:
        print(f"gan_toys: error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    app.run(main)
