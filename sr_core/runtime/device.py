"""Pick a torch device: CUDA, then Apple MPS, then CPU. Nothing else hard-codes a device."""

from __future__ import annotations

import torch

from sr_core.errors import UserError


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' | 'cpu' | 'cuda' | 'cuda:N' | 'mps' -> a usable torch.device."""
    name = (name or "auto").lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError(f"device {name!r} asked for, but CUDA is not available here")
        return torch.device(name)
    if name == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise UserError("device 'mps' asked for, but Apple MPS is not available here")
        return torch.device("mps")
    if name == "cpu":
        return torch.device("cpu")
    raise UserError(f"unknown device {name!r}; use auto, cpu, cuda or mps")


def autocast_dtype(device_type: str) -> torch.dtype | None:
    """The dtype autocast is casting to on `device_type` now, or None when it is off.

    torch 2.4 took the device type as an argument; 2.1-2.3 (which pyproject allows) had one
    function per device, deprecated since."""
    try:
        on = torch.is_autocast_enabled(device_type)
    except TypeError:
        if device_type == "cpu":
            return torch.get_autocast_cpu_dtype() if torch.is_autocast_cpu_enabled() else None
        return torch.get_autocast_gpu_dtype() if torch.is_autocast_enabled() else None
    return torch.get_autocast_dtype(device_type) if on else None
