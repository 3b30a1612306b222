"""Offline LPIPS-style perceptual distance from the trained ST-LPIPS weights.

ST-LPIPS (Ghildyal & Liu, "Shift-tolerant Perceptual Similarity Metric", ECCV 2022) is
LPIPS (Zhang et al. 2018) on anti-aliased, shift-tolerant AlexNet / VGG16 trunks (3x3
binomial blur-pool after stride-1 convolutions/max-pools, reflect padding), with learned
per-channel weights on the squared differences of unit-normalised features, averaged over
space and summed over five layers. The wheel ``stlpips-pytorch==0.0.2`` (BSD-2-Clause)
ships the trained weights (trunk and linear heads together, no download). Its Python module
imports torchvision at import time, so it is NOT imported here: the networks are defined
below and only the ``.pth`` files are read (``torch.load(weights_only=True)``).

Install the weights with ``pip install --no-deps stlpips-pytorch==0.0.2``.
Values are ST-LPIPS, not the original LPIPS numbers (same scale and direction: 0 for identical
images, larger is more different), so compare them only with each other.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from sr_core.runtime.device import autocast_dtype

WHEEL = "stlpips-pytorch"
BACKEND = "stlpips-{net}"  # the name recorded next to every perceptual number


class BlurPool(nn.Module):
    """Depthwise 3x3 binomial blur with reflect padding 2, then stride 2."""

    def __init__(self, channels: int):
        super().__init__()
        a = torch.tensor([1.0, 2.0, 1.0])
        filt = (a[:, None] * a[None, :]) / 16.0
        self.register_buffer("filt", filt[None, None].repeat(channels, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), self.filt, stride=2, groups=x.shape[1])


def _alexnet_slices() -> list[nn.Sequential]:
    # Indices follow the checkpoint's key names (net.sliceK.<index>).
    layers = {
        0: nn.Conv2d(3, 64, 11, stride=1, padding=2), 1: BlurPool(64), 2: nn.ReLU(),
        3: nn.MaxPool2d(3, stride=1), 4: BlurPool(64), 5: nn.Conv2d(64, 192, 5, padding=2), 6: nn.ReLU(),
        7: nn.MaxPool2d(3, stride=1), 8: BlurPool(192), 9: nn.Conv2d(192, 384, 3, padding=1), 10: nn.ReLU(),
        11: nn.Conv2d(384, 256, 3, padding=1), 12: nn.ReLU(),
        13: nn.Conv2d(256, 256, 3, padding=1), 14: nn.ReLU(),
    }
    bounds = [(0, 3), (3, 7), (7, 11), (11, 13), (13, 15)]
    return [_ordered((str(i), layers[i]) for i in range(a, b)) for a, b in bounds]


def _vgg16_slices() -> list[nn.Sequential]:
    plan = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]
    layers: list[nn.Module] = []
    cin = 3
    for v in plan:
        if v == "M":
            layers += [nn.MaxPool2d(2, stride=1), BlurPool(cin)]
        else:
            layers += [nn.Conv2d(cin, v, 3, padding=1), nn.ReLU()]
            cin = v
    bounds = [(0, 4), (4, 10), (10, 18), (18, 26), (26, 34)]
    return [_ordered((str(i), layers[i]) for i in range(a, b)) for a, b in bounds]


def _ordered(pairs):
    from collections import OrderedDict

    return nn.Sequential(OrderedDict(pairs))


class _Lin(nn.Module):
    def __init__(self, chans: int):
        super().__init__()
        self.model = nn.Sequential(nn.Identity(), nn.Conv2d(chans, 1, 1, bias=False))

    def forward(self, x):
        return self.model(x)


class PerceptualDistance(nn.Module):
    """d(x, y) for N x 3 x H x W images in [-1, 1]; returns N distances (N x 1 x 1 x 1)."""

    CHANNELS = {"alex": (64, 192, 384, 256, 256), "vgg": (64, 128, 256, 512, 512)}

    def __init__(self, net: str = "alex"):
        super().__init__()
        if net not in self.CHANNELS:
            raise ValueError(f"net must be 'alex' or 'vgg', got {net!r}")
        self.net_name = net
        self.backend = BACKEND.format(net=net)
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1))
        self.net = nn.Module()
        for k, s in enumerate(_alexnet_slices() if net == "alex" else _vgg16_slices(), start=1):
            self.net.add_module(f"slice{k}", s)
        for k, c in enumerate(self.CHANNELS[net]):
            self.add_module(f"lin{k}", _Lin(c))
        self._target: tuple | None = None  # (tensor, version, autocast dtype, its normalised features)

    def load_weights(self, path: Path) -> "PerceptualDistance":
        state = torch.load(Path(path), map_location="cpu", weights_only=True)
        state = {("shift" if k == "scaling_layer.shift" else "scale" if k == "scaling_layer.scale" else k): v
                 for k, v in state.items()}
        missing, unexpected = self.load_state_dict(state, strict=False)
        # Blur filters are fixed buffers (also stored in the file); anything else missing is an error.
        bad = [k for k in missing if not k.endswith(".filt")] + list(unexpected)
        if bad:
            raise RuntimeError(f"weights file {path} does not match the {self.net_name} network: {bad[:5]}")
        return self

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = (x - self.shift) / self.scale
        out = []
        for k in range(1, 6):
            h = getattr(self.net, f"slice{k}")(h)
            out.append(h)
        return out

    def normalised_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [f / (f.pow(2).sum(1, keepdim=True).sqrt() + 1e-10) for f in self.features(x)]

    def _target_features(self, y: torch.Tensor) -> list[torch.Tensor]:
        """y's normalised features, reused while y is the same unchanged tensor under the same
        autocast: a fixed training batch (the paper preset) is a loss target at every step,
        and its features are a third of the loss's work."""
        if y.requires_grad:
            return self.normalised_features(y)
        cast = autocast_dtype(y.device.type)
        hit = self._target
        if hit is None or hit[0] is not y or hit[1] != y._version or hit[2] != cast:
            hit = self._target = (y, y._version, cast, [f.detach() for f in self.normalised_features(y)])
        return hit[3]

    def forget_target(self) -> None:
        """Drop the cached target features (hundreds of MB for a batch of 512^2 images)."""
        self._target = None

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        total = 0.0
        for k, (fx, fy) in enumerate(zip(self.normalised_features(x), self._target_features(y))):
            total = total + getattr(self, f"lin{k}")((fx - fy) ** 2).mean((2, 3), keepdim=True)
        return total


def weights_path(net: str = "alex") -> Path:
    """Where the installed stlpips-pytorch wheel keeps the `net` weights; FileNotFoundError if absent."""
    import importlib.metadata as md

    try:
        dist = md.distribution(WHEEL)
    except md.PackageNotFoundError:
        raise FileNotFoundError(
            f"offline perceptual weights need `pip install --no-deps {WHEEL}==0.0.2`"
        ) from None
    for f in dist.files or []:
        if str(f).endswith(f"{net}_shift_tolerant.pth"):
            return Path(f.locate())
    raise FileNotFoundError(f"{WHEEL} is installed but has no {net}_shift_tolerant.pth")


_CACHE: dict[tuple[str, str], PerceptualDistance] = {}


def load(net: str = "alex", device: torch.device | str = "cpu") -> PerceptualDistance:
    """The frozen offline perceptual distance for `net` ('alex' or 'vgg') on `device`."""
    key = (net, str(device))
    if key not in _CACHE:
        model = PerceptualDistance(net).load_weights(weights_path(net)).to(device).eval()
        for p in model.parameters():
            p.requires_grad_(False)
        _CACHE[key] = model
    return _CACHE[key]


@torch.no_grad()
def distance(a, b, *, net: str = "alex") -> float:
    """Distance between two H x W x 3 numpy images in [0, 1]."""
    import numpy as np

    model = load(net)
    ta = torch.from_numpy(np.ascontiguousarray(a, np.float32)).permute(2, 0, 1)[None] * 2 - 1
    tb = torch.from_numpy(np.ascontiguousarray(b, np.float32)).permute(2, 0, 1)[None] * 2 - 1
    return float(model(ta, tb).item())
