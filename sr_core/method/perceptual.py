"""The perceptual loss hook: LPIPS when available, else an offline LPIPS-style backend, else none.

Order of preference: the `lpips` package (needs torchvision and an ImageNet download), then
`sr_core.method.lpips_offline` (ST-LPIPS weights from the `stlpips-pytorch` wheel, no download),
else MSE only with one warning. Which one was loaded is recorded: ``backend_name(net, device)``.
"""

from __future__ import annotations

import warnings
from typing import Callable

import torch

PerceptualFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
_CACHE: dict[tuple[str, str], PerceptualFn | None] = {}
_BACKEND: dict[tuple[str, str], str] = {}


def backend_name(net: str = "vgg", device: torch.device | str = "cpu") -> str | None:
    """'lpips-vgg', 'stlpips-vgg', 'none', or None if `load_perceptual` was not called yet."""
    return _BACKEND.get((net, str(device)))


def _first_line(exc: Exception) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''}"


def load_perceptual(net: str = "vgg", device: torch.device | str = "cpu") -> PerceptualFn | None:
    """An LPIPS distance on [-1, 1] images, or None (with one warning) if unavailable."""
    key = (net, str(device))
    if key in _CACHE:
        return _CACHE[key]
    fn: PerceptualFn | None = None
    backend = "none"
    try:
        import lpips  # needs torchvision and a download of ImageNet weights

        model = lpips.LPIPS(net=net, verbose=False).to(device).eval()
        for p in model.parameters():
            p.requires_grad_(False)
        fn, backend = model, f"lpips-{net}"
    except Exception as exc:  # ImportError, network errors, broken torchvision...
        reason = _first_line(exc)
        try:
            from sr_core.method import lpips_offline

            fn = lpips_offline.load(net, device)
            backend = fn.backend
        except Exception as exc2:
            warnings.warn(
                f"perceptual loss unavailable (lpips: {reason}; offline: {_first_line(exc2)}); "
                "training with MSE only",
                RuntimeWarning,
                stacklevel=2,
            )
    _CACHE[key] = fn
    _BACKEND[key] = backend
    return fn
