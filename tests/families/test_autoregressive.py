"""Autoregressive transformer: cached decoding, causality, exact likelihoods (uniform, Markov chain), the loop."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jgen.config import ConfigError, base_config
from jgen.data.text import TextInfo, TextSource
from jgen.methods.autoregressive import Autoregressive, decode, filter_logits, quantize, token_nll
from jgen.nn.transformer import Transformer
from jgen.run import load_run, train_and_evaluate
from jgen.sampling import generate
from jgen.train.writer import read_metrics
from tests.conftest import tiny_config


def _net(positions="rope", tie=False, max_len=12):
    return Transformer(
        vocab_size=20,
        num_outputs=16,
        max_len=max_len,
        d_model=32,
        num_layers=2,
        num_heads=4,
        positions=positions,
        tie_embeddings=tie,
    )


@pytest.mark.parametrize("positions,tie", [("rope", False), ("learned", True)])
def test_cached_logits_equal_full_forward_logits(positions, tie):
    net = _net(positions, tie)
    toks = jax.random.randint(jax.random.PRNGKey(0), (3, 12), 0, 20)
    params = net.init(jax.random.PRNGKey(1), toks)["params"]
    full, _ = net.apply({"params": params}, toks)
    step = jax.jit(lambda tok, cache, i: net.apply({"params": params}, tok, cache, i))
    logits, cache = step(toks[:, :4], net.init_cache(3), 0)  # prefill 4 tokens, then one at a time
    out = [logits]
    for i in range(4, 12):
        logits, cache = step(toks[:, i : i + 1], cache, i)
        out.append(logits)
    np.testing.assert_allclose(np.concatenate(out, axis=1), full, rtol=1e-5, atol=1e-5)


def test_cached_and_uncached_decoding_draw_the_same_tokens():
    net = _net()
    params = net.init(jax.random.PRNGKey(1), jnp.zeros((1, 12), jnp.int32))["params"]
    prompt = jnp.array([[3, 4], [5, 6]], jnp.int32)
    for kw in (dict(temperature=0.7, top_k=5, top_p=0.9), dict(temperature=0.0)):
        a = decode(net, params, prompt, 11, jax.random.PRNGKey(2), cached=True, **kw)
        b = decode(net, params, prompt, 11, jax.random.PRNGKey(2), cached=False, **kw)
        assert a.shape == (2, 13) and np.array_equal(a[:, :2], prompt)
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="max_len"):
        decode(net, params, prompt, 12, jax.random.PRNGKey(2))


def test_changing_token_i_never_changes_earlier_logits():
    net = _net(max_len=16)
    toks = jax.random.randint(jax.random.PRNGKey(0), (2, 16), 0, 20)
    params = net.init(jax.random.PRNGKey(1), toks)["params"]
    base, _ = net.apply({"params": params}, toks)
    for i in (0, 5, 15):
        changed, _ = net.apply({"params": params}, toks.at[:, i].set((toks[:, i] + 7) % 20))
        np.testing.assert_allclose(changed[:, :i], base[:, :i], rtol=0, atol=1e-6)
        assert np.abs(np.asarray(changed[:, i:] - base[:, i:])).max() > 1e-4


def test_filter_logits_top_k_top_p_and_greedy():
    logits = jnp.log(jnp.array([[0.5, 0.05, 0.3, 0.15]]))
    keep = lambda out: np.isfinite(np.asarray(out))[0].tolist()  # noqa: E731
    assert keep(filter_logits(logits, top_k=2)) == [True, False, True, False]
    assert keep(filter_logits(logits, top_p=0.5)) == [True, False, False, False]
    assert keep(filter_logits(logits, top_p=0.81)) == [True, False, True, True]
    assert keep(filter_logits(logits, top_p=0.79)) == [True, False, True, False]
    np.testing.assert_allclose(
        jax.nn.softmax(filter_logits(logits, temperature=0.5)),
        np.array([[0.25, 0.0025, 0.09, 0.0225]]) / 0.365,
        rtol=1e-5,
    )
    counts = np.bincount(
        np.asarray(
            jax.random.categorical(jax.random.PRNGKey(0), filter_logits(logits, top_k=2), shape=(20000, 1))
        ).ravel(),
        minlength=4,
    )
    np.testing.assert_allclose(counts / 20000, [0.625, 0, 0.375, 0], atol=0.015)


def _text_method(vocab, seq_len, d_model=32, num_layers=1, lr=3e-3, steps=300):
    c = base_config()
    d = Autoregressive.defaults()
    c.method, c.model, c.optim = d.method, d.model, d.optim
    c.model.d_model, c.model.num_layers, c.model.num_heads = d_model, num_layers, 2
    c.optim.learning_rate, c.optim.warmup_steps = lr, 20
    c.train.steps = steps
    info = TextInfo("chain", (seq_len,), 0, 1, 1, vocab_size=vocab, seq_len=seq_len)
    return Autoregressive(c, info)


def test_a_uniform_model_has_perplexity_equal_to_the_vocabulary_size():
    m = _text_method(vocab=13, seq_len=16)
    tokens = jax.random.randint(jax.random.PRNGKey(0), (4, 17), 0, 13)
    params, _ = m.init_variables(jax.random.PRNGKey(1), None)
    params["head"] = jax.tree.map(jnp.zeros_like, params["head"])  # logits 0: the uniform distribution
    out = jax.jit(m.eval_step)(params, {}, {"tokens": tokens}, jax.random.PRNGKey(2))
    avg = {k: float(np.mean(v)) for k, v in out.items()}
    assert m.derived_eval_metrics(avg)["perplexity"] == pytest.approx(13.0, rel=1e-6)
    assert avg["bpc"] == pytest.approx(math.log2(13), rel=1e-6)


def _markov_chain(seed=0, vocab=6):
    rng = np.random.default_rng(seed)
    trans = rng.dirichlet(np.full(vocab, 0.3), size=vocab)  # rows: P(next | current)
    evals, evecs = np.linalg.eig(trans.T)
    pi = np.real(evecs[:, np.argmin(np.abs(evals - 1))])
    pi = pi / pi.sum()
    rate = -np.sum(pi[:, None] * trans * np.log(trans))  # nats per token
    return trans, pi, rate


def _chain_tokens(trans, pi, num, length, seed):
    rng = np.random.default_rng(seed)
    x = np.zeros((num, length), np.int32)
    x[:, 0] = rng.choice(len(pi), size=num, p=pi)
    cum = np.cumsum(trans, axis=1)
    for t in range(1, length):
        u = rng.random(num)
        x[:, t] = np.minimum((u[:, None] > cum[x[:, t - 1]]).sum(axis=1), len(pi) - 1)
    return x


def test_markov_chain_exact_logits_score_the_entropy_rate_and_a_trained_model_gets_within_5_percent():
    trans, pi, rate = _markov_chain()
    test = _chain_tokens(trans, pi, 400, 33, seed=1)
    exact_logits = jnp.log(jnp.asarray(trans, jnp.float32))[test[:, :-1]]  # [N, 32, V]
    ppl_exact = math.exp(float(jnp.mean(token_nll(exact_logits, jnp.asarray(test[:, 1:])))))
    assert ppl_exact == pytest.approx(math.exp(rate), rel=0.01)

    m = _text_method(vocab=6, seq_len=32)
    train = TextSource(_chain_tokens(trans, pi, 1, 32 * 2000 + 1, seed=2)[0], 32)
    state = jax.jit(m.init_state)(jax.random.PRNGKey(0), None)
    step = jax.jit(lambda s, b: m.train_step(s, b, jax.random.fold_in(s.key, s.step)))
    rng = np.random.default_rng(3)
    for _ in range(m.config.train.steps):
        idx = rng.integers(0, len(train), 32)
        state, _ = step(state, {"tokens": np.stack([train[int(i)]["tokens"] for i in idx])})
    out = m.eval_step(state.params, {}, {"tokens": jnp.asarray(test)}, jax.random.PRNGKey(0))
    ppl_model = m.derived_eval_metrics({"nll": float(np.mean(out["nll"]))})["perplexity"]
    assert ppl_model == pytest.approx(math.exp(rate), rel=0.05), (ppl_model, math.exp(rate))


def test_quantize_levels():
    images = jnp.array([0, 1, 127, 128, 255], jnp.float32).reshape(1, 5, 1, 1) / 255.0
    np.testing.assert_array_equal(quantize(images, 256)[0], [0, 1, 127, 128, 255])
    np.testing.assert_array_equal(quantize(images, 2)[0], [0, 0, 0, 1, 1])
    np.testing.assert_array_equal(quantize(images, 4)[0], [0, 0, 1, 2, 3])


def _pixel_config(steps=4):
    c = tiny_config("autoregressive", steps=steps)
    d = Autoregressive.defaults()
    c.method, c.model, c.optim = d.method, d.model, d.optim
    c.model.d_model, c.model.num_layers, c.model.num_heads = 16, 1, 2
    c.method.levels = 16
    c.data.batch_size = 16
    c.train.num_eval_examples = 32
    c.train.eval_batch_size = 16
    return c


def test_pixel_model_trains_evaluates_and_samples(tmp_path):
    c = _pixel_config(steps=4)
    c.train.sample_every = 4
    final = train_and_evaluate(c, str(tmp_path))
    assert {"nll", "bpd", "bpd_conditional"} <= set(final)
    # the conditional bound adds exactly log2(10) / D bits per dimension
    assert final["bpd"] - final["bpd_conditional"] == pytest.approx(math.log2(10) / 64, rel=1e-4)
    assert 0 < final["bpd_conditional"] < math.log2(16) + 0.5
    assert (tmp_path / "samples" / "samples_step_0000004.png").exists()
    run = load_run(str(tmp_path))
    method, state = run.method, run.state
    images, nfe = method.generate(
        state.ema_params, state.model_state, jax.random.PRNGKey(0), 3, labels=jnp.array([1, 2, 3])
    )
    assert images.shape == (3, 8, 8, 1) and nfe == 64
    assert set(np.unique(np.round(np.asarray(images) * 15))) <= set(range(16))


def _text_config(steps):
    c = _pixel_config(steps)
    c.name = "tiny_charlm"
    c.data.name, c.data.seq_len, c.data.text_unit, c.data.batch_size = "pydoc_text", 16, "char", 8
    c.train.log_every = 1
    return c


def test_text_model_resumes_bitwise_and_generates_text(tmp_path):
    final = train_and_evaluate(_text_config(6), str(tmp_path / "a"))
    assert {"nll", "bpc"} <= set(final) and 0 < final["bpc"] < math.log2(103) + 2  # 6 steps: near uniform
    train_and_evaluate(_text_config(3), str(tmp_path / "b"))
    train_and_evaluate(_text_config(6), str(tmp_path / "b"))
    last = [read_metrics(str(tmp_path / run), "train")[-1]["loss"] for run in ("a", "b")]
    assert last[0] == last[1]
    run_a = load_run(str(tmp_path / "a"))
    method, sa = run_a.method, run_a.state
    sb = load_run(str(tmp_path / "b")).state
    for u, v in zip(jax.tree.leaves(sa), jax.tree.leaves(sb)):
        np.testing.assert_array_equal(np.asarray(u), np.asarray(v))
    texts = method.generate_text(sa.ema_params, jax.random.PRNGKey(0), "def ", num_samples=2, num_tokens=8)
    assert len(texts) == 2 and all(len(t) == 8 for t in texts)
    with pytest.raises(ValueError, match="not in the model's alphabet"):
        method.generate_text(sa.ema_params, jax.random.PRNGKey(0), "\u00e9t\u00e9", num_tokens=4)


def test_bad_config_values_name_the_field():
    for field, value, match in (
        ("method.levels", 1, "method.levels"),
        ("method.top_p", 0.0, "method.top_p"),
        ("model.d_model", 30, "model.d_model"),
        ("model.positions", "alibi", "positions"),
    ):
        c = _pixel_config()
        section, key = field.split(".")
        c[section][key] = value
        with pytest.raises(ConfigError, match=match):
            Autoregressive.check(c)


def test_unconditional_pixel_model_reports_the_exact_bits_per_dim():
    from jgen.data import get_source

    c = _pixel_config()
    c.method.conditional = False
    train, _, info = get_source(c.data)
    m = Autoregressive(c, info)
    batch = {"image": jnp.asarray(train.images[:4]), "label": jnp.asarray(train.labels[:4])}
    params, _ = m.init_variables(jax.random.PRNGKey(0), batch)
    inputs, targets = m.sequences(batch)
    assert np.all(np.asarray(inputs[:, 0]) == 16) and np.array_equal(inputs[:, 1:], targets[:, :-1])
    out = jax.jit(m.eval_step)(params, {}, batch, jax.random.PRNGKey(1))
    assert set(out) == {"nll", "bpd"}
    np.testing.assert_allclose(out["bpd"], out["nll"] / (64 * math.log(2)), rtol=1e-6)
    with pytest.raises(ValueError, match="unconditional"):  # the one generation path checks labels at the door
        generate(m, params, {}, 2, seed=0, labels=[1, 2])


def test_text_run_from_the_command_line_and_in_compare(tmp_path, capsys):
    import json

    from jgen import cli
    from jgen.compare import compare_workdirs

    workdir = str(tmp_path / "lm")
    train_and_evaluate(_text_config(3), workdir)
    assert (
        cli.run_command(
            [
                "sample",
                "--workdir",
                workdir,
                "--prompt",
                "def ",
                "--num_tokens",
                "6",
                "--num_samples",
                "2",
                "--temperature",
                "0.5",
            ]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["prompt"] == "def " and len(out["samples"]) == 2 and all(len(t) == 6 for t in out["samples"])
    assert cli.run_command(["sample", "--workdir", workdir]) == cli.EXIT_BAD_INPUT
    assert "pass --prompt" in capsys.readouterr().err
    assert cli.run_command(["sample", "--workdir", workdir, "--prompt", "def ", "--top_p", "0"]) == 2
    assert "top_p=0.0: must be in (0, 1]" in capsys.readouterr().err
    assert cli.run_command(["eval", "--workdir", workdir]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores["perplexity"] == pytest.approx(math.exp(scores["nll"]), rel=1e-6)
    md = compare_workdirs([workdir], str(tmp_path / "out"))
    row = json.loads((tmp_path / "out" / "compare_text.json").read_text())[0]
    assert row["perplexity"] > 1 and row["bits_per_char"] > 0 and row["tokens_per_sec"] > 0
    assert "| lm | autoregressive | 3 |" in md
