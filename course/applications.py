"""Applications, measured: chart 30 (class-conditional generation, denoising, anomaly detection by likelihood, text
continuation), for whichever of its runs exist.

- Denoising: a test digit plus Gaussian noise of std s (in [0, 1] pixel units) is x_t / alpha_t of the diffusion
  model at the time whose sigma_t / alpha_t = 2 s (its images live in [-1, 1]), so the network's estimate of x_0
  there is a denoiser for that noise level, with no training for it.
- Anomaly detection: the likelihood model's per-image bits/dim (its `eval_step`, the value `jgen eval` averages) on
  test digits against out-of-distribution inputs (scikit-learn's 8x8 digits upsampled, test digits rotated by 180
  degrees, uniform noise); AUROC = P(an OOD input scores more bits/dim than a test digit).
- Inpainting: test digits whose lower half is unknown, completed by the diffusion model's sampler with the known
  upper half, noised to the current level, put back after every step (`Pipeline.inpaint`, jgen/diffusion/inpaint.py;
  DDPM, the sampler whose completions came closest to the exact conditional in that module's test).
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from course.common import MissingData, new_figure, pick_test_images, save, show_images
from course.diffusion import x0_predictor
from jgen.config import base_config
from jgen.data import get_source
from jgen.diffusion.schedules import time_from_log_snr
from jgen.pipeline import Pipeline
from jgen.run import Run, load_run
from jgen.sampling import generate

NOISE_LEVELS = (0.05, 0.1, 0.2, 0.4, 0.8)
INPAINT_SAMPLER, INPAINT_STEPS, INPAINT_DRAWS = "ddpm", 250, 3


def psnr(x: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Peak signal-to-noise ratio in dB per image of x against ref (both [N, ...] in [0, 1])."""
    mse = np.mean((np.asarray(x, np.float64) - ref) ** 2, axis=tuple(range(1, np.ndim(ref))))
    return 10 * np.log10(1.0 / np.maximum(mse, 1e-12))


def auroc(inliers: np.ndarray, outliers: np.ndarray) -> float:
    """P(an outlier's score > an inlier's), ties counting one half (the Mann-Whitney U over m n)."""
    from scipy.stats import mannwhitneyu  # local: scipy only for this statistic

    return float(mannwhitneyu(outliers, inliers, alternative="two-sided").statistic / (len(inliers) * len(outliers)))


def _denoising(r: Run, num: int, levels, seed: int) -> dict:
    clean, _ = pick_test_images(r, num)
    rng = np.random.default_rng(seed)
    predict = x0_predictor(r, None)  # unconditional (the null label of a conditional model)
    m = r.method
    noisy, denoised = [], []
    for s in levels:
        y = clean + s * rng.standard_normal(clean.shape).astype(np.float32)
        t = float(time_from_log_snr(m.schedule, jnp.float32(-2 * np.log(2 * s))))
        alpha = float(np.sqrt(1 / (1 + (2 * s) ** 2)))  # alpha_t with sigma_t / alpha_t = 2 s
        x0 = predict(alpha * m.encode_x0(jnp.asarray(y)), t)
        noisy.append(np.clip(y, 0, 1))
        denoised.append(np.asarray(m.decode_x0(x0)))
    return {
        "levels": np.asarray(levels),
        "clean": clean,
        "noisy": np.stack(noisy),
        "denoised": np.stack(denoised),
        "psnr_noisy": np.stack([psnr(n, clean) for n in noisy]),
        "psnr_denoised": np.stack([psnr(d, clean) for d in denoised]),
    }


def lower_half_mask(shape) -> np.ndarray:
    """A mask [H, W, C]: 1 (known) on the upper half of the rows, 0 (to fill in) on the lower half."""
    mask = np.zeros(shape, np.float32)
    mask[: shape[0] // 2] = 1.0
    return mask


def _inpainting(r: Run, num: int, draws: int, sampler: str, steps: int, seed: int) -> dict:
    """`draws` completions of `num` test digits (one per class) whose lower half is masked, by `Pipeline.inpaint`."""
    originals, _ = pick_test_images(r, num, one_per_class=True)
    mask = lower_half_mask(originals.shape[1:])
    batch = np.tile(originals, (draws, 1, 1, 1))  # draw-major: [draws * n, H, W, C]
    filled = Pipeline(r).inpaint(batch, np.broadcast_to(mask, batch.shape), seed=seed, sampler=sampler, steps=steps)
    completions = filled.astype(np.float32).reshape(draws, len(originals), *originals.shape[1:]) / 255.0
    return {
        "originals": originals,
        "mask": mask,
        "masked": np.where(mask > 0, originals, 0.5),
        "completions": completions,
        "sampler": sampler,
        "steps": steps,
    }


def _ood_inputs(r: Run, num: int, seed: int) -> dict[str, np.ndarray]:
    """Out-of-distribution images shaped like the run's: upsampled 8x8 digits, rotated test digits, noise."""
    h, w, c = r.info.shape
    cfg = base_config().data
    cfg.name = "digits"
    small = get_source(cfg)[1]
    idx = np.round(np.linspace(0, len(small) - 1, min(num, len(small)))).astype(int)
    small = np.stack([small[int(i)]["image"] for i in idx])
    up = np.asarray(jax.image.resize(jnp.asarray(small), (len(small), h, w, small.shape[-1]), "bilinear"))
    up = np.clip(np.repeat(up, c, axis=-1) if up.shape[-1] != c else up, 0, 1)
    test, _ = pick_test_images(r, num)
    return {
        "8x8 digits, upsampled": up,
        "test digits rotated 180°": test[:, ::-1, ::-1],
        "uniform noise": np.random.default_rng(seed).uniform(0, 1, (num, h, w, c)).astype(np.float32),
    }


def _bits_per_dim(r: Run, images: np.ndarray, key: jax.Array, metric: str) -> np.ndarray:
    step = jax.jit(lambda p, s, b, k: r.method.eval_step(p, s, b, k)[metric])
    batch = {"image": jnp.asarray(images), "label": jnp.zeros((len(images),), jnp.int32)}
    return np.asarray(step(r.state.ema_params, r.state.model_state, batch, key))


def applications_data(
    runs: Mapping[str, str],
    diffusion: str = "ddpm_mnist",
    likelihood: str = "vae_mnist",
    text: str = "charlm",
    num: int = 200,
    levels=NOISE_LEVELS,
    prompt: str = "The ",
    num_tokens: int = 120,
    seed: int = 0,
    inpaint_sampler: str = INPAINT_SAMPLER,
    inpaint_steps: int = INPAINT_STEPS,
    inpaint_draws: int = INPAINT_DRAWS,
) -> dict:
    """Chart 30's data, each part present when its run is:

    conditional: {"labels" [10], "images" [10 * 4, H, W, C]} class-conditional samples of `diffusion` (4 per label);
    denoising: {"levels" [L], "clean" [num, ...], "noisy", "denoised" [L, num, ...], "psnr_noisy", "psnr_denoised"
      [L, num] dB}; inpainting: {"originals" [n, H, W, C] one test digit per class, "mask" [H, W, C] (1: known, the
      upper half), "masked" [n, ...] (unknown pixels grey), "completions" [draws, n, ...] from `Pipeline.inpaint`
      (uint8 levels / 255), "sampler", "steps"}; anomaly: {"metric", "kind",
      "scores": {"MNIST test digits" | OOD name: bits/dim [n]}, "auroc": {OOD name: float}}; text: {"prompt",
      "samples": [3 continuations]}."""
    out: dict = {"conditional": None, "denoising": None, "inpainting": None, "anomaly": None, "text": None}
    if diffusion in runs:
        r = load_run(runs[diffusion])
        if r.method.num_classes:
            labels = np.repeat(np.arange(r.method.num_classes), 4).astype(np.int32)
            images, _ = generate(
                r.method, r.state.ema_params, r.state.model_state, len(labels), seed=seed, labels=labels
            )
            out["conditional"] = {"labels": labels, "images": images, "run": diffusion}
        out["denoising"] = {"run": diffusion, **_denoising(r, min(num, 64), levels, seed)}
        if "inpaint" in r.method.capabilities:
            out["inpainting"] = {
                "run": diffusion,
                **_inpainting(r, max(r.method.num_classes, 8), inpaint_draws, inpaint_sampler, inpaint_steps, seed),
            }
    if likelihood in runs:
        r = load_run(runs[likelihood])
        metric = r.method.likelihood_metric()
        if metric is None:
            raise MissingData(f"{runs[likelihood]} ({r.method.name}) has no likelihood to detect anomalies with")
        key = jax.random.PRNGKey(seed)
        test, _ = pick_test_images(r, num)
        scores = {"MNIST test digits": _bits_per_dim(r, test, key, metric[0])}
        for name, images in _ood_inputs(r, num, seed).items():
            scores[name] = _bits_per_dim(r, images, key, metric[0])
        inl = scores["MNIST test digits"]
        out["anomaly"] = {
            "run": likelihood,
            "metric": metric[0],
            "kind": metric[1],
            "scores": scores,
            "auroc": {k: auroc(inl, v) for k, v in scores.items() if k != "MNIST test digits"},
        }
    if text in runs:
        pipe = Pipeline.from_workdir(runs[text])
        out["text"] = {
            "run": text,
            "prompt": prompt,
            "samples": pipe.text(prompt, num_samples=3, num_tokens=num_tokens, seed=seed),
        }
    if not any(out.values()):
        raise MissingData(f"chart 30 needs one of the runs {diffusion}, {likelihood}, {text}")
    return out


def draw_applications(data: dict, path: str) -> None:
    plt, fig = new_figure(16, 13)
    gs = fig.add_gridspec(3, 3, height_ratios=[1, 1, 0.8])
    if data["conditional"] is not None:
        c = data["conditional"]
        k = len(np.unique(c["labels"]))
        by_column = np.swapaxes(c["images"].reshape(k, -1, *c["images"].shape[1:]), 0, 1)  # [per label, K, ...]
        show_images(
            fig.add_subplot(gs[0, 0]),
            by_column.reshape(-1, *c["images"].shape[1:]),
            ncol=k,
            title=f"class-conditional generation ({c['run']}): labels 0..{k - 1} by column",
        )
    if data["denoising"] is not None:
        d = data["denoising"]
        shown = np.unique(np.round(np.linspace(0, d["clean"].shape[0] - 1, 4)).astype(int))
        k = len(shown)
        rows = [d["clean"][shown]] + [x[shown] for pair in zip(d["noisy"], d["denoised"]) for x in pair]
        show_images(
            fig.add_subplot(gs[0, 1]),
            np.concatenate(rows),
            ncol=k,
            title="denoising: clean; then noisy / denoised\nat s = " + ", ".join(f"{s:g}" for s in d["levels"]),
        )
        ax = fig.add_subplot(gs[0, 2])
        ax.plot(d["levels"], d["psnr_noisy"].mean(1), "o-", label="noisy input")
        ax.plot(d["levels"], d["psnr_denoised"].mean(1), "o-", label=f"{d['run']}'s estimate of x_0")
        ax.set_xscale("log")
        ax.set_xlabel("noise std s (pixels in [0, 1])")
        ax.set_ylabel("PSNR (dB), mean over test digits")
        ax.legend(fontsize=8)
        ax.set_title("denoising with a diffusion model's x_0 prediction", fontsize=9)
    if data["inpainting"] is not None:
        p = data["inpainting"]
        rows = np.concatenate([p["originals"], p["masked"], *p["completions"]])
        show_images(
            fig.add_subplot(gs[2, :]),
            rows,
            ncol=len(p["originals"]),
            title=f"inpainting ({p['run']}, {p['sampler']} {p['steps']} steps, known pixels replaced at every "
            f"step): originals; lower half masked; {len(p['completions'])} completions",
        )
    if data["anomaly"] is not None:
        a = data["anomaly"]
        ax = fig.add_subplot(gs[1, 0:2])
        allv = np.concatenate(list(a["scores"].values()))
        bins = np.geomspace(max(allv.min(), 1e-3), allv.max(), 80)
        for name, v in a["scores"].items():
            label = name if name not in a["auroc"] else f"{name}: AUROC {a['auroc'][name]:.3f}"
            ax.hist(np.clip(v, bins[0], bins[-1]), bins=bins, alpha=0.5, label=label)
        ax.set_xscale("log")
        ax.set_ylabel("images")
        ax.set_xlabel(f"bits/dim ({a['metric']}, {a['kind']}) of {a['run']}")
        ax.legend(fontsize=8)
        ax.set_title("anomaly detection by likelihood: out-of-distribution inputs cost more bits", fontsize=9)
    if data["text"] is not None:
        t = data["text"]
        ax = fig.add_subplot(gs[1, 2])
        ax.axis("off")
        body = "\n\n".join(
            textwrap.fill(f"{i + 1}. {t['prompt']}{s}".replace("\n", " ").replace("\t", " "), 58)
            for i, s in enumerate(t["samples"])
        )
        ax.text(0, 1, body, va="top", ha="left", fontsize=7, family="monospace", transform=ax.transAxes)
        ax.set_title(f"text continuation ({t['run']}), prompt {t['prompt']!r}", fontsize=9)
    fig.suptitle("30 Applications")
    fig.tight_layout()
    save(fig, path)
