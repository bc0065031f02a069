"""The course's charts by number, and `draw_charts`, which draws every chart whose runs exist.

Each chart is two functions: `extract(runs) -> data` reads its runs (run name -> run directory) through the public
API and returns plain arrays and tables; `draw(data, path)` writes the PNG. Notebooks call the same two.
"""

from __future__ import annotations

import dataclasses
import os
import time
import traceback
from collections.abc import Callable, Mapping, Sequence

from course import applications, autoencoders, diffusion, ethics, gans, landscape
from course.common import (
    IMAGE_FAMILIES,
    RUNS,
    SEED_STEPS,
    SEEDS,
    MissingData,
    classifier_argv,
    classifier_missing,
    logs_sample_quality,
    run_missing,
    seed_run,
    shell_command,
    train_commands,
)
from jgen.config import InputError


@dataclasses.dataclass(frozen=True)
class Chart:
    """One chart of the course: its number, file name, title, the runs it reads and its two functions."""

    id: int
    slug: str
    title: str
    runs: tuple[str, ...]  # run directory names under --runs (keys of common.RUNS)
    extract: Callable[[Mapping[str, str]], dict]  # {run name: workdir} -> plain data
    draw: Callable[[dict, str], None]  # (data, png path) -> None
    any_of: bool = False  # True: drawn from whichever of `runs` are ready (at least one)
    scores_samples: bool = False  # True: its extraction scores samples with the MNIST classifier

    @property
    def filename(self) -> str:
        return f"{self.id}_{self.slug}.png"


_CHARTS = [
    Chart(
        12,
        "autoencoder_successes",
        "Autoencoder successes: reconstructions and the MSE curve",
        ("ae_mnist",),
        autoencoders.ae_success_data,
        autoencoders.draw_ae_success,
    ),
    Chart(
        13,
        "generation_problem",
        "Autoencoder failures: the generation problem",
        ("ae_mnist", "vae_mnist"),
        autoencoders.generation_problem_data,
        autoencoders.draw_generation_problem,
    ),
    Chart(
        14,
        "averaging_problem",
        "The averaging problem: squared error predicts the mean of the plausible answers",
        (),
        autoencoders.averaging_data,
        autoencoders.draw_averaging,
    ),
    Chart(
        15,
        "vae_framework",
        "VAE framework: a 2-D latent plane, its decoder, the ELBO's two terms",
        ("vae_2d_mnist",),
        autoencoders.vae_plane_data,
        autoencoders.draw_vae_plane,
    ),
    Chart(
        16,
        "samples_over_training",
        "How artists develop mastery: samples as training goes on",
        ("gan_mnist",),
        gans.mastery_data,
        gans.draw_mastery,
    ),
    Chart(
        17,
        "two_approaches",
        "Two approaches: GAN and diffusion side by side",
        ("gan_mnist", "ddpm_mnist"),
        landscape.two_approaches_data,
        landscape.draw_two_approaches,
    ),
    Chart(
        18,
        "forger_vs_detective",
        "Forger vs detective: D(x) and D(G(z)) over a GAN run",
        ("gan_mnist",),
        gans.detective_data,
        gans.draw_detective,
    ),
    Chart(
        19,
        "reverse_corruption",
        "Reverse corruption: a digit noised forward, a trained model denoising back",
        ("ddpm_mnist",),
        diffusion.reverse_corruption_data,
        diffusion.draw_reverse_corruption,
    ),
    Chart(
        20,
        "gan_ring_dynamics",
        "GAN geometric dynamics: the ring toy's samples, D's contours, G's gradients",
        ("gan_ring",),
        gans.ring_dynamics_data,
        gans.draw_ring_dynamics,
    ),
    Chart(
        21,
        "gan_training_steps",
        "GAN training, step by step, with real MNIST loss values",
        ("gan_mnist",),
        gans.gan_steps_data,
        gans.draw_gan_steps,
    ),
    Chart(
        22,
        "diffusion_maths",
        "Diffusion mathematics: forward marginals, exact trajectories, schedules",
        (),
        diffusion.diffusion_maths_data,
        diffusion.draw_diffusion_maths,
    ),
    Chart(
        23,
        "latent_interpolation",
        "Latent interpolation: VAE (linear), GAN (slerp), diffusion (DDIM inversion)",
        ("vae_mnist", "gan_mnist", "ddpm_mnist"),
        landscape.interpolation_data,
        landscape.draw_interpolation,
        any_of=True,
    ),
    Chart(
        24,
        "ddpm_1000_steps",
        "From noise to image in 1000 steps: a DDPM trajectory, x_t and predicted x_0",
        ("ddpm_mnist",),
        diffusion.ddpm_trajectory_data,
        diffusion.draw_ddpm_trajectory,
    ),
    Chart(
        27,
        "pipeline_guidance",
        "The Stable Diffusion API: the Pipeline call and guidance scales 0 to 8",
        ("ldm_mnist",),
        diffusion.guidance_data,
        diffusion.draw_guidance,
    ),
    Chart(
        28,
        "landscape",
        "The landscape of approaches: quality against diversity, speed, bits/dim",
        IMAGE_FAMILIES,
        landscape.landscape_data,
        landscape.draw_landscape,
        any_of=True,
        scores_samples=True,
    ),
    Chart(
        29,
        "tradeoffs",
        "Trade-offs (no free lunch): quality, diversity, likelihood, speed, training time, stability over seeds",
        tuple(seed_run(f, s) for f in SEED_STEPS for s in SEEDS),
        landscape.tradeoffs_data,
        landscape.draw_tradeoffs,
        scores_samples=True,
    ),
    Chart(
        30,
        "applications",
        "Applications: conditional generation, inpainting, denoising, anomaly detection, text continuation",
        ("ddpm_mnist", "vae_mnist", "charlm"),
        applications.applications_data,
        applications.draw_applications,
        any_of=True,
    ),
    Chart(
        31,
        "memorisation_and_representation",
        "Ethics: memorisation (nearest training images, data-copying test) and representation (class histograms)",
        IMAGE_FAMILIES,
        ethics.memorisation_data,
        ethics.draw_memorisation,
        any_of=True,
        scores_samples=True,
    ),
    Chart(
        32,
        "fid_against_nfe",
        "Quality against network evaluations: every iterative family and the few-step methods, 1 to 20 NFE",
        (
            "ddpm_mnist",
            "edm_mnist",
            "flow_mnist",
            "ldm_mnist",
            "meanflow_mnist",
            "meanflow_ft_mnist",
            "meanflow_ft_2step_mnist",
            "shortcut_mnist",
            "consistency_mnist",
            "ect_mnist",
        ),
        landscape.fid_nfe_data,
        landscape.draw_fid_nfe,
        any_of=True,
        scores_samples=True,
    ),
    Chart(
        25,
        "optimal_discriminator",
        "Why adversarial training works: D against D*, the JSD, 2 log 2",
        ("gan_dstar",),
        gans.dstar_data,
        gans.draw_dstar,
    ),
    Chart(
        26,
        "quality_over_training",
        "Quality metrics throughout training (every image family)",
        tuple(seed_run(f, 0) for f in SEED_STEPS),
        landscape.quality_curves_data,
        landscape.draw_quality_curves,
        any_of=True,
    ),
]
CHARTS: dict[int, Chart] = {c.id: c for c in sorted(_CHARTS, key=lambda c: c.id)}
assert all(r in RUNS for c in _CHARTS for r in c.runs), "every chart's runs must be in common.RUNS"


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What happened to one chart: "drawn" (path), "skipped" (why, and the commands that make its runs) or "failed"
    (the traceback)."""

    chart: int
    status: str
    path: str | None = None
    seconds: float = 0.0
    message: str = ""
    commands: tuple[str, ...] = ()


def parse_only(only: Sequence[str] | None) -> list[int]:
    """Chart numbers from --only values (all charts when empty); InputError naming an unknown one."""
    if not only:
        return list(CHARTS)
    ids = []
    for v in only:
        try:
            ids.append(int(v))
        except ValueError:
            raise InputError(f"--only={','.join(only)!r}: chart numbers, e.g. --only=12,21") from None
    unknown = [i for i in ids if i not in CHARTS]
    if unknown:
        raise InputError(f"--only: no chart {unknown}; the charts are {list(CHARTS)}")
    return ids


def ready_runs(chart: Chart, runs_dir: str) -> tuple[dict[str, str], dict[str, str]]:
    """({name: workdir} of the chart's finished runs, {name: why not} of the others)."""
    ready, missing = {}, {}
    for name in chart.runs:
        workdir = os.path.join(runs_dir, name)
        why = run_missing(name, workdir)
        if why:
            missing[name] = why
        else:
            ready[name] = workdir
    return ready, missing


def needs_classifier(chart: Chart, to_train: Sequence[str]) -> bool:
    """Whether `chart`, once the runs `to_train` are trained, needs the MNIST classifier: it scores samples, or one
    of those runs logs sample quality while it trains."""
    return chart.scores_samples or any(logs_sample_quality(n) for n in to_train)


def chart_inputs(chart: Chart, runs_dir: str) -> tuple[dict[str, str], dict[str, str], Outcome | None]:
    """(ready runs, missing runs, None) when the chart can be drawn from the runs under `runs_dir`; otherwise the
    "skipped" Outcome that names what is missing (runs, or the MNIST classifier that scores samples) and the
    commands that make it in place of None."""
    ready, missing = ready_runs(chart, runs_dir)
    classifier = classifier_missing() if needs_classifier(chart, missing) else None  # its files read only then
    first = [shell_command(classifier_argv())] if classifier else []
    if (missing and not chart.any_of) or (chart.any_of and not ready):
        commands = tuple(dict.fromkeys(first + [c for n in missing for c in train_commands(n, runs_dir)]))  # once
        why = "; ".join(f"{os.path.join(runs_dir, n)}: {w}" for n, w in missing.items())
        return ready, missing, Outcome(chart.id, "skipped", message=f"missing runs: {why}", commands=commands)
    if chart.scores_samples and classifier:
        return (
            ready,
            missing,
            Outcome(
                chart.id,
                "skipped",
                message=f"the MNIST classifier that scores the samples: {classifier}",
                commands=tuple(first),
            ),
        )
    return ready, missing, None


def draw_chart(chart: Chart, runs_dir: str, out_dir: str) -> Outcome:
    """Draw one chart into `out_dir` if its runs are ready; never raises for a chart's own failure."""
    ready, missing, skipped = chart_inputs(chart, runs_dir)
    if skipped:
        return skipped
    t0 = time.perf_counter()
    path = os.path.join(out_dir, chart.filename)
    try:
        chart.draw(chart.extract(ready), path)
    except MissingData as e:
        return Outcome(chart.id, "skipped", message=str(e))
    except Exception:  # noqa: BLE001 -- one chart's bug must not stop the others; reported with its traceback
        return Outcome(chart.id, "failed", seconds=time.perf_counter() - t0, message=traceback.format_exc())
    note = f"(also missing: {', '.join(missing)})" if missing else ""
    return Outcome(chart.id, "drawn", path, time.perf_counter() - t0, note)


def draw_charts(
    runs_dir: str, out_dir: str, ids: Sequence[int] | None = None, log: Callable[[str], None] = print
) -> list[Outcome]:
    """Draw the charts `ids` (default: all) from the runs under `runs_dir` into `out_dir`; progress per chart."""
    ids = list(CHARTS) if ids is None else list(ids)
    outcomes = []
    for k, i in enumerate(ids, 1):
        chart = CHARTS[i]
        log(f"[{k}/{len(ids)}] chart {i}: {chart.title}")
        out = draw_chart(chart, runs_dir, out_dir)
        if out.status == "drawn":
            log(f"    wrote {out.path} ({out.seconds:.1f} s) {out.message}".rstrip())
        elif out.status == "skipped":
            log(f"    skipped: {out.message}")
            for c in out.commands:
                log(f"      {c}")
        else:
            log(f"    FAILED after {out.seconds:.1f} s:\n{out.message}")
        outcomes.append(out)
    return outcomes
