"""The denoiser: an attention-free chain of ConvNeXt blocks with U-Net-style skips (docs/method.md).

No down- or up-sampling, so any image size works (odd sizes included). The network sees the
integer step index, never the diffusion schedule.
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import nn

from sr_core.config import ModelConfig, preset
from sr_core.runtime.device import autocast_dtype


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of integer steps: B -> B x dim."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device) / max(half - 1, 1))
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([args.sin(), args.cos()], dim=1)
    return nn.functional.pad(emb, (0, dim - emb.shape[1]))


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channel axis of a B x C x H x W tensor."""

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(1, channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type == "cpu" and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
            # NHWC memory on the CPU: channels are the innermost axis, so one fused layer_norm
            # (forward and backward) replaces seven element-wise passes: 5x faster on this
            # project's CPU. Not on CUDA, where its kernel, made for long rows, lost to the
            # element-wise passes on rows of 8-32 channels (an x2 step to 2048^2: 0.52 s
            # against 0.31 s, H100). The same arithmetic: biased variance, eps inside the root.
            c = x.shape[1]
            out = nn.functional.layer_norm(x.permute(0, 2, 3, 1), (c,), self.weight.view(c), self.bias.view(c), self.eps)
            return out.permute(0, 3, 1, 2)
        mean = x.mean(1, keepdim=True)
        var = x.var(1, keepdim=True, unbiased=False)
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


class _DepthwiseBackwardNHWC(torch.autograd.Function):
    """A depthwise k x k convolution (odd k, stride 1, same padding) whose backward is two
    forward convolutions: on the CPU, oneDNN's own depthwise backward took 13-18x its forward
    (C=32, 2 x 64^2, NHWC, one thread: 0.30 ms forward, 4.1 ms backward; 1.4 ms this way)."""

    @staticmethod
    def forward(ctx, x, weight, bias, pad: int):
        ctx.save_for_backward(x, weight)
        ctx.pad = pad
        return nn.functional.conv2d(x, weight, bias, padding=pad, groups=x.shape[1])

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        p, (b, c, h, w), k = ctx.pad, x.shape, weight.shape[-1]
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:  # the transposed convolution = correlation with the flipped kernel
            grad_x = nn.functional.conv2d(grad, weight.flip(2, 3), padding=p, groups=c)
        if ctx.needs_input_grad[1]:
            # dL/dw[c, i, j] = sum over b, y, x of x_pad[b, c, y + i, x + j] * grad[b, c, y, x]: a
            # depthwise correlation of each padded (b, c) plane with its h x w gradient plane.
            planes = nn.functional.pad(x, (p, p, p, p)).contiguous().view(1, b * c, h + 2 * p, w + 2 * p)
            kernels = grad.contiguous().view(b * c, 1, h, w)
            grad_w = nn.functional.conv2d(planes, kernels, groups=b * c).view(b, c, k, k).sum(0).unsqueeze(1)
        if ctx.needs_input_grad[2]:
            grad_b = grad.sum((0, 2, 3))
        return grad_x, grad_w, grad_b, None


class DepthwiseConv2d(nn.Conv2d):
    """nn.Conv2d(dim, dim, k, padding=k // 2, groups=dim), with the faster backward above when
    training on NHWC CPU memory in fp32 (the same arithmetic; the state dict is nn.Conv2d's)."""

    fast_backward = True  # benchmarks/speed.py switches it off to measure what it gains

    def __init__(self, dim: int, kernel: int):
        super().__init__(dim, dim, kernel, padding=kernel // 2, groups=dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.kernel_size[0]
        if (
            self.fast_backward
            and torch.is_grad_enabled()
            and x.device.type == "cpu"
            and x.dtype == self.weight.dtype == torch.float32
            and k % 2 == 1
            and x.is_contiguous(memory_format=torch.channels_last)
            and autocast_dtype("cpu") is None
        ):
            return _DepthwiseBackwardNHWC.apply(x, self.weight, self.bias, k // 2)
        return super().forward(x)


class ConvNextBlock(nn.Module):
    """Depthwise 7x7, + time embedding, [LayerNorm], 3x3 -> GELU -> 3x3, residual."""

    def __init__(self, dim: int, dim_out: int, time_dim: int, *, mult: int, kernel: int, norm: bool):
        super().__init__()
        self.depthwise = DepthwiseConv2d(dim, kernel)
        self.time = nn.Sequential(nn.GELU(), nn.Linear(time_dim, dim))
        self.net = nn.Sequential(
            ChannelLayerNorm(dim) if norm else nn.Identity(),
            nn.Conv2d(dim, dim_out * mult, 3, padding=1),
            nn.GELU(),
            nn.Conv2d(dim_out * mult, dim_out, 3, padding=1),
        )
        self.skip = nn.Conv2d(dim, dim_out, 1) if dim != dim_out else nn.Identity()

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.depthwise(x) + self.time(temb)[:, :, None, None]
        return self.net(h) + self.skip(x)


class NextNet(nn.Module):
    """Predicts the clean image (3 channels) from concat(x_t, y) and the step index."""

    def __init__(self, cfg: ModelConfig | None = None, in_channels: int = 6, out_channels: int = 3):
        super().__init__()
        cfg = cfg or ModelConfig()
        self.cfg = cfg
        f = cfg.filters
        self.time_mlp = nn.Sequential(nn.Linear(f, 4 * f), nn.GELU(), nn.Linear(4 * f, f))
        half = cfg.depth // 2
        opts = dict(time_dim=f, mult=cfg.mult, kernel=cfg.kernel_size)
        self.down = nn.ModuleList(
            ConvNextBlock(in_channels if i == 0 else f, f, norm=cfg.norm and i > 0, **opts) for i in range(half)
        )
        self.up = nn.ModuleList(ConvNextBlock(2 * f, f, norm=cfg.norm, **opts) for _ in range(half))
        self.head = nn.Conv2d(f, out_channels, 1)

    def forward(self, x_t: torch.Tensor, y: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        temb = self.time_mlp(timestep_embedding(t, self.cfg.filters))
        h = torch.cat([x_t, y], dim=1)
        skips = []
        for block in self.down:
            h = block(h, temb)
            skips.append(h)
        for block in self.up:
            h = block(torch.cat([h, skips.pop()], dim=1), temb)
        out = self.head(h)
        return y + out if self.cfg.residual else out


class PlainNet(nn.Module):
    """ZSSR's body as a denoiser: `depth` 3x3 convolutions of `filters` channels with ReLU
    between them, on concat(x_t, y), the step embedding added after the first one; predicts
    the clean image (or, with `residual`, its difference from y)."""

    def __init__(self, cfg: ModelConfig, in_channels: int = 6, out_channels: int = 3):
        super().__init__()
        self.cfg = cfg
        f = cfg.filters
        self.time_mlp = nn.Sequential(nn.Linear(f, 2 * f), nn.GELU(), nn.Linear(2 * f, f))
        self.first = nn.Conv2d(in_channels, f, 3, padding=1)
        body: list[nn.Module] = []
        for _ in range(cfg.depth - 2):
            body += [nn.ReLU(), nn.Conv2d(f, f, 3, padding=1)]
        self.body = nn.Sequential(*body, nn.ReLU(), nn.Conv2d(f, out_channels, 3, padding=1))

    def forward(self, x_t: torch.Tensor, y: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        temb = self.time_mlp(timestep_embedding(t, self.cfg.filters))
        out = self.body(self.first(torch.cat([x_t, y], dim=1)) + temb[:, :, None, None])
        return y + out if self.cfg.residual else out


class DenoiserAverage(nn.Module):
    """Independently trained denoisers whose x0 predictions are averaged at every reverse
    step: their errors differ from training to training (initial weights, drawn pairs) and
    from architecture to architecture, so the mean keeps what they agree on."""

    def __init__(self, members: list[nn.Module]):
        super().__init__()
        if not members:
            raise ValueError("DenoiserAverage needs at least one member")
        self.members = nn.ModuleList(members)
        # tiling reads the receptive field from `cfg`: the member that sees farthest
        cfgs = [c for c in (getattr(m, "cfg", None) for m in members) if c is not None]
        self.cfg = max(cfgs, key=lambda c: c.receptive_radius()) if cfgs else None

    def forward(self, x_t: torch.Tensor, y: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        out = self.members[0](x_t, y, t)
        for member in self.members[1:]:
            out = out + member(x_t, y, t)
        return out / len(self.members)


def make_denoiser(cfg: ModelConfig) -> nn.Module:
    """The denoiser `cfg.arch` names; with `cfg.members` > 1 or a `cfg.partner`, the average
    of that many copies and the partner preset's network (in that order)."""
    one = dataclasses.replace(cfg, members=1, partner="")
    build = (lambda: PlainNet(one)) if cfg.arch == "plain" else (lambda: NextNet(one))
    nets = [build() for _ in range(max(1, cfg.members))]
    if cfg.partner:
        nets.append(make_denoiser(preset(cfg.partner).model))
    return nets[0] if len(nets) == 1 else DenoiserAverage(nets)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
