"""Chart 30 (applications): PSNR and AUROC by hand, and the chart's data on tiny diffusion and VAE runs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from course.applications import applications_data, auroc, draw_applications, psnr
from course.common import pick_test_images
from jgen.run import load_run


def test_psnr_and_auroc_by_hand():
    ref = np.zeros((2, 4, 4, 1))
    x = ref + np.array([0.1, 0.01])[:, None, None, None]
    np.testing.assert_allclose(psnr(x, ref), [20.0, 40.0])  # 10 log10(1 / mse)
    assert auroc(np.array([1.0, 2.0]), np.array([3.0, 4.0])) == 1.0
    assert auroc(np.array([3.0, 4.0]), np.array([1.0, 2.0])) == 0.0
    assert auroc(np.array([1.0, 3.0]), np.array([2.0, 2.0])) == 0.5


@pytest.mark.slow  # the tiny diffusion run and its denoiser: about 40 s of CPU on 2 cores
def test_chart30_parts_from_tiny_runs(diffusion_runs, ae_runs, tmp_path):
    runs = {"ddpm_mnist": str(diffusion_runs / "ddpm_mnist"), "vae_mnist": str(ae_runs / "vae_mnist")}
    d = applications_data(runs, num=20, levels=(0.1, 0.4), inpaint_steps=10, inpaint_draws=2)
    assert d["text"] is None  # no charlm run
    assert d["conditional"]["images"].shape == (40, 8, 8, 1) and list(d["conditional"]["labels"][:5]) == [0] * 4 + [1]
    dn = d["denoising"]
    assert dn["denoised"].shape == (2, 20, 8, 8, 1)
    np.testing.assert_allclose(dn["psnr_noisy"], [psnr(n, dn["clean"]) for n in dn["noisy"]])
    assert dn["psnr_noisy"][0].mean() > dn["psnr_noisy"][1].mean()  # more noise, lower PSNR
    p = d["inpainting"]
    assert p["completions"].shape == (2, 10, 8, 8, 1) and p["mask"][:4].all() and not p["mask"][4:].any()
    for draw in p["completions"]:  # the known upper half is the original's (to the 8-bit level)
        np.testing.assert_allclose(draw[:, :4], p["originals"][:, :4], atol=0.5 / 255 + 1e-6)
    assert np.abs(p["completions"][0] - p["completions"][1])[:, 4:].max() > 0.05  # two draws differ below
    a = d["anomaly"]
    vae = load_run(runs["vae_mnist"])
    test, _ = pick_test_images(vae, 20)
    want = vae.method.eval_step(
        vae.state.ema_params,
        vae.state.model_state,
        {"image": jnp.asarray(test), "label": jnp.zeros((20,), jnp.int32)},
        jax.random.PRNGKey(0),
    )[a["metric"]]
    np.testing.assert_allclose(a["scores"]["MNIST test digits"], want, rtol=1e-5)
    assert set(a["auroc"]) == {"8x8 digits, upsampled", "test digits rotated 180°", "uniform noise"}
    for name, value in a["auroc"].items():  # from the scores the chart shows (a 10-step VAE need not separate them)
        assert value == auroc(a["scores"]["MNIST test digits"], a["scores"][name])
    draw_applications(d, str(tmp_path / "30.png"))
    assert (tmp_path / "30.png").stat().st_size > 30_000
