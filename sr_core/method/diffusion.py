"""ResShift residual-shifting diffusion in pixel space (docs/method.md).

The diffusion object owns the schedule and takes the model as an argument:
``loss(model, x0, y)``, ``sample(model, y)`` and ``sample_steps(model, y)``, a generator of
``(t, x_t, x0_pred)`` at every reverse step (progress bars, the explorer, tests).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
import torch.nn.functional as F

from sr_core.config import DiffusionConfig

Denoiser = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def sqrt_eta_schedule(cfg: DiffusionConfig) -> torch.Tensor:
    """sqrt(eta_t) for t = 1..T: exponential from min to max on a power-warped grid."""
    T = cfg.timesteps
    if T == 1:
        return torch.tensor([cfg.max_noise_level], dtype=torch.float64)
    base = (cfg.max_noise_level / cfg.min_noise_level) ** (1.0 / (T - 1))
    grid = (torch.arange(T, dtype=torch.float64) / (T - 1)) ** cfg.power * (T - 1)
    return cfg.min_noise_level * base**grid


_DEVICE_GENERATORS: dict[str, torch.Generator] = {}


def generator_on(generator: torch.Generator | None, device: torch.device) -> torch.Generator | None:
    """A generator that draws on `device`, driven by `generator` wherever that lives.

    A generator on another device (the usual CPU generator with a CUDA batch) seeds a
    generator on `device`: same seed, same numbers, and no host-to-device copy (each such
    copy from ordinary memory makes the host wait for the GPU).
    """
    device = torch.device(device)
    if generator is None or generator.device.type == device.type == "cpu" or generator.device == device:
        return generator
    key = str(device)
    if key not in _DEVICE_GENERATORS:
        _DEVICE_GENERATORS[key] = torch.Generator(device)
    dev_gen = _DEVICE_GENERATORS[key]
    dev_gen.manual_seed(int(torch.randint(2**62, (), generator=generator)))
    return dev_gen


def randn_on(shape, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """Standard normal noise made on `device` (see `generator_on`)."""
    return torch.randn(shape, generator=generator_on(generator, device), device=device)


@dataclass
class StepFrame:
    """One reverse step: the index t (T-1 .. 0), the state x_t and the model's x0 guess."""

    t: int
    x_t: torch.Tensor
    x0_pred: torch.Tensor


class ResShiftDiffusion:
    """x_t = x0 + eta_t (y - x0) + kappa sqrt(eta_t) eps, with eta_0 = 0 and t = 1..T."""

    def __init__(self, cfg: DiffusionConfig | None = None):
        self.cfg = cfg or DiffusionConfig()
        self.kappa = self.cfg.kappa
        sqrt_eta = sqrt_eta_schedule(self.cfg)
        self.sqrt_eta = sqrt_eta
        self.eta = sqrt_eta**2
        self.eta_prev = torch.cat([torch.zeros(1, dtype=torch.float64), self.eta[:-1]])
        self.alpha = self.eta - self.eta_prev
        self.posterior_variance = self.kappa**2 * self.eta_prev / self.eta * self.alpha
        self.posterior_coef_xt = self.eta_prev / self.eta
        self.posterior_coef_x0 = self.alpha / self.eta
        self._cache: dict[tuple, torch.Tensor] = {}

    @property
    def timesteps(self) -> int:
        return self.cfg.timesteps

    def _at(self, values: torch.Tensor, t: torch.Tensor | int, ref: torch.Tensor):
        """values[t] shaped to broadcast over `ref`; an int t gives a plain float (no copies)."""
        if isinstance(t, int):
            return float(values[t])
        key = (id(values), str(ref.device), ref.dtype)
        if key not in self._cache:  # the schedule is copied to a device once, not every step
            self._cache[key] = values.to(device=ref.device, dtype=ref.dtype)
        return self._cache[key][t.to(ref.device)].view(-1, 1, 1, 1)

    # --------------------------------------------------------------- forward process
    def q_sample(self, x0, y, t, noise=None, *, generator: torch.Generator | None = None):
        """Draw x_t ~ q(x_t | x0, y); `t` holds 0-based indices (0 means step 1)."""
        if noise is None:
            noise = randn_on(x0.shape, generator, x0.device).to(x0.dtype)
        eta = self._at(self.eta, t, x0)
        return x0 + eta * (y - x0) + self.kappa * self._at(self.sqrt_eta, t, x0) * noise

    def q_posterior(self, x_t, x0, t):
        """Mean and variance of q(x_{t-1} | x_t, x0)."""
        mean = self._at(self.posterior_coef_xt, t, x_t) * x_t + self._at(self.posterior_coef_x0, t, x_t) * x0
        return mean, self._at(self.posterior_variance, t, x_t)

    def prior_sample(self, y, *, generator: torch.Generator | None = None, noise=None):
        """x_T = y + kappa sqrt(eta_T) eps."""
        if noise is None:
            noise = randn_on(y.shape, generator, y.device).to(y.dtype)
        return y + self.kappa * float(self.sqrt_eta[-1]) * noise

    # -------------------------------------------------------------------- training
    def loss(
        self,
        model: Denoiser,
        x0: torch.Tensor,
        y: torch.Tensor,
        *,
        generator: torch.Generator | None = None,
        perceptual: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        perceptual_weight: float = 0.0,
        sync: bool = True,
        pixel_loss: str = "mse",
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """MSE(x0_pred, x0) [+ weight * perceptual(clamp(x0_pred), x0)] at uniform t.

        `pixel_loss` "l1" trains on the mean absolute error instead (MSE is still reported).

        The parts are floats; with `sync` False they stay 0-d tensors on the device, so a GPU
        training loop need not wait for each step to finish before queueing the next.
        """
        b = x0.shape[0]
        gen = generator_on(generator, x0.device)  # t and noise drawn where the batch lives
        t = torch.randint(self.timesteps, (b,), generator=gen, device=x0.device)
        x_t = self.q_sample(x0, y, t, generator=gen)
        pred = model(x_t, y, t)
        pred = pred.float()  # autocast may hand back bf16; the loss is taken in fp32
        mse = F.mse_loss(pred, x0)
        total = F.l1_loss(pred, x0) if pixel_loss == "l1" else mse
        parts = {"mse": mse.detach()}
        if perceptual is not None and perceptual_weight > 0:
            p = perceptual(pred.clamp(-1, 1), x0).mean()
            total = total + perceptual_weight * p
            parts["perceptual"] = p.detach()
        parts["loss"] = total.detach()
        if not sync:
            return total, parts
        return total, {k: float(v) for k, v in parts.items()}

    # -------------------------------------------------------------------- sampling
    @torch.inference_mode()
    def sample_steps(
        self,
        model: Denoiser,
        y: torch.Tensor,
        *,
        generator: torch.Generator | None = None,
        clamp: bool = True,
        stochastic: bool = True,
        noise_fn: Callable[[tuple[int, ...]], torch.Tensor] | None = None,
    ) -> Iterator[StepFrame]:
        """Run the full reverse chain from x_T, yielding a StepFrame at every step.

        With `stochastic` False the chain starts at x_T = y and follows the posterior mean
        (no fresh noise): a deterministic sampler, better for fidelity.
        `noise_fn(shape)` may supply the noise (tiling shares one noise field across tiles).
        """
        def draw(shape):
            return noise_fn(shape).to(y) if noise_fn else randn_on(shape, generator, y.device).to(y.dtype)

        x = self.prior_sample(y, noise=draw(y.shape)) if stochastic else y.clone()
        for i in reversed(range(self.timesteps)):
            t = torch.full((y.shape[0],), i, dtype=torch.long, device=y.device)
            x0 = model(x, y, t)
            if clamp:
                x0 = x0.clamp(-1, 1)
            mean, var = self.q_posterior(x, x0, i)
            yield StepFrame(i, x, x0)
            # At t = 1 the posterior is x0 itself (eta_0 = 0): no noise at the last step.
            x = mean + var**0.5 * draw(y.shape) if i > 0 and stochastic else (mean if i > 0 else x0)

    @torch.inference_mode()
    def sample(self, model: Denoiser, y: torch.Tensor, **kwargs) -> torch.Tensor:
        """The final x_0 of the reverse chain (the last step's prediction)."""
        frame = None
        for frame in self.sample_steps(model, y, **kwargs):
            pass
        return frame.x0_pred

    def noise_std(self) -> list[float]:
        """kappa sqrt(eta_t) for t = 1..T (for plots)."""
        return [self.kappa * math.sqrt(float(e)) for e in self.eta]
