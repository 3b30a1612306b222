"""The perceptual loss hook: real LPIPS when its weights can be loaded, else MSE only.

The `lpips` package fetches ImageNet backbone weights from the internet on first use; where
that fails (offline machines) training warns once and continues with MSE alone. The
offline backend is a separate piece of work (evaluation harness).
"""

from __future__ import annotations

import warnings
from typing import Callable

import torch

PerceptualFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
_CACHE: dict[tuple[str, str], PerceptualFn | None] = {}


def load_perceptual(net: str = "vgg", device: torch.device | str = "cpu") -> PerceptualFn | None:
    """An LPIPS distance on [-1, 1] images, or None (with one warning) if unavailable."""
    key = (net, str(device))
    if key in _CACHE:
        return _CACHE[key]
    fn: PerceptualFn | None = None
    try:
        import lpips  # needs torchvision and a download of ImageNet weights

        model = lpips.LPIPS(net=net, verbose=False).to(device).eval()
        for p in model.parameters():
            p.requires_grad_(False)
        fn = model
    except Exception as exc:  # ImportError, network errors, broken torchvision...
        warnings.warn(
            f"perceptual loss unavailable ({type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''}); "
            "training with MSE only",
            RuntimeWarning,
            stacklevel=2,
        )
    _CACHE[key] = fn
    return fn
