"""Pseudo pairs from one image: unsharp-masked pseudo-HR and randomly degraded pseudo-LR.

Everything works on batched tensors (B x 3 x H x W, values in [0, 1]) on any device; every
random draw comes from an explicit ``torch.Generator``.

Two ways to degrade a batch. ``per_sample`` (the original's shape): parameters, noise and
resizes image by image on the CPU generator, so a seed gives the same pairs on every device.
``batched`` (the training hot path): all kernels built in one vectorised call, noise drawn
on the batch's device, one resize per batch (every image of a batch shares the resize
factor and modes; batches differ), no Python loop over images except for JPEG, which only
OpenCV does.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from sr_core.config import DegradationConfig

KERNEL_FAMILIES = (
    "iso",
    "aniso",
    "generalized_iso",
    "generalized_aniso",
    "plateau_iso",
    "plateau_aniso",
    "sinc",
)


def uniform(generator: torch.Generator, lo: float, hi: float) -> float:
    """One float drawn uniformly from [lo, hi)."""
    return lo + (hi - lo) * float(torch.rand((), generator=generator))


def choice(generator: torch.Generator, options, probs=None):
    """One element of `options`, with optional (unnormalised) probabilities."""
    if probs is None:
        idx = int(torch.randint(len(options), (), generator=generator))
    else:
        w = torch.tensor(probs, dtype=torch.float64)
        idx = int(torch.multinomial(w / w.sum(), 1, generator=generator))
    return options[idx]


# --------------------------------------------------------------------------- kernels
def _grid(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    yy, xx = torch.meshgrid(r, r, indexing="ij")
    return xx, yy


def bivariate_kernel(
    size: int,
    sigma_x: float,
    sigma_y: float,
    theta: float = 0.0,
    *,
    beta: float = 1.0,
    family: str = "gaussian",
) -> torch.Tensor:
    """A normalised, rotated bivariate kernel: Gaussian, generalized Gaussian or plateau.

    With d = x^T Sigma^-1 x: Gaussian exp(-d/2), generalized Gaussian exp(-d**beta / 2),
    plateau 1 / (1 + d**beta) (the kernel shapes used by BSRGAN / Real-ESRGAN).
    """
    c, s = math.cos(theta), math.sin(theta)
    rot = torch.tensor([[c, -s], [s, c]], dtype=torch.float64)
    cov = rot @ torch.diag(torch.tensor([sigma_x**2, sigma_y**2], dtype=torch.float64)) @ rot.T
    inv = torch.linalg.inv(cov)
    xx, yy = _grid(size)
    d = inv[0, 0] * xx * xx + (inv[0, 1] + inv[1, 0]) * xx * yy + inv[1, 1] * yy * yy
    if family == "gaussian":
        k = torch.exp(-0.5 * d)
    elif family == "generalized":
        k = torch.exp(-0.5 * d.clamp_min(0) ** beta)
    elif family == "plateau":
        k = 1.0 / (d.clamp_min(0) ** beta + 1.0)
    else:
        raise ValueError(f"unknown kernel family {family!r}")
    return (k / k.sum()).float()


def sinc_kernel(size: int, omega_c: float) -> torch.Tensor:
    """A normalised circular low-pass kernel with cutoff `omega_c` (radians per pixel)."""
    xx, yy = _grid(size)
    r = torch.sqrt(xx * xx + yy * yy)
    safe_r = torch.where(r == 0, torch.ones_like(r), r)
    k = omega_c * torch.special.bessel_j1(omega_c * safe_r) / (2 * math.pi * safe_r)
    k = torch.where(r == 0, torch.full_like(r, omega_c**2 / (4 * math.pi)), k)
    return (k / k.sum()).float()


def pad_kernel(kernel: torch.Tensor, size: int) -> torch.Tensor:
    """Zero-pad a square odd kernel to `size` x `size` (centred)."""
    pad = (size - kernel.shape[-1]) // 2
    return F.pad(kernel, (pad, pad, pad, pad)) if pad > 0 else kernel


def random_kernel(cfg: DegradationConfig, generator: torch.Generator) -> tuple[torch.Tensor, dict]:
    """Draw one blur kernel as in docs/method.md; returns the kernel and what was drawn."""
    size = int(choice(generator, list(cfg.kernel_sizes)))
    probs = [float(cfg.kernel_probs.get(name, 0.0)) for name in KERNEL_FAMILIES]
    family = choice(generator, KERNEL_FAMILIES, probs)
    info: dict = {"family": family, "size": size}
    if family == "sinc":
        omega = uniform(generator, *cfg.sinc_omega)
        k = sinc_kernel(size, omega)
        info["omega_c"] = omega
    else:
        sx = uniform(generator, *cfg.blur_sigma)
        if family.endswith("_iso"):
            sy, theta = sx, 0.0
        else:
            sy = uniform(generator, *cfg.blur_sigma)
            theta = uniform(generator, -math.pi, math.pi)
        base = family.split("_")[0]
        if base == "generalized":
            beta = uniform(generator, *cfg.betag_range)
        elif base == "plateau":
            beta = uniform(generator, *cfg.betap_range)
        else:
            base, beta = "gaussian", 1.0
        k = bivariate_kernel(size, sx, sy, theta, beta=beta, family=base)
        info.update(sigma_x=sx, sigma_y=sy, theta=theta, beta=beta)
    return pad_kernel(k, cfg.kernel_pad_to), info


def random_kernels(
    cfg: DegradationConfig, generator: torch.Generator, n: int, *, device: torch.device | str | None = None
) -> tuple[torch.Tensor, dict]:
    """Draw `n` blur kernels in one vectorised call (same families and ranges as `random_kernel`).

    Everything is drawn and built on `device` (default: the generator's). Returns an
    n x K x K float tensor (K = the padded size) and the drawn parameters as tensors.
    """
    dev = generator.device if device is None else torch.device(device)
    sizes_opt = torch.tensor(list(cfg.kernel_sizes), device=dev)
    size = sizes_opt[torch.randint(len(sizes_opt), (n,), generator=generator, device=dev)]
    probs = torch.tensor([float(cfg.kernel_probs.get(name, 0.0)) for name in KERNEL_FAMILIES],
                         dtype=torch.float64, device=dev)
    family = torch.multinomial(probs / probs.sum(), n, replacement=True, generator=generator)

    def draw(lo_hi) -> torch.Tensor:
        return torch.empty(n, dtype=torch.float64, device=dev).uniform_(*lo_hi, generator=generator)

    sx, sy, theta = draw(cfg.blur_sigma), draw(cfg.blur_sigma), draw((-math.pi, math.pi))
    betag, betap, omega = draw(cfg.betag_range), draw(cfg.betap_range), draw(cfg.sinc_omega)
    iso = torch.tensor([name.endswith("_iso") for name in KERNEL_FAMILIES], device=dev)[family]
    sy = torch.where(iso, sx, sy)
    theta = torch.where(iso, torch.zeros_like(theta), theta)
    params = {"family": family, "size": size, "sigma_x": sx, "sigma_y": sy, "theta": theta,
              "beta_generalized": betag, "beta_plateau": betap, "omega_c": omega}
    return kernels_from_params(params, max(cfg.kernel_pad_to, max(cfg.kernel_sizes))), params


def kernels_from_params(params: dict, pad_to: int) -> torch.Tensor:
    """The kernels `random_kernels` describes, built together on one padded grid.

    Each kernel is evaluated on the centred pad_to x pad_to grid and cut to its own size by a
    mask: the same numbers `bivariate_kernel` / `sinc_kernel` + `pad_kernel` give one by one.
    """
    family, size = params["family"], params["size"]
    xx, yy = (g.to(family.device) for g in _grid(pad_to))  # K x K, integer coordinates for odd K
    v = lambda key: params[key].view(-1, 1, 1)  # noqa: E731 - broadcast over the grid
    c, s = torch.cos(v("theta")), torch.sin(v("theta"))
    ix, iy = 1.0 / v("sigma_x") ** 2, 1.0 / v("sigma_y") ** 2
    d = (c * c * ix + s * s * iy) * xx * xx + 2 * c * s * (ix - iy) * xx * yy + (s * s * ix + c * c * iy) * yy * yy
    d = d.clamp_min(0)
    names = list(KERNEL_FAMILIES)
    fam = family.view(-1, 1, 1)
    is_gen = (fam == names.index("generalized_iso")) | (fam == names.index("generalized_aniso"))
    is_plat = (fam == names.index("plateau_iso")) | (fam == names.index("plateau_aniso"))
    k = torch.exp(-0.5 * d)
    k = torch.where(is_gen, torch.exp(-0.5 * d ** v("beta_generalized")), k)
    k = torch.where(is_plat, 1.0 / (d ** v("beta_plateau") + 1.0), k)
    r = torch.sqrt(xx * xx + yy * yy)
    safe_r = torch.where(r == 0, torch.ones_like(r), r)
    w = v("omega_c")
    sinc = torch.where(r == 0, w**2 / (4 * math.pi), w * torch.special.bessel_j1(w * safe_r) / (2 * math.pi * safe_r))
    k = torch.where(fam == names.index("sinc"), sinc, k)
    half = (size.view(-1, 1, 1).to(torch.float64) - 1) / 2
    k = k * ((xx.abs() <= half) & (yy.abs() <= half))
    return (k / k.sum(dim=(-2, -1), keepdim=True)).float()


# ----------------------------------------------------------------------- filtering
def _pad(img: torch.Tensor, pad: int) -> torch.Tensor:
    # Reflect (OpenCV's default border) needs the image larger than the pad.
    mode = "reflect" if min(img.shape[-2:]) > pad else "replicate"
    return F.pad(img, (pad, pad, pad, pad), mode=mode)


def filter2d(img: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Blur each image of a batch with its own kernel (grouped convolution).

    img: B x C x H x W; kernels: k x k (shared) or B x k x k (one per image).
    """
    b, c, h, w = img.shape
    if kernels.dim() == 2:
        kernels = kernels.expand(b, -1, -1)
    k = kernels.shape[-1]
    weight = kernels.to(img).repeat_interleave(c, dim=0).unsqueeze(1)  # (B*C) x 1 x k x k
    out = F.conv2d(_pad(img, k // 2).reshape(1, b * c, h + k - 1, w + k - 1), weight, groups=b * c)
    return out.reshape(b, c, h, w)


def gaussian_kernel(size: int, sigma: float = 0.0) -> torch.Tensor:
    """A separable Gaussian as a 2-D kernel; sigma 0 uses OpenCV's rule for the size."""
    if sigma <= 0:
        sigma = 0.3 * ((size - 1) * 0.5 - 1) + 0.8
    return bivariate_kernel(size, sigma, sigma)


def usm_sharpen(img: torch.Tensor, *, weight: float = 1.0, radius: int = 10, threshold: float = 5.0):
    """Unsharp masking with a soft mask (docs/method.md): the pseudo-HR target."""
    size = radius + 1 if radius % 2 == 0 else radius  # 10 -> 11
    kernel = gaussian_kernel(size)
    residual = img - filter2d(img, kernel)
    sharp = (img + weight * residual).clamp(0, 1)
    mask = (residual.abs() * 255 > threshold).to(img.dtype)
    soft = filter2d(mask, kernel)
    return (soft * sharp + (1 - soft) * img).clamp(0, 1)


# -------------------------------------------------------------------- resize, noise
def resize(img: torch.Tensor, size: tuple[int, int], mode: str = "bicubic", *, antialias: bool = False):
    """Resize a batch to (height, width) with a torch interpolation mode, or "sharp-bicubic"
    (`cubic_resize` with a = -1, no antialiasing)."""
    size = (max(1, int(size[0])), max(1, int(size[1])))
    if tuple(img.shape[-2:]) == size:
        return img
    if mode == "sharp-bicubic":
        return cubic_resize(img, size, -1.0)
    if mode == "area":
        return F.interpolate(img, size=size, mode="area")
    if mode == "nearest":
        return F.interpolate(img, size=size, mode="nearest")
    return F.interpolate(img, size=size, mode=mode, align_corners=False, antialias=antialias)


def keys_cubic(d: torch.Tensor, a: float) -> torch.Tensor:
    """Keys' cubic convolution kernel with parameter `a` at distances `d`."""
    d = d.abs()
    return torch.where(d <= 1, ((a + 2) * d - (a + 3)) * d * d + 1,
                       torch.where(d < 2, ((d - 5) * d + 8) * d * a - 4 * a, torch.zeros_like(d)))


def cubic_resize(img: torch.Tensor, size: tuple[int, int], a: float) -> torch.Tensor:
    """Separable cubic convolution (Keys' kernel with parameter `a`) to (height, width).

    Sample positions and border handling (edge pixels repeated) are torch's bicubic with
    align_corners False, which this equals for a = -0.75; a = -1 puts more emphasis on
    edges (a sharper interpolator). No antialiasing: meant for upsampling. Works on the last
    two axes of a batch (N x C x H x W).
    """
    out = img
    for axis, n_out in ((-1, size[1]), (-2, size[0])):
        n_in = out.shape[axis]
        if n_in == n_out:
            continue
        if n_out % n_in == 0:
            out = _cubic_up_integer(out, n_out // n_in, a, axis)
            continue
        src = (torch.arange(n_out, device=img.device, dtype=torch.float64) + 0.5) * (n_in / n_out) - 0.5
        first = torch.floor(src) - 1
        acc = None
        for k in range(4):
            w = keys_cubic(src - (first + k), a).to(img.dtype)
            term = out.index_select(axis, (first + k).clamp(0, n_in - 1).long())
            term.mul_(w if axis == -1 else w.view(-1, 1))
            acc = term if acc is None else acc.add_(term)
        out = acc
    return out


def _cubic_up_integer(x: torch.Tensor, r: int, a: float, axis: int) -> torch.Tensor:
    """`cubic_resize` along one axis by a whole factor r: output pixel m r + p is a fixed
    5-tap filter (phase p) of input pixels m - 2 .. m + 2, so each phase is a few scaled
    adds of shifted slices of the edge-padded input — 3-4x faster than a gather."""
    n = x.shape[axis]
    if axis == -1:
        padded = F.pad(x, (2, 2, 0, 0), mode="replicate")
        out = x.new_empty(*x.shape, r)
        taps, phase = (lambda t: padded[..., t:t + n]), (lambda p: out[..., p])
    else:
        padded = F.pad(x, (0, 0, 2, 2), mode="replicate")
        out = x.new_empty(*x.shape[:-2], n, r, x.shape[-1])
        taps, phase = (lambda t: padded[..., t:t + n, :]), (lambda p: out[..., p, :])
    for p in range(r):
        delta = (p + 0.5) / r - 0.5  # where the phase's pixels sit, relative to input pixel m
        offsets = [math.floor(delta) - 1 + k for k in range(4)]
        weights = keys_cubic(delta - torch.tensor(offsets, dtype=torch.float64), a).tolist()
        target = phase(p)
        target.copy_(taps(offsets[0] + 2)).mul_(weights[0])
        for o, w in zip(offsets[1:], weights[1:]):
            target.add_(taps(o + 2), alpha=w)
    return out.flatten(-2) if axis == -1 else out.flatten(-3, -2)


def gaussian_noise(shape, sigma255: torch.Tensor, gray: torch.Tensor, generator, *, device=None) -> torch.Tensor:
    """Gaussian noise, per-image sigma on the 0-255 scale; `gray` images share one channel.

    Drawn on `device` (default: the generator's), which must match the generator's device.
    """
    b, c, h, w = shape
    device = generator.device if device is None else device
    color = torch.randn((b, c, h, w), generator=generator, device=device)
    mono = torch.randn((b, 1, h, w), generator=generator, device=device).expand(b, c, h, w)
    g = gray.to(device).view(b, 1, 1, 1)
    return torch.where(g, mono, color) * (sigma255.to(device).view(b, 1, 1, 1) / 255.0)


def poisson_noise(img: torch.Tensor, scale: torch.Tensor, gray: torch.Tensor, generator):
    """Shot noise of an 8-bit image (256 levels), scaled per image (on the image's device)."""
    vals = 256.0
    q = (img * 255).round().clamp(0, 255) / 255
    color = torch.poisson(q * vals, generator=generator) / vals - q
    y = (q * torch.tensor([0.299, 0.587, 0.114], device=img.device, dtype=img.dtype).view(1, 3, 1, 1)).sum(1, keepdim=True)
    mono = (torch.poisson(y * vals, generator=generator) / vals - y).expand_as(color)
    g = gray.to(img.device).view(-1, 1, 1, 1)
    return torch.where(g, mono, color) * scale.to(img).view(-1, 1, 1, 1)


def jpeg(img: torch.Tensor, quality: int) -> torch.Tensor:
    """JPEG round trip of one image (3 x H x W in [0, 1]) through OpenCV."""
    import cv2
    import numpy as np

    arr = (img.detach().cpu().clamp(0, 1).permute(1, 2, 0).numpy()[:, :, ::-1] * 255).round()
    ok, buf = cv2.imencode(".jpg", arr.astype(np.uint8), [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)])
    dec = cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1].astype(np.float32) / 255
    return torch.from_numpy(dec.copy()).permute(2, 0, 1).to(img)


def quantize(img: torch.Tensor) -> torch.Tensor:
    return (img.clamp(0, 1) * 255).round() / 255


# --------------------------------------------------------------------------- pairs
@dataclass
class Degraded:
    """A degraded batch and, per image, what was drawn (for notebooks and tests).

    `draws` may be given as a function: the batched path builds its per-image records only
    when someone reads them, keeping Python bookkeeping off the training hot path.
    """

    image: torch.Tensor
    _draws: list[dict] | Callable[[], list[dict]]

    @property
    def draws(self) -> list[dict]:
        if callable(self._draws):
            self._draws = self._draws()
        return self._draws


def _known_kernel(cfg: DegradationConfig, down_factor: float | None, img: torch.Tensor) -> torch.Tensor | None:
    """The user's blur kernel (`cfg.known_kernel`) on `img`'s device, where scale-aware pairs
    (a `down_factor`) are to be made with it instead of a random kernel and bicubic."""
    if not cfg.known_kernel or down_factor is None:
        return None
    return _kernel_tensor(cfg.known_kernel).to(img)


@functools.lru_cache(maxsize=4)
def _kernel_tensor(values: tuple[float, ...]) -> torch.Tensor:
    """The flat kernel as a square CPU tensor, built once per kernel (it is asked every step)."""
    side = math.isqrt(len(values))
    return torch.tensor(values, dtype=torch.float32).reshape(side, side)


def kernel_downscale(img: torch.Tensor, kernel: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The known-kernel degradation: `img` blurred by `kernel` (at its own resolution, mirrored
    borders), then sampled to `size` (height, width) by MATLAB's cubic (a = -0.5) without
    antialiasing (the kernel is the low-pass): IBP's and ZSSR's known-kernel model."""
    return cubic_resize(filter2d(img, kernel.to(img)), size, -0.5)


def degrade(
    img: torch.Tensor,
    cfg: DegradationConfig,
    generator: torch.Generator,
    *,
    down_factor: float | None = None,
    up_mode: str | None = None,
    batched: bool = False,
    device_generator: torch.Generator | None = None,
) -> Degraded:
    """Blur, resize down, add noise, optionally JPEG, resize back, quantize.

    `down_factor` fixes the down-scaling (scale-aware pairs: e.g. 2.0 halves the image) and
    `up_mode` fixes how it is brought back (the inference resampler); both random if None.
    `batched` picks the vectorised path (module docstring); its noise comes from
    `device_generator`, a generator on the image's device (default: `generator`).
    """
    if batched:
        return _degrade_batched(img, cfg, generator, down_factor=down_factor, up_mode=up_mode,
                                noise_gen=device_generator or generator)
    return _degrade_per_sample(img, cfg, generator, down_factor=down_factor, up_mode=up_mode)


def _noise_draws(cfg: DegradationConfig, generator: torch.Generator, b: int, device=None):
    """Per image: Gaussian or Poisson, gray or colour, and their strengths."""
    use_gauss = torch.rand(b, generator=generator, device=device) < cfg.gaussian_noise_prob
    gray = torch.rand(b, generator=generator, device=device) < cfg.gray_noise_prob
    sigma = torch.empty(b, device=device).uniform_(*cfg.gaussian_sigma, generator=generator)
    pscale = torch.empty(b, device=device).uniform_(*cfg.poisson_scale, generator=generator)
    return use_gauss, gray, sigma, pscale


def _jpeg_draws(cfg: DegradationConfig, generator: torch.Generator, b: int):
    """Per image: JPEG or not, and its quality (on the CPU: OpenCV does the JPEG)."""
    jpeg_on = torch.rand(b, generator=generator) < cfg.jpeg_prob
    quality = torch.randint(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1, (b,), generator=generator)
    return jpeg_on, quality


def _degrade_per_sample(img, cfg, generator, *, down_factor, up_mode) -> Degraded:
    """The original's shape: one image at a time, all randomness on the CPU generator."""
    b, c, h, w = img.shape
    draws = [{} for _ in range(b)]
    known = _known_kernel(cfg, down_factor, img)
    if known is not None:
        for d in draws:
            d["kernel"] = {"family": "known", "size": int(known.shape[-1])}
        out = img
    else:
        kernels = []
        for d in draws:
            k, info = random_kernel(cfg, generator)
            kernels.append(k)
            d["kernel"] = info
        out = filter2d(img, torch.stack(kernels))

    # Resizes differ in size per image: a short loop (B is small) is clearer than padding.
    small = []
    for i, d in enumerate(draws):
        if down_factor is None:
            factor = uniform(generator, *cfg.resize_range)
            size = (max(1, round(h * factor)), max(1, round(w * factor)))
            mode = choice(generator, list(cfg.resize_modes))
            aa = False
        else:
            factor = 1.0 / down_factor
            size = (max(1, round(h / down_factor)), max(1, round(w / down_factor)))
            mode, aa = ("known-kernel", False) if known is not None else ("bicubic", True)
        d.update(resize_factor=factor, down_mode=mode)
        if known is not None:
            small.append(kernel_downscale(out[i : i + 1], known, size).clamp(0, 1))
        else:
            small.append(resize(out[i : i + 1], size, mode, antialias=aa).clamp(0, 1))

    use_gauss, gray, sigma, pscale = _noise_draws(cfg, generator, b)
    jpeg_on, quality = _jpeg_draws(cfg, generator, b)

    result = []
    for i, (d, s) in enumerate(zip(draws, small)):
        s_cpu = s.detach().cpu()
        if use_gauss[i]:
            noise = gaussian_noise(s_cpu.shape, sigma[i : i + 1], gray[i : i + 1], generator, device="cpu")
            d["noise"] = {"type": "gaussian", "sigma": float(sigma[i]), "gray": bool(gray[i])}
        else:
            noise = poisson_noise(s_cpu, pscale[i : i + 1], gray[i : i + 1], generator)
            d["noise"] = {"type": "poisson", "scale": float(pscale[i]), "gray": bool(gray[i])}
        s = (s + noise.to(s)).clamp(0, 1)
        if jpeg_on[i]:
            s = jpeg(s[0], int(quality[i])).unsqueeze(0)
            d["jpeg_quality"] = int(quality[i])
        mode = up_mode or choice(generator, list(cfg.resize_modes))
        d["up_mode"] = mode
        result.append(resize(s, (h, w), mode).clamp(0, 1))
    return Degraded(quantize(torch.cat(result)), draws)


def _degrade_batched(img, cfg, generator, *, down_factor, up_mode, noise_gen) -> Degraded:
    """The whole batch at once: no loop over images (JPEG aside), per-image draws on the device.

    Batch-wide choices (resize factor and modes, JPEG) come from the CPU `generator`;
    everything drawn per image comes from `noise_gen`, a generator on the batch's device,
    so nothing is copied from the host each step.
    """
    b, c, h, w = img.shape
    dev = img.device
    known = _known_kernel(cfg, down_factor, img)
    if down_factor is None:
        factor = uniform(generator, *cfg.resize_range)
        size = (max(1, round(h * factor)), max(1, round(w * factor)))
        down_mode, aa = choice(generator, list(cfg.resize_modes)), False
    else:
        factor = 1.0 / down_factor
        size = (max(1, round(h / down_factor)), max(1, round(w / down_factor)))
        down_mode, aa = "bicubic", True
    if known is not None:
        kparams = None
        down_mode = "known-kernel"
        small = kernel_downscale(img, known, size).clamp(0, 1)
    else:
        kernels, kparams = random_kernels(cfg, noise_gen, b, device=dev)
        small = resize(filter2d(img, kernels), size, down_mode, antialias=aa).clamp(0, 1)

    use_gauss, gray, sigma, pscale = _noise_draws(cfg, noise_gen, b, device=dev)
    gauss = gaussian_noise(small.shape, sigma, gray, noise_gen, device=dev)
    shot = poisson_noise(small, pscale, gray, noise_gen)
    small = (small + torch.where(use_gauss.view(b, 1, 1, 1), gauss, shot)).clamp(0, 1)
    jpeg_on, quality = _jpeg_draws(cfg, generator, b) if cfg.jpeg_prob > 0 else (torch.zeros(b, dtype=torch.bool), None)
    if bool(jpeg_on.any()):  # OpenCV only: the one per-image step
        small = small.clone()
        for i in torch.nonzero(jpeg_on).flatten().tolist():
            small[i] = jpeg(small[i], int(quality[i]))
    mode_up = up_mode or choice(generator, list(cfg.resize_modes))
    low = quantize(resize(small, (h, w), mode_up))

    draws = lambda: [  # noqa: E731
        {
            "kernel": ({"family": "known", "size": int(known.shape[-1])} if kparams is None else
                       {"family": KERNEL_FAMILIES[int(kparams["family"][i])], "size": int(kparams["size"][i])}),
            "resize_factor": factor, "down_mode": down_mode, "up_mode": mode_up,
            "noise": ({"type": "gaussian", "sigma": float(sigma[i]), "gray": bool(gray[i])} if use_gauss[i]
                      else {"type": "poisson", "scale": float(pscale[i]), "gray": bool(gray[i])}),
            **({"jpeg_quality": int(quality[i])} if jpeg_on[i] else {}),
        }
        for i in range(b)
    ]
    return Degraded(low, draws)


def pseudo_pair(
    img: torch.Tensor,
    cfg: DegradationConfig,
    generator: torch.Generator,
    *,
    sharp: torch.Tensor | None = None,
    down_factor: float | None = None,
    up_mode: str | None = None,
    batched: bool = False,
    device_generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(pseudo-HR, pseudo-LR) in [-1, 1] for a batch of clean images in [0, 1].

    `sharp` may pass a precomputed unsharp-masked target (the same for every step).
    """
    if sharp is None:
        sharp = usm_sharpen(img) if cfg.usm_target else img
    low = degrade(img, cfg, generator, down_factor=down_factor, up_mode=up_mode,
                  batched=batched, device_generator=device_generator).image
    return sharp * 2 - 1, low * 2 - 1
