"""Post-hoc EMA (EDM2): the power-function profiles, their closed-form inner products, the least-squares
reconstruction on a synthetic trajectory, snapshots across an interrupted run, and `jgen ema`."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jgen import cli
from jgen.config import ConfigError
from jgen.run import load_run, open_workdir, train_and_evaluate, validate, with_defaults
from jgen.run.posthoc_ema import reconstruct_ema
from jgen.train import ema_snapshots
from jgen.train import posthoc_ema as phema
from jgen.train.loop import choose_steps_per_call
from tests.conftest import tiny_config
from tests.gan.test_gan_method import gan_config

STORED = (0.05, 0.10)


def test_gamma_and_sigma_rel_round_trip_and_edm2_values():
    for s in (0.01, 0.03, 0.05, 0.1, 0.2, 0.29, phema.SIGMA_REL_MAX):
        assert phema.sigma_rel_from_gamma(phema.gamma_from_sigma_rel(s)) == pytest.approx(s, rel=1e-12)
    for g in (0.0, 1.0, 6.94, 16.97, 100.0):
        assert phema.gamma_from_sigma_rel(phema.sigma_rel_from_gamma(g)) == pytest.approx(g, rel=1e-9)
    # EDM2, sec. 3.1: sigma_rel 0.05 and 0.10 are gamma 16.97 and 6.94; the widest profile is at gamma^2+3gamma+1=0
    assert phema.gamma_from_sigma_rel(0.05) == pytest.approx(16.97, abs=0.005)
    assert phema.gamma_from_sigma_rel(0.10) == pytest.approx(6.94, abs=0.005)
    assert phema.SIGMA_REL_MAX == pytest.approx(0.30028, abs=1e-5)
    with pytest.raises(ValueError, match="sigma_rel=0.31"):
        phema.gamma_from_sigma_rel(0.31)


def test_profile_inner_product_matches_quadrature():
    """The closed form of <p_a, p_b> against a midpoint-rule integral of the two power-function densities."""
    tau = (np.arange(400_000) + 0.5) / 400_000 * 900.0  # [0, 900], past every profile's end
    dt = 900.0 / 400_000

    def p(t, g):
        return np.where(tau <= t, (g + 1.0) * tau**g / t ** (g + 1.0), 0.0)

    for t_a, g_a, t_b, g_b in [(500, 6.94, 800, 16.97), (800, 0.5, 300, 2.0), (700, 3.0, 700, 3.0)]:
        numeric = float(np.sum(p(t_a, g_a) * p(t_b, g_b)) * dt)
        assert float(phema.profile_inner(t_a, g_a, t_b, g_b)) == pytest.approx(numeric, rel=1e-4)


def _trajectory(steps=1000, dim=64, every=50, seed=0):
    """A random walk theta_0..theta_T [T+1, dim] (float64), the two stored profiles accumulated along it by the
    training-time update (float32, jit), and their snapshots every `every` steps."""
    rng = np.random.default_rng(seed)
    theta = np.cumsum(rng.normal(0.0, 0.01, (steps + 1, dim)), axis=0) + rng.normal(0.0, 1.0, dim)
    gammas = [phema.gamma_from_sigma_rel(s) for s in STORED]
    update = jax.jit(lambda prof, x, t: phema.update_profiles(prof, {"w": x}, gammas, t))
    profiles = phema.init_profiles({"w": jnp.asarray(theta[0], jnp.float32)}, len(gammas))
    snaps = {}
    for t in range(1, steps + 1):
        profiles = update(profiles, jnp.asarray(theta[t], jnp.float32), jnp.int32(t))
        if t % every == 0:
            snaps[t] = [np.asarray(p["w"]) for p in profiles]
    return theta, gammas, snaps


def _direct(theta, gamma, t):
    """The power-function EMA at step t accumulated directly, float64: sum_s w_s theta_s."""
    return phema.profile_weights(gamma, t) @ theta[1 : t + 1]


def _reconstruct(snaps, gammas, step, gamma):
    used = [s for s in snaps if s <= step]
    x, residual = phema.solve_weights([s for s in used for _ in gammas], [g for _ in used for g in gammas], step, gamma)
    trees = [snaps[s][i] for s in used for i in range(len(gammas))]
    return phema.combine(x, trees), residual


@pytest.fixture(scope="module")
def trajectory():
    return _trajectory()


def test_training_update_accumulates_the_power_function_profile(trajectory):
    theta, gammas, snaps = trajectory
    for t in (50, 1000):
        for i, g in enumerate(gammas):
            np.testing.assert_allclose(snaps[t][i], _direct(theta, g, t), rtol=0, atol=1e-5)
    assert phema.profile_weights(3.0, 7).sum() == pytest.approx(1.0, abs=1e-15)


def test_reconstruction_of_a_stored_profile_equals_the_direct_ema(trajectory):
    """A profile in the snapshots' span (a stored sigma_rel at a snapshot step) is reconstructed to 1e-5 (absolute,
    parameters of size ~1; what remains is the float32 accumulation of the training-time update)."""
    theta, gammas, snaps = trajectory
    for step in (1000, 600):
        for s in STORED:
            g = phema.gamma_from_sigma_rel(s)
            rec, residual = _reconstruct(snaps, gammas, step, g)
            assert residual < 1e-6
            np.testing.assert_allclose(rec, _direct(theta, g, step), rtol=0, atol=1e-5)


@pytest.mark.parametrize("sigma_rel", [0.07, 0.15])
def test_reconstruction_of_other_widths_is_within_its_bound(trajectory, sigma_rel):
    """A width that no snapshot stores is approximated: each parameter's error is at most
    ||residual profile||_L2 * ||theta||_2 (module docstring), and far below the error of the nearest stored EMA."""
    theta, gammas, snaps = trajectory
    g, step = phema.gamma_from_sigma_rel(sigma_rel), 1000
    rec, rel_residual = _reconstruct(snaps, gammas, step, g)
    err = np.abs(rec - _direct(theta, g, step))
    bound = rel_residual * np.sqrt(phema.profile_inner(step, g, step, g)) * np.linalg.norm(theta[1:], axis=0)
    assert np.all(err <= bound + 1e-5), (err.max(), bound.min())
    nearest = min(np.abs(snaps[step][i] - _direct(theta, g, step)).max() for i in range(len(gammas)))
    assert err.max() < 0.1 * nearest, (err.max(), nearest)


def test_config_checks_name_the_field_in_one_line():
    cases = [
        ({"sigma_rels": (0.05, 0.4), "snapshot_every": 10}, r"sigma_rels=\(0.05, 0.4\) is invalid"),
        ({"sigma_rels": (0.1, 0.1), "snapshot_every": 10}, "distinct"),
        ({"sigma_rels": (0.05,), "snapshot_every": 0}, "snapshot_every=0 is invalid.*needs snapshots"),
        ({"sigma_rels": (), "snapshot_every": 10}, "has no effect"),
    ]
    for fields, match in cases:
        c = tiny_config("vae", steps=10)
        c.train.posthoc_ema.update(fields)
        with pytest.raises(ConfigError, match=match) as e:
            validate(c)
        assert "\n" not in str(e.value)


def _posthoc_config(steps=12):
    c = tiny_config("vae", steps=steps)
    c.train.posthoc_ema.sigma_rels = STORED
    c.train.posthoc_ema.snapshot_every = 2
    c.train.checkpoint_every, c.train.keep_checkpoints, c.train.eval_every = 4, 10, -1
    return c


class _Killed(Exception):
    pass


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A finished tiny VAE run with post-hoc EMA (snapshots every 2 steps of 12)."""
    workdir = str(tmp_path_factory.mktemp("posthoc") / "full")
    train_and_evaluate(_posthoc_config(), workdir)
    return workdir


@pytest.mark.slow  # two tiny runs: 27 s on 2 heavily shared cores
def test_snapshots_survive_a_kill_and_resume(finished_run, tmp_path, monkeypatch):
    """Killed just after the snapshot of step 6 (last checkpoint: step 4), with a torn temporary file left behind:
    the resumed run ends with the uninterrupted run's snapshots, bitwise, once each, and the same profiles."""
    workdir = str(tmp_path / "cut")
    write = ema_snapshots.write_snapshot

    def write_then_die(wd, step, *args):
        path = write(wd, step, *args)
        if step == 6:
            with open(path + ".tmp123", "wb") as f:  # a second write torn by the kill
                f.write(b"torn")
            raise _Killed
        return path

    monkeypatch.setattr(ema_snapshots, "write_snapshot", write_then_die)
    with pytest.raises(_Killed):
        train_and_evaluate(_posthoc_config(), workdir)
    monkeypatch.setattr(ema_snapshots, "write_snapshot", write)
    assert list(ema_snapshots.list_snapshots(workdir)) == [2, 4, 6]
    train_and_evaluate(_posthoc_config(), workdir)

    full, cut = ema_snapshots.list_snapshots(finished_run), ema_snapshots.list_snapshots(workdir)
    assert list(cut) == list(full) == [2, 4, 6, 8, 10, 12]
    assert sorted(os.listdir(ema_snapshots.snapshot_dir(workdir))) == [os.path.basename(p) for p in cut.values()]
    for step in full:
        a, b = ema_snapshots.read_snapshot(full[step]), ema_snapshots.read_snapshot(cut[step])
        for pa, pb in zip(a, b):
            assert pa.keys() == pb.keys()
            for k in pa:
                np.testing.assert_array_equal(pa[k], pb[k])
    a, b = load_run(finished_run).state, load_run(workdir).state
    for x, y in zip(jax.tree.leaves((a.power_ema, a.params)), jax.tree.leaves((b.power_ema, b.params))):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.mark.slow  # a tiny run (shared with the test above) and a sample grid: 3 s after it
def test_ema_command_writes_a_run_that_sample_reads(finished_run, tmp_path, capsys):
    out = str(tmp_path / "ema010")
    assert cli.run_command(["ema", "--workdir", finished_run, "--sigma_rel", "0.1", "--out", out]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["step"] == 12 and summary["snapshots"] == 6 and summary["relative_residual"] < 1e-6
    stored = ema_snapshots.read_snapshot(ema_snapshots.list_snapshots(finished_run)[12])[1]  # sigma_rel 0.10
    got = ema_snapshots.flat_arrays(jax.device_get(load_run(out).state.ema_params))
    assert got.keys() == stored.keys()
    for k in got:
        np.testing.assert_allclose(got[k], stored[k], rtol=0, atol=1e-6)
    with open(os.path.join(out, "posthoc_ema.json")) as f:
        assert json.load(f)["sigma_rel"] == 0.1
    png = str(tmp_path / "s.png")
    assert cli.run_command(["sample", "--workdir", out, "--num_samples", "4", "--out", png]) == 0
    assert os.path.getsize(png) > 0

    default = cli.run_command(["ema", "--workdir", finished_run, "--sigma_rel", "0.07", "--step", "8"])
    assert default == 0 and os.path.isdir(os.path.join(finished_run, "posthoc_ema", "sigma_rel_0.070_step_8"))


@pytest.mark.slow  # one tiny run per family: 22-215 s each on 2 heavily shared cores (load average 16)
@pytest.mark.parametrize("family", ["gan", "gmm", "diffusion"])
def test_every_family_keeps_profiles_and_reconstructs(family, tmp_path):
    """The loop keeps the profiles for any family (the GAN's two players, the GMM's EM step, diffusion), and the
    reconstruction of a stored width is that profile, written where the family's sampling reads it."""
    c = gan_config(tiny_config, 4) if family == "gan" else tiny_config(family, 4)
    if family == "gmm":
        c.method.em = "stepwise"  # mini-batches of the tiny config's size
    c.train.posthoc_ema.update(sigma_rels=STORED, snapshot_every=2)
    c.train.eval_every = -1
    workdir = str(tmp_path / family)
    train_and_evaluate(c, workdir)
    out = reconstruct_ema(workdir, 0.05)["out"]
    stored = ema_snapshots.read_snapshot(ema_snapshots.list_snapshots(workdir)[4])[0]  # sigma_rel 0.05
    got = ema_snapshots.flat_arrays(jax.device_get(load_run(out).state.ema_params))
    assert got.keys() == stored.keys()
    for k in got:
        np.testing.assert_allclose(got[k], stored[k], rtol=0, atol=1e-6)


def test_ema_command_errors_are_one_line(tmp_path, capsys):
    """No run directory, a run without snapshots, a width no power function has, a step without a snapshot: exit 2
    with one line, before anything is loaded (the run here has a config and snapshots but no checkpoint)."""
    workdir = str(tmp_path / "run")
    open_workdir(with_defaults(_posthoc_config()), workdir)

    def refused(args, message):
        assert cli.run_command(["ema", *args]) == cli.EXIT_BAD_INPUT
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err

    refused(["--workdir", str(tmp_path / "nothing"), "--sigma_rel", "0.1"], "it is not a jgen run directory")
    refused(["--workdir", workdir, "--sigma_rel", "0.1"], "has no post-hoc EMA snapshots")
    gammas = [phema.gamma_from_sigma_rel(s) for s in STORED]
    for step in (2, 4):
        ema_snapshots.write_snapshot(workdir, step, STORED, gammas, ({"w": np.zeros(3)}, {"w": np.ones(3)}))
    refused(["--workdir", workdir, "--sigma_rel", "0.35"], "--sigma_rel=0.35: must be in (0, 0.3003]")
    refused(["--workdir", workdir, "--sigma_rel", "0.1", "--step", "3"], "--step=3: ")
    refused(["--workdir", workdir, "--sigma_rel", "0.1", "--out", str(tmp_path)], "would replace the training run")
    (tmp_path / "other").mkdir()
    refused(["--workdir", workdir, "--sigma_rel", "0.1", "--out", str(tmp_path / "other")], "exists and is not")


def test_automatic_steps_per_call_divides_the_snapshot_interval():
    """On an accelerator the loop runs K steps per call; a snapshot step must end a call (K = 12, not 16, here)."""
    c = with_defaults(_posthoc_config(steps=96))
    c.train.update(log_every=48, checkpoint_every=48, eval_every=-1, sample_every=-1)
    c.train.posthoc_ema.snapshot_every = 12
    assert choose_steps_per_call(c.train, 0, 0, "gpu") == 12
    c.train.posthoc_ema.update(sigma_rels=(), snapshot_every=0)
    assert choose_steps_per_call(c.train, 0, 0, "gpu") == 16
