"""The autoencoder part of the course: charts 12 (autoencoder successes), 13 (the generation problem), 14 (the
averaging problem, from the data alone) and 15 (the VAE framework, with a 2-D latent).

The autoencoder run is the course's model (experiments/configs/ae_mnist.py); its own `generate` decodes draws from
the Gaussian fitted to its training codes (`model_state["prior"]`), so "decode a Gaussian-fitted latent" is
`jgen.sampling.generate` on it. Decoding other latents (a standard normal) and encoding test images go through the
method's public `encode` / `decode` / `reconstruct`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from course.common import MissingData, draw_table, new_figure, pick_test_images, save, show_images
from jgen.config import base_config
from jgen.data import get_source
from jgen.run import load_run
from jgen.sampling import generate
from jgen.train.writer import read_metrics

SLIDE_MSE = (0.45, 0.03)  # the course slide's claim: "MSE drops from 0.45 to 0.03"


# -- 12: autoencoder successes -------------------------------------------------------------------------------------
def ae_success_data(runs: Mapping[str, str], run: str = "ae_mnist", num: int = 10) -> dict:
    """Chart 12's data from `runs[run]`:

    images, reconstructions [num, H, W, C]: test digits (one per class where it can) and the trained model's output;
    curves: the run's logged MSE under each convention, {"train"|"eval": {"epoch" [R], "per_pixel" [R] (as logged:
      the mean over pixels, then over images), "per_image_sum" [R] (x D pixels), "rmse" [R] (its square root)}};
    slide: for each convention and split, (first, last) values beside SLIDE_MSE, and which conventions give both
      to within 25%.
    """
    r = load_run(runs[run])
    images, _ = pick_test_images(r, num, one_per_class=True)
    recon = np.asarray(r.method.reconstruct(r.state.ema_params, jnp.asarray(images)))
    dims = int(np.prod(r.info.shape))
    steps_per_epoch = r.info.num_train / r.config.data.batch_size
    curves = {}
    for split in ("train", "eval"):
        rows = [row for row in read_metrics(runs[run], split) if "mse" in row]
        mse = np.array([row["mse"] for row in rows], np.float64)
        curves[split] = {
            "epoch": np.array([row["step"] for row in rows]) / steps_per_epoch,
            "per_pixel": mse,
            "per_image_sum": mse * dims,
            "rmse": np.sqrt(mse),
        }
    slide, matches = {}, []
    for split, c in curves.items():
        for conv in ("per_pixel", "per_image_sum", "rmse"):
            if len(c[conv]):
                first, last = float(c[conv][0]), float(c[conv][-1])
                slide[(split, conv)] = (first, last)
                if all(abs(v / s - 1) <= 0.25 for v, s in zip((first, last), SLIDE_MSE)):
                    matches.append((split, conv))
    return {
        "run": run,
        "images": images,
        "reconstructions": recon,
        "curves": curves,
        "slide": slide,
        "matches": matches,
        "dims": dims,
    }


def draw_ae_success(data: dict, path: str) -> None:
    plt, fig = new_figure(13, 5.2)
    gs = fig.add_gridspec(2, 3, width_ratios=[1.4, 1, 1], height_ratios=[1, 1])
    show_images(fig.add_subplot(gs[0, 0]), data["images"], ncol=len(data["images"]), title="test digits")
    show_images(
        fig.add_subplot(gs[1, 0]),
        data["reconstructions"],
        ncol=len(data["images"]),
        title="the autoencoder's reconstructions",
    )
    labels = {
        "per_pixel": "MSE per pixel (logged)",
        "per_image_sum": f"sum over {data['dims']} pixels / image",
        "rmse": "RMSE = sqrt(MSE per pixel)",
    }
    ax_pp, ax_sum = fig.add_subplot(gs[:, 1]), fig.add_subplot(gs[:, 2])
    for split, style in (("train", "-"), ("eval", "o--")):
        c = data["curves"][split]
        for conv in ("per_pixel", "rmse"):
            ax_pp.plot(c["epoch"], c[conv], style, ms=3, label=f"{labels[conv]}, {split}")
        ax_sum.plot(c["epoch"], c["per_image_sum"], style, ms=3, label=f"{split}")
    for ax in (ax_pp, ax_sum):
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
    for v in SLIDE_MSE:
        ax_pp.axhline(v, color="grey", ls=":", lw=0.9)
    ax_pp.legend(fontsize=7)
    ax_pp.set_title(f"MSE conventions (dotted: the slide's {SLIDE_MSE[0]} and {SLIDE_MSE[1]})", fontsize=9)
    ax_sum.set_title(f"{labels['per_image_sum']}", fontsize=9)
    ax_sum.legend(fontsize=7)
    found = ", ".join(f"{conv} ({split})" for split, conv in data["matches"]) or "none of them"
    ax_pp.text(
        0.02,
        0.02,
        "first -> last logged\n"
        + "\n".join(f"{conv}, {split}: {a:.3g} -> {b:.3g}" for (split, conv), (a, b) in data["slide"].items()),
        transform=ax_pp.transAxes,
        fontsize=6.5,
        va="bottom",
        family="monospace",
    )
    fig.suptitle(
        f"12 Autoencoder successes ({data['run']}). The slide's {SLIDE_MSE[0]} -> {SLIDE_MSE[1]} "
        f"is reproduced (within 25%) by: {found}",
        fontsize=10,
    )
    fig.tight_layout()
    save(fig, path)


# -- 13: the generation problem ------------------------------------------------------------------------------------
def _pca(x: np.ndarray, k: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """(mean [D], the top-k principal directions [k, D]) of the rows of x."""
    mean = x.mean(axis=0)
    return mean, np.linalg.svd(x - mean, full_matrices=False)[2][:k]


def _nearest(a: np.ndarray, b: np.ndarray, exclude_self: bool = False) -> np.ndarray:
    """Euclidean distance from each row of a [N, D] to its nearest row of b [M, D] (itself excluded if a is b)."""
    d2 = np.sum(a**2, 1)[:, None] + np.sum(b**2, 1)[None] - 2 * a @ b.T
    if exclude_self:
        np.fill_diagonal(d2, np.inf)
    return np.sqrt(np.maximum(d2.min(axis=1), 0.0))


def generation_problem_data(
    runs: Mapping[str, str],
    ae: str = "ae_mnist",
    vae: str = "vae_mnist",
    num: int = 16,
    num_codes: int = 1000,
    seed: int = 0,
) -> dict:
    """Chart 13's data:

    fitted [num, H, W, C]: the autoencoder's own samples, `generate(..., seed)`: decoded draws from the Gaussian
    fitted to its training codes; normal [num, H, W, C]: decoded standard-normal latents; vae [num, H, W, C]: VAE
    prior samples (None without a `vae` run);
    plane: the codes of up to `num_codes` test images ("codes" [N, 2], "labels" [N]) and as many latents of each kind
    ("fitted" [N, 2], "normal" [N, 2]) on the test codes' two principal directions; explained: the share of the
    codes' variance that plane holds;
    nearest: the distance (in the full code space) from each test code to the nearest other test code ("test" [N])
    and from each fitted / standard-normal latent to the nearest test code ("fitted", "normal" [N]).
    """
    r = load_run(runs[ae])
    m, params, state = r.method, r.state.ema_params, r.state.model_state
    fitted, _ = generate(m, params, state, num, seed=seed)
    dim = r.config.model.latent_dim
    normal = np.asarray(m.decode(params, jax.random.normal(jax.random.PRNGKey(seed), (num, dim))))
    images, labels = pick_test_images(r, num_codes)
    codes = np.asarray(m.encode(params, jnp.asarray(images)), np.float64)
    n = len(codes)
    z_fit = np.asarray(m.sample_codes(state, jax.random.PRNGKey(seed + 1), n), np.float64)
    z_norm = np.asarray(jax.random.normal(jax.random.PRNGKey(seed + 2), (n, dim)), np.float64)
    mean, pcs = _pca(codes)
    plane = {
        "codes": (codes - mean) @ pcs.T,
        "labels": labels,
        "fitted": (z_fit - mean) @ pcs.T,
        "normal": (z_norm - mean) @ pcs.T,
    }
    out = {
        "ae": ae,
        "fitted": fitted,
        "normal": normal,
        "plane": plane,
        "explained": float(np.sum(np.var(plane["codes"], axis=0)) / np.sum(np.var(codes, axis=0))),
        "nearest": {
            "test": _nearest(codes, codes, exclude_self=True),
            "fitted": _nearest(z_fit, codes),
            "normal": _nearest(z_norm, codes),
        },
        "vae": None,
    }
    if vae in runs:
        v = load_run(runs[vae])
        out["vae"] = generate(v.method, v.state.ema_params, v.state.model_state, num, seed=seed)[0]
    return out


def draw_generation_problem(data: dict, path: str) -> None:
    panels = [
        ("decoded draws from the Gaussian\nfitted to the AE's codes", data["fitted"]),
        ("decoded standard-normal\nlatents N(0, I)", data["normal"]),
    ]
    if data["vae"] is not None:
        panels.append(("VAE: decoded prior samples\n(a model trained for N(0, I))", data["vae"]))
    plt, fig = new_figure(3.3 * len(panels) + 9, 4.6)
    gs = fig.add_gridspec(1, len(panels) + 2, width_ratios=[1] * len(panels) + [1.5, 1.3])
    for j, (title, images) in enumerate(panels):
        show_images(fig.add_subplot(gs[0, j]), images, ncol=int(math.ceil(math.sqrt(len(images)))), title=title)
    ax = fig.add_subplot(gs[0, -2])
    p = data["plane"]
    ax.scatter(p["normal"][:, 0], p["normal"][:, 1], s=3, color="tab:red", alpha=0.4, label="N(0, I) latents")
    ax.scatter(p["fitted"][:, 0], p["fitted"][:, 1], s=3, color="0.5", alpha=0.5, label="fitted-Gaussian latents")
    sc = ax.scatter(p["codes"][:, 0], p["codes"][:, 1], c=p["labels"], cmap="tab10", s=4, vmin=-0.5, vmax=9.5)
    ax.legend(fontsize=7, loc="upper right", markerscale=3)
    fig.colorbar(sc, ax=ax, ticks=range(10), label="class of the test digit")
    ax.set_title(f"test-digit codes, first two principal axes\n({data['explained']:.0%} of their variance)", fontsize=9)
    ax = fig.add_subplot(gs[0, -1])
    near = data["nearest"]
    bins = np.linspace(0, max(v.max() for v in near.values()), 40)
    for key, label, color in (
        ("test", "test code -> nearest other test code", "tab:blue"),
        ("fitted", "fitted-Gaussian latent -> nearest code", "0.4"),
        ("normal", "N(0, I) latent -> nearest code", "tab:red"),
    ):
        ax.hist(near[key], bins=bins, alpha=0.6, color=color, label=f"{label}\n(median {np.median(near[key]):.3g})")
    ax.set_xlabel("distance in the code space")
    ax.legend(fontsize=6.5, loc="upper left")
    ax.set_ylim(0, ax.get_ylim()[1] * 1.35)
    ax.set_title("random latents fall where no digit's code is", fontsize=9)
    fig.suptitle(f"13 The generation problem: an autoencoder's latent space has no prior ({data['ae']})")
    fig.tight_layout()
    save(fig, path)


# -- 15: the VAE framework -----------------------------------------------------------------------------------------
def vae_plane_data(
    runs: Mapping[str, str], run: str = "vae_2d_mnist", num_codes: int = 1000, grid: int = 15, extent: float = 3.0
) -> dict:
    """Chart 15's data from a VAE with a 2-D latent: codes [N, 2] (posterior means of up to `num_codes` test digits)
    and labels [N]; axis [grid] and decoded [grid, grid, H, W, C]: the decoder's mean image at each point
    (axis[j], axis[grid - 1 - i]) of [-extent, extent]^2 (row i from the top); terms: the ELBO's two terms over
    training, {"train"|"eval": {"step" [R], "elbo" [R], "kl" [R], "reconstruction" [R] = elbo + kl}} (nats/image)."""
    r = load_run(runs[run])
    if tuple(r.method.latent_shape) != (2,):
        raise MissingData(
            f"{runs[run]} has latents of shape {tuple(r.method.latent_shape)}; chart 15 draws a 2-D "
            "latent plane (experiments/configs/vae_2d_mnist.py)"
        )
    params = r.state.ema_params
    images, labels = pick_test_images(r, num_codes)
    codes = np.asarray(r.method.encode(params, jnp.asarray(images))[0])
    axis = np.linspace(-extent, extent, grid)
    z = np.stack(np.meshgrid(axis, axis[::-1], indexing="xy"), -1).reshape(-1, 2)  # top row: largest z_2
    decoded = np.asarray(r.method.decode(params, jnp.asarray(z, jnp.float32))).reshape(grid, grid, *r.info.shape)
    terms = {}
    for split in ("train", "eval"):
        rows = [row for row in read_metrics(runs[run], split) if "elbo" in row and "kl" in row]
        elbo, kl = (np.array([row[k] for row in rows], np.float64) for k in ("elbo", "kl"))
        terms[split] = {
            "step": np.array([row["step"] for row in rows]),
            "elbo": elbo,
            "kl": kl,
            "reconstruction": elbo + kl,
        }
    return {"run": run, "codes": codes, "labels": labels, "axis": axis, "decoded": decoded, "terms": terms}


def draw_vae_plane(data: dict, path: str) -> None:
    plt, fig = new_figure(15, 5.2)
    gs = fig.add_gridspec(1, 3, width_ratios=[1.15, 1, 1])
    ax = fig.add_subplot(gs[0])
    sc = ax.scatter(data["codes"][:, 0], data["codes"][:, 1], c=data["labels"], cmap="tab10", s=5, vmin=-0.5, vmax=9.5)
    a = data["axis"]
    ax.add_patch(plt.Rectangle((a[0], a[0]), a[-1] - a[0], a[-1] - a[0], fill=False, ls="--", color="0.5"))
    fig.colorbar(sc, ax=ax, ticks=range(10), label="class")
    ax.set_aspect("equal")
    ax.set_title("test digits' posterior means (dashed: the decoded square)", fontsize=9)
    g = data["decoded"]
    show_images(
        fig.add_subplot(gs[1]),
        g.reshape(-1, *g.shape[2:]),
        ncol=g.shape[1],
        title=f"decoder over z in [{a[0]:g}, {a[-1]:g}]² (z₂ up)",
    )
    ax = fig.add_subplot(gs[2])
    ax_kl = ax.twinx()
    for split, style in (("train", "-"), ("eval", "o--")):
        t = data["terms"][split]
        if len(t["step"]):
            ax.plot(
                t["step"], t["reconstruction"], style, ms=3, color="tab:blue", label=f"E[log p(x|z)], {split} (left)"
            )
            ax_kl.plot(t["step"], t["kl"], style, ms=3, color="tab:red", label=f"KL(q(z|x) || p(z)), {split} (right)")
    ax.set_xlabel("training step")
    ax.set_ylabel("reconstruction log-likelihood, nats per image", color="tab:blue")
    ax_kl.set_ylabel("KL, nats per image", color="tab:red")
    lines = ax.get_legend_handles_labels(), ax_kl.get_legend_handles_labels()
    ax.legend(lines[0][0] + lines[1][0], lines[0][1] + lines[1][1], fontsize=7, loc="lower right")
    ax.set_title("the ELBO's two terms: ELBO = E[log p(x|z)] - KL", fontsize=9)
    fig.suptitle(f"15 The VAE framework with a 2-D latent ({data['run']})")
    fig.tight_layout()
    save(fig, path)


# -- 14: the averaging problem ---------------------------------------------------------------------------------------
def averaging_data(
    runs: Mapping[str, str] | None = None, num_queries: int = 4, k: int = 8, num_eval: int = 300, data: str = "mnist"
) -> dict:
    """Chart 14's data, from the data alone (no run): predict a test digit's lower half from its upper half.

    The squared-error-optimal prediction is the conditional mean E[lower | upper]; it is estimated here by the mean
    lower half of the k training digits whose upper halves are nearest (k-NN regression), and those k lower halves
    are k sharp, plausible completions. queries: {"digit" [Q, H, W, C], "mean" [Q, H, W, C] (upper half + mean
    completion), "completions" [Q, k, H, W, C]}; scores over `num_eval` test digits: the MSE of the lower half for
    the mean and for one neighbour (the nearest), and the share of mid-grey lower-half pixels (0.1 < v < 0.9: blur)
    for the mean, one neighbour and the real digits."""
    cfg = base_config().data
    cfg.name = data
    train_src, test_src, info = get_source(cfg)
    train = np.stack([train_src[i]["image"] for i in range(len(train_src))])
    idx = np.unique(np.round(np.linspace(0, len(test_src) - 1, min(num_eval, len(test_src)))).astype(int))
    test = np.stack([test_src[int(i)]["image"] for i in idx])
    half = info.shape[0] // 2
    flat_up = lambda x: x[:, :half].reshape(len(x), -1).astype(np.float64)  # noqa: E731
    t_up = flat_up(train)
    d2 = np.sum(flat_up(test) ** 2, 1)[:, None] + np.sum(t_up**2, 1)[None] - 2 * flat_up(test) @ t_up.T
    nn = np.argsort(d2, axis=1)[:, :k]  # [n, k]
    lower = train[:, half:]
    mean_lower = lower[nn].mean(axis=1)
    truth = test[:, half:]

    def mse(pred):
        return float(np.mean((pred - truth) ** 2))

    def grey(x):
        return float(np.mean((x > 0.1) & (x < 0.9)))

    scores = {
        "mse_mean": mse(mean_lower),
        "mse_neighbour": mse(lower[nn[:, 0]]),
        "grey_mean": grey(mean_lower),
        "grey_neighbour": grey(lower[nn[:, 0]]),
        "grey_data": grey(truth),
    }
    q = np.unique(np.round(np.linspace(0, len(test) - 1, num_queries)).astype(int))

    def completed(low: np.ndarray) -> np.ndarray:
        """[Q, m, H - half, W, C] lower halves under each query's own upper half -> [Q, m, H, W, C]."""
        upper = np.broadcast_to(test[q][:, None, :half], low.shape[:2] + test[q][:, :half].shape[1:])
        return np.concatenate([upper, low], axis=2)

    return {
        "k": k,
        "num_eval": len(test),
        "half": half,
        "scores": scores,
        "queries": {
            "digit": test[q],
            "mean": completed(mean_lower[q][:, None])[:, 0],
            "completions": completed(lower[nn[q]]),
        },
    }


def draw_averaging(data: dict, path: str) -> None:
    qd = data["queries"]
    nq, k = qd["completions"].shape[:2]
    plt, fig = new_figure(1.0 * (k + 2) + 1.0, 1.15 * nq + 2.6)
    gs = fig.add_gridspec(2, 3, width_ratios=[1, 1, k], height_ratios=[1.15 * nq, 1.3])
    show_images(fig.add_subplot(gs[0, 0]), qd["digit"], ncol=1, title="test digit")
    show_images(fig.add_subplot(gs[0, 1]), qd["mean"], ncol=1, title="MSE-optimal\n(the mean)")
    show_images(
        fig.add_subplot(gs[0, 2]),
        qd["completions"].reshape(-1, *qd["completions"].shape[2:]),
        ncol=k,
        title=f"{k} plausible lower halves: the training digits with the nearest upper halves",
    )
    s = data["scores"]
    rows = [
        ["the mean of the k (≈ E[lower | upper])", s["mse_mean"], s["grey_mean"]],
        ["one of them (the nearest)", s["mse_neighbour"], s["grey_neighbour"]],
        ["the real lower halves", 0.0, s["grey_data"]],
    ]
    draw_table(
        fig.add_subplot(gs[1, :]),
        ["prediction of the lower half", "MSE", "share of mid-grey pixels"],
        rows,
        title=f"over {data['num_eval']} test digits: squared error rewards the blur",
    )
    fig.suptitle(
        "14 The averaging problem: a squared-error decoder predicts the mean of the plausible answers", fontsize=11
    )
    save(fig, path)
