"""PyTorch twins of jgen's diffusion UNet (ddpm_mnist, ddpm_cifar10) and vae_mnist VAE, and the PyTorch worker of
`vs_pytorch.py`.

The twins are written the way a PyTorch user would write them (NCHW, nn.Conv2d/nn.Linear/nn.GroupNorm/nn.Dropout,
F.scaled_dot_product_attention, torch.optim.Adam, clip_grad_norm_, a foreach EMA) and load jgen's weights:
flax kernels [kh, kw, in, out] become [out, in, kh, kw], Dense kernels are transposed, and the VAE's
flatten/unflatten Dense layers are permuted from NHWC to NCHW order. jgen's 'SAME' stride-2 convolutions pad
(0, 1) on each spatial axis, so the twins pad explicitly before those convolutions. One `UNet` class serves both
diffusion configs: conditional or not (num_classes 0), with or without dropout, any sizes.

Run as a worker by vs_pytorch.py (`python torch_twins.py --worker`): it reads JSON commands on stdin, loads
the weights, inputs and reference outputs the jgen worker wrote, asserts equal outputs (forward pass, one full
train step with the same random draws, the DDIM sampler) and then times the same cases. In vs_pytorch.py's
`--net cifar` flow (`TrainStepBench`) the worker runs on a device (cpu or cuda) in one of `TORCH_MODES`: eager or
`torch.compile`d, float32 (TF32 matmuls and convolutions on cuda) or bfloat16 autocast. Needs torch
(benchmarks/requirements-torch.txt); jgen itself never imports this file.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# -- networks ---------------------------------------------------------------------------------------------


def groups(channels: int, max_groups: int = 32, min_group_size: int = 4) -> int:
    """jgen.nn.unet._groups: the largest group count <= 32 dividing `channels` with groups of >= 4 channels."""
    top = max(1, min(max_groups, channels // min_group_size))
    return max(g for g in range(1, top + 1) if channels % g == 0)


def group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(groups(channels), channels, eps=1e-6)  # flax's GroupNorm epsilon


def timestep_embedding(t: torch.Tensor, dim: int, scale: float = 1000.0, max_period: float = 10000.0):
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = scale * t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=-1)
    return F.pad(emb, (0, dim % 2))


def same_conv_stride2(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """A 3x3 stride-2 convolution with XLA's 'SAME' padding on even sizes: 0 before, 1 after."""
    return conv(F.pad(x, (0, 1, 0, 1)))


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, emb_dim: int, dropout: float = 0.0):
        super().__init__()
        self.norm0, self.conv0 = group_norm(cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.dense = nn.Linear(emb_dim, cout)
        self.norm1, self.conv1 = group_norm(cout), nn.Conv2d(cout, cout, 3, padding=1)
        self.drop = nn.Dropout(dropout) if dropout else None
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x, emb):
        h = self.conv0(F.silu(self.norm0(x)))
        h = h + self.dense(F.silu(emb))[:, :, None, None]
        h = F.silu(self.norm1(h))
        h = self.conv1(h if self.drop is None else self.drop(h))
        return (x if self.skip is None else self.skip(x)) + h


class AttentionBlock(nn.Module):
    def __init__(self, c: int, num_heads: int):
        super().__init__()
        self.norm, self.heads = group_norm(c), num_heads
        self.q, self.k, self.v, self.out = (nn.Linear(c, c) for _ in range(4))

    def forward(self, x):
        b, c, hgt, wid = x.shape
        h = self.norm(x).flatten(2).transpose(1, 2)  # [B, HW, C]

        def heads(t):
            return t.view(b, hgt * wid, self.heads, c // self.heads).transpose(1, 2)

        a = F.scaled_dot_product_attention(heads(self.q(h)), heads(self.k(h)), heads(self.v(h)))
        a = self.out(a.transpose(1, 2).reshape(b, hgt * wid, c))
        return x + a.transpose(1, 2).view(b, c, hgt, wid)


class UNet(nn.Module):
    """jgen.nn.unet.UNet in NCHW. Modules are created in flax's order, so `convs[k]` is flax's Conv_k,
    `blocks[k]` ResBlock_k and `attns[k]` AttentionBlock_k. `num_classes` 0: unconditional; `dropout`: in every
    residual block, before its second convolution (jgen's place for it)."""

    def __init__(
        self,
        in_channels: int,
        resolution: int,
        channels: int,
        channel_mult,
        num_res_blocks: int,
        attention_resolutions,
        num_heads: int,
        num_classes: int,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.channels, self.mult, self.nres = channels, tuple(channel_mult), num_res_blocks
        self.attn_res, self.num_classes = tuple(attention_resolutions), num_classes
        emb_dim = 4 * channels
        self.emb0, self.emb1 = nn.Linear(channels, emb_dim), nn.Linear(emb_dim, emb_dim)
        self.embed = nn.Embedding(num_classes + 1, emb_dim) if num_classes else None
        self.convs, self.blocks, self.attns = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        conv = lambda cin, cout: self.convs.append(nn.Conv2d(cin, cout, 3, padding=1))  # noqa: E731
        conv(in_channels, channels)
        chans, c, res = [channels], channels, resolution
        for level, m in enumerate(self.mult):
            for _ in range(num_res_blocks):
                self.blocks.append(ResBlock(c, channels * m, emb_dim, dropout))
                c = channels * m
                if res in self.attn_res:
                    self.attns.append(AttentionBlock(c, num_heads))
                chans.append(c)
            if level != len(self.mult) - 1:
                self.convs.append(nn.Conv2d(c, c, 3, stride=2))  # padded by same_conv_stride2
                chans.append(c)
                res //= 2
        self.blocks.append(ResBlock(c, c, emb_dim, dropout))
        self.attns.append(AttentionBlock(c, num_heads))
        self.blocks.append(ResBlock(c, c, emb_dim, dropout))
        for level, m in reversed(list(enumerate(self.mult))):
            for _ in range(num_res_blocks + 1):
                self.blocks.append(ResBlock(c + chans.pop(), channels * m, emb_dim, dropout))
                c = channels * m
                if res in self.attn_res:
                    self.attns.append(AttentionBlock(c, num_heads))
            if level != 0:
                conv(c, c)
                res *= 2
        self.out_norm = group_norm(c)
        conv(c, in_channels)

    def forward(self, x, t, labels=None):
        emb = self.emb1(F.silu(self.emb0(timestep_embedding(t, self.channels))))
        if self.embed is not None:
            if labels is None:
                labels = torch.full((x.shape[0],), self.num_classes, dtype=torch.long, device=x.device)
            emb = emb + self.embed(labels)
        blocks, attns, convs = iter(self.blocks), iter(self.attns), iter(self.convs)
        h = next(convs)(x)
        skips = [h]
        levels = len(self.mult)
        for level in range(levels):
            for _ in range(self.nres):
                h = next(blocks)(h, emb)
                if h.shape[2] in self.attn_res:
                    h = next(attns)(h)
                skips.append(h)
            if level != levels - 1:
                h = same_conv_stride2(next(convs), h)
                skips.append(h)
        h = next(attns)(next(blocks)(h, emb))
        h = next(blocks)(h, emb)
        for level in reversed(range(levels)):
            for _ in range(self.nres + 1):
                h = next(blocks)(torch.cat([h, skips.pop()], 1), emb)
                if h.shape[2] in self.attn_res:
                    h = next(attns)(h)
            if level != 0:
                h = next(convs)(F.interpolate(h, scale_factor=2, mode="nearest"))
        return next(convs)(F.silu(self.out_norm(h)))


class ConvVAE(nn.Module):
    """jgen.nn.conv.ConvEncoder + ConvDecoder (model.kind = "conv") in NCHW."""

    def __init__(self, shape, features, hidden: int, code_dim: int, latent_dim: int, out_channels: int):
        super().__init__()
        height, width, cin = shape
        n = len(features)
        self.h0, self.w0, self.f_last, self.latent_dim = height // 2**n, width // 2**n, features[-1], latent_dim
        flat = self.h0 * self.w0 * features[-1]
        self.enc_convs = nn.ModuleList()
        c = cin
        for f in features:
            self.enc_convs.append(nn.Conv2d(c, f, 3, stride=2))
            c = f
        self.enc_d0, self.enc_d1 = nn.Linear(flat, hidden), nn.Linear(hidden, code_dim)
        self.dec_d0, self.dec_d1 = nn.Linear(latent_dim, hidden), nn.Linear(hidden, flat)
        self.dec_convs = nn.ModuleList()
        for f in reversed(features):
            self.dec_convs.append(nn.Conv2d(c, f, 3, padding=1))
            c = f
        self.dec_convs.append(nn.Conv2d(c, out_channels, 3, padding=1))

    def encode(self, x):
        h = x
        for conv in self.enc_convs:
            h = F.silu(same_conv_stride2(conv, h))
        return self.enc_d1(F.silu(self.enc_d0(h.flatten(1))))

    def decode(self, z):
        h = F.silu(self.dec_d1(F.silu(self.dec_d0(z))))
        h = h.view(z.shape[0], self.f_last, self.h0, self.w0)
        for conv in self.dec_convs[:-1]:
            h = F.silu(conv(F.interpolate(h, scale_factor=2, mode="nearest")))
        return self.dec_convs[-1](h)

    def forward(self, x):
        return self.decode(self.encode(x)[:, : self.latent_dim])


# -- loading jgen's weights --------------------------------------------------------------------------------


def _t(a) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))


def _conv(m: nn.Conv2d, p: dict) -> None:
    m.weight.data.copy_(_t(np.transpose(p["kernel"], (3, 2, 0, 1))))
    m.bias.data.copy_(_t(p["bias"]))


def _dense(m: nn.Linear, p: dict) -> None:
    m.weight.data.copy_(_t(p["kernel"].T))
    m.bias.data.copy_(_t(p["bias"]))


def _norm(m: nn.GroupNorm, p: dict) -> None:
    m.weight.data.copy_(_t(p["scale"]))
    m.bias.data.copy_(_t(p["bias"]))


def _heads_dense(m: nn.Linear, p: dict) -> None:
    k = p["kernel"]  # [C, heads, head_dim]
    m.weight.data.copy_(_t(k.reshape(k.shape[0], -1).T))
    m.bias.data.copy_(_t(p["bias"].reshape(-1)))


def load_unet(net: UNet, params: dict) -> None:
    """Copy jgen's UNet parameters (flax names Conv_k, Dense_k, ResBlock_k, ...) into the twin."""
    for name, p in params.items():
        kind, _, idx = name.rpartition("_")
        idx = int(idx)
        if kind == "Conv":
            _conv(net.convs[idx], p)
        elif kind == "Dense":
            _dense([net.emb1, net.emb0][idx], p)  # flax names the outer Dense of Dense(silu(Dense(e))) first
        elif kind == "Embed":
            net.embed.weight.data.copy_(_t(p["embedding"]))
        elif kind == "GroupNorm":
            _norm(net.out_norm, p)
        elif kind == "ResBlock":
            b = net.blocks[idx]
            _norm(b.norm0, p["GroupNorm_0"])
            _conv(b.conv0, p["Conv_0"])
            _dense(b.dense, p["Dense_0"])
            _norm(b.norm1, p["GroupNorm_1"])
            _conv(b.conv1, p["Conv_1"])
            if b.skip is not None:
                _conv(b.skip, p["Conv_2"])
        elif kind == "AttentionBlock":
            a, mha = net.attns[idx], p["MultiHeadDotProductAttention_0"]
            _norm(a.norm, p["GroupNorm_0"])
            for lin, key in ((a.q, "query"), (a.k, "key"), (a.v, "value")):
                _heads_dense(lin, mha[key])
            k = mha["out"]["kernel"]  # [heads, head_dim, C]
            _dense(a.out, {"kernel": k.reshape(-1, k.shape[-1]), "bias": mha["out"]["bias"]})
        else:
            raise KeyError(f"unexpected jgen parameter {name}")
    _check_all_loaded(net, params)


def _vae_layers(net: ConvVAE, params: dict):
    """(module, loader, flax dict) for every layer of the VAE, with NHWC<->NCHW permutations applied."""
    enc, dec = params["net"]["encoder"], params["net"]["decoder"]
    c, h0, w0 = net.f_last, net.h0, net.w0
    k = enc["Dense_0"]["kernel"]  # [(h, w, c), hidden] -> rows in (c, h, w) order
    enc_d0 = {
        "kernel": k.reshape(h0, w0, c, -1).transpose(2, 0, 1, 3).reshape(h0 * w0 * c, -1),
        "bias": enc["Dense_0"]["bias"],
    }
    k = dec["Dense_1"]["kernel"]  # [hidden, (h, w, c)] -> columns in (c, h, w) order
    dec_d1 = {
        "kernel": k.reshape(-1, h0, w0, c).transpose(0, 3, 1, 2).reshape(k.shape[0], -1),
        "bias": dec["Dense_1"]["bias"].reshape(h0, w0, c).transpose(2, 0, 1).reshape(-1),
    }
    layers = [(m, _conv, enc[f"Conv_{i}"]) for i, m in enumerate(net.enc_convs)]
    layers += [
        (net.enc_d0, _dense, enc_d0),
        (net.enc_d1, _dense, enc["Dense_1"]),
        (net.dec_d0, _dense, dec["Dense_0"]),
        (net.dec_d1, _dense, dec_d1),
    ]
    layers += [(m, _conv, dec[f"Conv_{i}"]) for i, m in enumerate(net.dec_convs)]
    return layers


def load_vae(net: ConvVAE, params: dict) -> None:
    for module, loader, p in _vae_layers(net, params):
        loader(module, p)
    _check_all_loaded(net, params)


def _check_all_loaded(net: nn.Module, params: dict) -> None:
    n_jgen = sum(int(np.prod(a.shape)) for a in _leaves(params))
    n_torch = sum(p.numel() for p in net.parameters())
    if n_jgen != n_torch:
        raise AssertionError(f"parameter count differs: jgen {n_jgen:,} vs twin {n_torch:,}")


def _leaves(tree):
    if isinstance(tree, dict):
        for v in tree.values():
            yield from _leaves(v)
    else:
        yield tree


def converted_like(net: nn.Module, loader, tree: dict) -> list[torch.Tensor]:
    """Any pytree shaped like jgen's params (Adam moments, EMA) in the twin's layout, in net.parameters() order:
    load it into a scratch copy of the net with the same loader."""
    import copy

    scratch = copy.deepcopy(net)
    loader(scratch, tree)
    return [p.detach().clone() for p in scratch.parameters()]


# -- training, as a PyTorch user writes it ---------------------------------------------------------------


def lr_schedule(step: int, lr: float, warmup: int, total: int, kind: str) -> float:
    """jgen.train.optim.make_schedule: linear warmup from 0, then constant or cosine decay to 0 at `total`."""
    if warmup > 0 and step < warmup:
        return lr * step / warmup
    if kind == "constant":
        return lr
    s, n = step - max(warmup, 0), max(total - warmup, 1)
    return lr * 0.5 * (1 + math.cos(math.pi * min(s, n) / n))


class Trainer:
    """Adam (torch.optim.Adam), global-norm clipping (clip_grad_norm_), EMA with jgen's warm-up (foreach lerp).
    `adam_kw` goes to torch.optim.Adam (e.g. fused=True on cuda)."""

    def __init__(self, net: nn.Module, optim: dict, ema_decay: float, total_steps: int, **adam_kw):
        self.net, self.o, self.decay, self.total = net, optim, ema_decay, total_steps
        self.params = list(net.parameters())
        self.opt = torch.optim.Adam(
            self.params, lr=optim["learning_rate"], betas=(optim["b1"], optim["b2"]), eps=optim["eps"], **adam_kw
        )
        self.fused = bool(adam_kw.get("fused"))
        self.ema = [p.detach().clone() for p in self.params]
        self.step = 0

    def load_state(self, step: int, mu: list[torch.Tensor], nu: list[torch.Tensor], ema: list[torch.Tensor]):
        self.step = step
        for p, m, v in zip(self.params, mu, nu):
            count = torch.tensor(float(step), device=p.device if self.fused else "cpu")  # fused Adam: on the device
            self.opt.state[p] = {"step": count, "exp_avg": m.clone(), "exp_avg_sq": v.clone()}
        self.ema = [e.clone() for e in ema]

    def train_step(self, loss_fn):
        for g in self.opt.param_groups:
            g["lr"] = lr_schedule(
                self.step, self.o["learning_rate"], self.o["warmup_steps"], self.total, self.o["schedule"]
            )
        self.opt.zero_grad(set_to_none=True)
        loss, metrics = loss_fn()
        loss.backward()
        if self.o["grad_clip"] > 0:
            grad_norm = torch.nn.utils.clip_grad_norm_(self.params, self.o["grad_clip"])
        else:
            grad_norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in self.params]))
        self.opt.step()
        d = min(self.decay, (1.0 + self.step) / (10.0 + self.step))
        with torch.no_grad():
            torch._foreach_lerp_(self.ema, self.params, 1.0 - d)
        self.step += 1
        return {"loss": loss.detach(), "grad_norm": grad_norm.detach(), **metrics}


def ddpm_loss(net, images, labels, alphas, sigmas, label_dropout, null_label, draws=None):
    """jgen's diffusion loss (eps prediction, "simple" weighting, label dropout). `draws` fixes the random
    step indices, noise and dropped labels (the equality check); otherwise they are drawn with torch's RNG.
    `net(x_t, t, labels)`: the UNet or a wrapper of it; `labels` None for an unconditional one."""
    x0 = images * 2.0 - 1.0
    b = x0.shape[0]
    if draws is None:
        idx = torch.randint(0, alphas.shape[0], (b,), device=x0.device)
        eps = torch.randn_like(x0)
        if labels is not None:
            labels = torch.where(torch.rand(b, device=x0.device) < label_dropout, null_label, labels)
    else:
        idx, eps, labels = draws
    t = (idx.float() + 1.0) / alphas.shape[0]
    a, s = alphas[idx][:, None, None, None], sigmas[idx][:, None, None, None]
    x_t = a * x0 + s * eps
    pred = net(x_t, t, labels)
    sq = ((pred - eps) ** 2).mean(dim=(1, 2, 3))
    return sq.mean(), {"mse_eps": sq.detach().mean()}


def vae_loss(net: ConvVAE, images, beta: float, draws=None):
    """jgen's VAE loss: dequantised pixels, logistic decoder (mean = sigmoid, log scale floored at log 1e-3)."""
    if draws is None:
        u, eps = torch.rand_like(images), None
    else:
        u, eps = draws
    x = (torch.round(images * 255.0) + u) / 256.0
    code = net.encode(images)
    mean, logvar = code[:, : net.latent_dim], code[:, net.latent_dim :]
    if eps is None:
        eps = torch.randn_like(mean)
    z = mean + torch.exp(0.5 * logvar) * eps
    logits = net.decode(z)
    c = images.shape[1]
    m, log_scale = torch.sigmoid(logits[:, :c]), torch.clamp_min(logits[:, c:], math.log(1e-3))
    u_ = (x - m) * torch.exp(-log_scale)
    rec = (-u_ - log_scale - 2.0 * F.softplus(-u_)).sum(dim=(1, 2, 3))
    kl = (0.5 * (torch.exp(logvar) + mean**2 - 1.0 - logvar)).sum(dim=1)
    elbo = rec - kl
    return (-rec + beta * kl).mean(), {"elbo": elbo.detach().mean(), "kl": kl.detach().mean()}


@torch.inference_mode()
def ddim(net: UNet, noise, labels, times, alphas, sigmas, clip: bool = True, eta: float = 0.0):
    """DDIM on jgen's grid: `times` [N], `alphas`/`sigmas` [N + 1] with the clean end point (1, 0) last."""
    x = noise
    for i in range(times.shape[0]):
        a_t, s_t, a_s, s_s = alphas[i], sigmas[i], alphas[i + 1], sigmas[i + 1]
        eps = net(x, times[i].expand(x.shape[0]), labels)
        x0 = (x - s_t * eps) / a_t
        if clip:
            x0 = x0.clamp(-1.0, 1.0)
            eps = (x - a_t * x0) / s_t
        c = eta * (s_s / s_t) * torch.sqrt(torch.clamp_min(1.0 - (a_t / a_s) ** 2, 0.0))
        x = a_s * x0 + torch.sqrt(torch.clamp_min(s_s**2 - c**2, 0.0)) * eps
        if eta > 0:
            x = x + c * torch.randn_like(x)
    return x


# -- the worker ------------------------------------------------------------------------------------------


def nchw(a: np.ndarray) -> torch.Tensor:
    return _t(np.transpose(a, (0, 3, 1, 2)))


def rel_l2(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def _flat(tensors) -> np.ndarray:
    return np.concatenate([t.detach().float().cpu().numpy().ravel() for t in tensors])


class Bench:
    """Builds the twins from the files the jgen worker wrote, checks them, and times named cases."""

    def __init__(self, ref_dir: str, tolerance: float):
        self.ref_dir, self.tol = ref_dir, tolerance
        self.cases, self.checks = {}, {}

    def _load(self, name):
        with open(os.path.join(self.ref_dir, f"{name}.json")) as f:
            meta = json.load(f)
        arrays = dict(np.load(os.path.join(self.ref_dir, f"{name}.npz")))
        return meta, arrays

    @staticmethod
    def _tree(arrays: dict, prefix: str) -> dict:
        """Arrays saved as 'prefix/a/b/c' -> nested dict."""
        out = {}
        for k, v in arrays.items():
            if not k.startswith(prefix + "/"):
                continue
            d = out
            parts = k[len(prefix) + 1 :].split("/")
            for p in parts[:-1]:
                d = d.setdefault(p, {})
            d[parts[-1]] = v
        return out

    def _check(self, what: str, err: float, tol: float | None = None) -> None:
        tol = self.tol if tol is None else tol
        self.checks[what] = err
        if not err <= tol:
            raise AssertionError(f"twin differs from jgen: {what} relative L2 error {err:.3g} > {tol:g}")

    def _trainer(self, net, loader, meta, arrays, **adam_kw):
        tr = Trainer(net, meta["optim"], meta["ema_decay"], meta["total_steps"], **adam_kw)
        for s in (0, 50, meta["optim"]["warmup_steps"] + 7):  # the schedule matches jgen's at a few steps
            self._check(
                f"lr schedule at step {s}",
                abs(
                    lr_schedule(
                        s,
                        meta["optim"]["learning_rate"],
                        meta["optim"]["warmup_steps"],
                        meta["total_steps"],
                        meta["optim"]["schedule"],
                    )
                    - meta["lr_at"][str(s)]
                )
                / meta["optim"]["learning_rate"],
                1e-6,
            )
        mu = converted_like(net, loader, self._tree(arrays, "mu"))
        nu = converted_like(net, loader, self._tree(arrays, "nu"))
        ema = converted_like(net, loader, self._tree(arrays, "ema"))
        tr.load_state(meta["step"], mu, nu, ema)
        return tr

    def _check_step(self, name, tr, loss_fn, meta, arrays, loader):
        out = tr.train_step(loss_fn)
        self._check(f"{name} train-step loss", rel_l2(out["loss"].item(), meta["next_loss"]))
        self._check(f"{name} train-step grad norm", rel_l2(out["grad_norm"].item(), meta["next_grad_norm"]))
        scratch_params = converted_like(tr.net, loader, self._tree(arrays, "next_params"))
        scratch_prev = converted_like(tr.net, loader, self._tree(arrays, "params"))
        delta_t = _flat(tr.params) - _flat(scratch_prev)
        delta_j = _flat(scratch_params) - _flat(scratch_prev)
        # Adam divides by sqrt(nu), which magnifies float-level gradient differences where nu is small, and
        # clip_grad_norm_ divides by (norm + 1e-6) where optax divides by the norm: a looser bound here.
        self._check(f"{name} train-step parameter update", rel_l2(delta_t, delta_j), 10 * self.tol)
        ema_j = converted_like(tr.net, loader, self._tree(arrays, "next_ema"))
        self._check(f"{name} train-step EMA", rel_l2(_flat(tr.ema), _flat(ema_j)))

    def setup_unet(self):
        meta, arr = self._load("unet")
        m = meta["model"]
        net = UNet(
            m["in_channels"],
            m["resolution"],
            m["channels"],
            m["channel_mult"],
            m["num_res_blocks"],
            m["attention_resolutions"],
            m["num_heads"],
            m["num_classes"],
        )
        params = self._tree(arr, "params")
        load_unet(net, params)
        images, labels = nchw(arr["images"]), torch.from_numpy(arr["labels"]).long()
        alphas, sigmas = _t(arr["alphas"]), _t(arr["sigmas"])
        # forward pass at the jgen worker's inputs
        with torch.inference_mode():
            out = net(nchw(arr["fwd_x"]), _t(arr["fwd_t"]), torch.from_numpy(arr["fwd_labels"]).long())
        self._check("UNet forward", rel_l2(out.numpy().transpose(0, 2, 3, 1), arr["fwd_out"]))
        # DDIM from the same noise
        times, g_alpha, g_sigma = _t(arr["ddim_times"]), _t(arr["ddim_alphas"]), _t(arr["ddim_sigmas"])
        if "ddim_out" in arr:  # written when the sampler is among the timed cases
            x = ddim(net, nchw(arr["ddim_noise"]), labels, times, g_alpha, g_sigma, clip=meta["clip_denoised"])
            self._check("UNet DDIM-20 samples", rel_l2(x.numpy().transpose(0, 2, 3, 1), arr["ddim_out"]), 1e-4)
        # one train step from jgen's state with jgen's random draws
        tr = self._trainer(net, load_unet, meta, arr)
        draws = (
            torch.from_numpy(arr["draw_idx"]).long(),
            nchw(arr["draw_eps"]),
            torch.from_numpy(arr["draw_labels"]).long(),
        )
        null = m["num_classes"]
        self._check_step(
            "UNet",
            tr,
            lambda: ddpm_loss(net, images, labels, alphas, sigmas, meta["label_dropout"], null, draws),
            meta,
            arr,
            load_unet,
        )
        dropout = meta["label_dropout"]
        fwd_x, fwd_t, fwd_l = nchw(arr["fwd_x"]), _t(arr["fwd_t"]), torch.from_numpy(arr["fwd_labels"]).long()
        noise = torch.randn(images.shape)

        def fwd():
            with torch.inference_mode():
                net(fwd_x, fwd_t, fwd_l)

        self.cases["unet_train"] = lambda: tr.train_step(
            lambda: ddpm_loss(net, images, labels, alphas, sigmas, dropout, null)
        )
        self.cases["unet_forward"] = fwd
        self.cases["unet_ddim20"] = lambda: ddim(
            net, noise, labels, times, g_alpha, g_sigma, clip=meta["clip_denoised"]
        )
        return sum(p.numel() for p in net.parameters())

    def setup_vae(self):
        meta, arr = self._load("vae")
        m = meta["model"]
        net = ConvVAE(m["shape"], m["features"], m["hidden"], m["code_dim"], m["latent_dim"], m["out_channels"])
        load_vae(net, self._tree(arr, "params"))
        images = nchw(arr["images"])
        with torch.inference_mode():
            out = net(images)
        self._check("VAE forward", rel_l2(out.numpy().transpose(0, 2, 3, 1), arr["fwd_out"]))
        tr = self._trainer(net, load_vae, meta, arr)
        draws = (nchw(arr["draw_u"]), _t(arr["draw_eps"]))
        beta = meta["beta"]
        self._check_step("VAE", tr, lambda: vae_loss(net, images, beta, draws), meta, arr, load_vae)

        def fwd():
            with torch.inference_mode():
                net(images)

        self.cases["vae_train"] = lambda: tr.train_step(lambda: vae_loss(net, images, beta))
        self.cases["vae_forward"] = fwd
        return sum(p.numel() for p in net.parameters())


# -- the train step on a device (vs_pytorch.py --net cifar) ---------------------------------------------------

TORCH_MODES = ("eager_tf32", "eager_bf16", "compile_tf32", "compile_bf16")


def set_dropout(net: nn.Module, p: float) -> None:
    """Set the rate of every nn.Dropout in `net` (0 turns dropout off while the module stays in train mode)."""
    for m in net.modules():
        if isinstance(m, nn.Dropout):
            m.p = p


class TrainStepBench(Bench):
    """The DDPM train step as a speed-minded PyTorch user runs it, on `device`, in `mode` (one of TORCH_MODES):
    eager or `torch.compile(net)` (default mode), float32 or bfloat16 autocast (convolutions, linear layers and
    attention in bfloat16; parameters, GroupNorm, the loss and the optimizer in float32). On cuda: TF32 matmuls and
    convolutions in every mode (`allow_tf32`; also for the float32 leftovers of autocast, as JAX's default
    precision does), `cudnn.benchmark`, fused Adam. `channels_last`: parameters and inputs in NHWC memory format.

    setup(model, batch): the twin (PyTorch's initialisation) on the device. build(): two forward + backward passes
    on random data with the config's dropout, which compile the timed graph (torch.compile, whose Triton kernels
    are tuned by timing them) and let cudnn.benchmark time its algorithms for every convolution -- the driver calls
    it while no other worker uses the device, and later passes of the same shapes reuse those choices.
    build_off(): the same with dropout at 0 (train mode), the checks' graph for torch.compile: not timed, so it may
    run beside other workers. parity(ref_dir): jgen's weights, Adam state and EMA loaded in place; with dropout at 0
    the forward pass at jgen's inputs and one train step with jgen's random draws, compared with jgen's results;
    all comparisons are made, then AssertionError lists those over their tolerance. prepare(warmup): the config's
    dropout again and the warm-up steps. Each phase reports how many graphs torch.compile compiled in it."""

    def __init__(self, mode: str, device: str, tolerance: float, channels_last: bool):
        super().__init__("", tolerance)
        if mode not in TORCH_MODES:
            raise ValueError(f"unknown torch mode {mode!r}; choose from {TORCH_MODES}")
        self.mode, self.dev = mode, torch.device(device)
        self.compiled, self.bf16 = mode.startswith("compile"), mode.endswith("bf16")
        self.fmt = torch.channels_last if channels_last else torch.contiguous_format
        self.failed: list[str] = []
        self.cuda = self.dev.type == "cuda"
        self.sync = torch.cuda.synchronize if self.cuda else None
        if self.cuda:
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
            torch.backends.cudnn.benchmark = True

    def _check(self, what: str, err: float, tol: float | None = None) -> None:
        tol = self.tol if tol is None else tol
        self.checks[what] = err
        if not err <= tol:
            self.failed.append(f"{what}: relative L2 error {err:.3g} > {tol:g}")

    def _check_step(self, name, tr, loss_fn, meta, arrays, loader):
        super()._check_step(name, tr, loss_fn, meta, arrays, loader)
        # the EMA moves by (1 - decay) (new params - EMA): compare the move, not the (nearly unchanged) EMA
        prev = _flat(converted_like(tr.net, loader, self._tree(arrays, "ema")))
        ema_j = _flat(converted_like(tr.net, loader, self._tree(arrays, "next_ema")))
        self._check(f"{name} train-step EMA change", rel_l2(_flat(tr.ema) - prev, ema_j - prev), 10 * self.tol)

    def _to(self, a) -> torch.Tensor:
        """An NHWC array -> an NCHW tensor on the device, in the bench's memory format."""
        return nchw(a).to(self.dev, memory_format=self.fmt)

    def _run(self, x, t, labels=None):
        """The network as the train step calls it: compiled or not, under bf16 autocast or not."""
        with torch.autocast(self.dev.type, dtype=torch.bfloat16) if self.bf16 else contextlib.nullcontext():
            return self.model(x, t, labels)

    @staticmethod
    def _graphs() -> int:
        """Graphs torch.compile has compiled in this process so far."""
        from torch._dynamo.utils import counters  # local: only needed for this count

        return int(counters["stats"]["unique_graphs"])

    def setup(self, model: dict, batch: int) -> dict:
        m = model
        if m["num_classes"]:
            raise ValueError("the train-step bench is for the unconditional UNet (ddpm_cifar10)")
        self.net = UNet(
            m["in_channels"],
            m["resolution"],
            m["channels"],
            m["channel_mult"],
            m["num_res_blocks"],
            m["attention_resolutions"],
            m["num_heads"],
            m["num_classes"],
            dropout=m["dropout"],
        )
        self.net.to(self.dev, memory_format=self.fmt)
        self.dropout, self.shape = float(m["dropout"]), (batch, m["in_channels"], m["resolution"], m["resolution"])
        self.model = torch.compile(self.net) if self.compiled else self.net
        return {"params": sum(p.numel() for p in self.net.parameters())}

    def _passes(self, dropout: float) -> tuple[float, int]:
        """Two forward + backward passes on random data at this dropout rate: (seconds, graphs compiled)."""
        t0, g0 = time.perf_counter(), self._graphs()
        set_dropout(self.net, dropout)
        x = torch.randn(self.shape, device=self.dev).contiguous(memory_format=self.fmt)
        t = torch.rand(self.shape[0], device=self.dev)
        for _ in range(2):
            self._run(x, t).float().square().mean().backward()
        self.net.zero_grad(set_to_none=True)
        if self.sync:
            self.sync()
        return time.perf_counter() - t0, self._graphs() - g0

    def build(self) -> dict:
        seconds, graphs = self._passes(self.dropout)
        return {"build_s": seconds, "build_graphs": graphs}

    def build_off(self) -> dict:
        seconds, graphs = self._passes(0.0)
        return {"build_off_s": seconds, "build_off_graphs": graphs}

    def parity(self, ref_dir: str) -> dict:
        t0, g0 = time.perf_counter(), self._graphs()
        self.ref_dir = ref_dir
        meta, arr = self._load("cifar")
        net, run = self.net, self._run
        load_unet(net, self._tree(arr, "params"))  # in place: the compiled graph stays valid
        images = self._to(arr["images"])
        alphas, sigmas = _t(arr["alphas"]).to(self.dev), _t(arr["sigmas"]).to(self.dev)
        set_dropout(net, 0.0)  # train mode without dropout: the forward pass equals eval mode's (no batch norm)
        out = run(self._to(arr["fwd_x"]), _t(arr["fwd_t"]).to(self.dev)).detach()
        self._check("UNet forward", rel_l2(out.float().cpu().numpy().transpose(0, 2, 3, 1), arr["fwd_out"]))
        tr = self._trainer(net, load_unet, meta, arr, **({"fused": True} if self.cuda else {}))
        draws = (torch.from_numpy(arr["draw_idx"]).long().to(self.dev), self._to(arr["draw_eps"]), None)
        self._check_step(
            "UNet", tr, lambda: ddpm_loss(run, images, None, alphas, sigmas, 0.0, None, draws), meta, arr, load_unet
        )
        if self.failed:
            raise AssertionError(
                f"{self.mode}: the twin differs from jgen: "
                + "; ".join(self.failed)
                + " | all checks: "
                + ", ".join(f"{k} {v:.3g}" for k, v in self.checks.items())
            )
        self.cases["train"] = lambda: tr.train_step(lambda: ddpm_loss(run, images, None, alphas, sigmas, 0.0, None))
        return {"checks": self.checks, "parity_s": time.perf_counter() - t0, "parity_graphs": self._graphs() - g0}

    def prepare(self, warmup: int) -> dict:
        set_dropout(self.net, self.dropout)
        t0, g0 = time.perf_counter(), self._graphs()
        for _ in range(warmup):
            self.cases["train"]()
        if self.sync:
            self.sync()
        return {"warmup_s": time.perf_counter() - t0, "warmup_graphs": self._graphs() - g0}


def _describe(bench) -> dict:
    if isinstance(bench, TrainStepBench):
        where = torch.cuda.get_device_name(bench.dev) if bench.cuda else f"cpu, {torch.get_num_threads()} threads"
        cuda = f", CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}" if bench.cuda else ""
        return {
            "checks": bench.checks,
            "device_name": where,
            "version": f"PyTorch {torch.__version__}{cuda} ({bench.mode}, "
            f"{'channels_last' if bench.fmt == torch.channels_last else 'NCHW'})",
        }
    threads = torch.get_num_threads()
    return {"checks": bench.checks, "version": f"PyTorch {torch.__version__} (eager, {threads} threads)"}


def worker() -> None:
    """The PyTorch worker: vs_pytorch.py's protocol (`serve`) around `Bench` (`TrainStepBench` for --net cifar)."""
    from vs_pytorch import serve  # local: the driver's module, beside this file (its directory is on sys.path)

    def make_bench(msg):
        if msg.get("threads"):
            torch.set_num_threads(int(msg["threads"]))
        torch.manual_seed(0)
        if msg.get("net") == "cifar":
            return TrainStepBench(msg["mode"], msg["device"], msg["tolerance"], msg["channels_last"])
        return Bench(msg["dir"], msg.get("tolerance", 1e-5))

    serve(make_bench, _describe)


if __name__ == "__main__":
    if sys.argv[1:] != ["--worker"]:
        sys.exit("usage: python benchmarks/torch_twins.py --worker   (started by benchmarks/vs_pytorch.py)")
    worker()
