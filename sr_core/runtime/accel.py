"""How the denoiser runs on the hardware: precision, memory layout, compilation.

None of this changes what the method computes (bf16 aside, which rounds): it is kept out of
`Config` so a checkpoint trained one way loads and samples any other way. Each lever is a
field, so the speed benchmark can time the plain path (all off) against the fast one.
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass

import torch

from sr_core.errors import UserError

PRECISIONS = ("auto", "fp32", "bf16")
# Below this many pixels per model call, `auto` stays in fp32 (see Accel.for_batch).
AUTO_BF16_MIN_PIXELS = 512 * 512


@dataclass
class Accel:
    """Speed options. `auto` precision: bf16 autocast on CUDA for large calls, else fp32."""

    precision: str = "auto"
    channels_last: bool = True  # NHWC convolutions (cuDNN on CUDA, oneDNN on the CPU)
    compile: bool = False  # torch.compile the denoiser for inference (see `prepare`)
    cuda_graph: bool = True  # CUDA: replay the training forward + backward from a captured graph
    pair_chunk: int | None = None  # training batches of pairs made per call (None: 8 on a GPU, 1 on the CPU)

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise UserError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")

    @classmethod
    def plain(cls) -> "Accel":
        """fp32, default layout, eager: the reference every speed-up is measured against."""
        return cls(precision="fp32", channels_last=False, compile=False, cuda_graph=False, pair_chunk=1)

    def for_batch(self, pixels: int) -> "Accel":
        """The options for model calls of `pixels` pixels: `auto` keeps small calls in fp32.

        Measured on an H100 (docs/performance.md): a default-preset step (16 crops of 48 px,
        37k pixels) is launch-bound and ran 16.2 ms in fp32 against 19.7 ms in bf16 with
        channels_last (autocast adds cast kernels); a paper-preset step (8 x 512^2) ran 42.5 ms
        in fp32 against 28.2 ms in bf16 + channels_last.
        """
        if self.precision == "auto" and pixels < AUTO_BF16_MIN_PIXELS:
            return dataclasses.replace(self, precision="fp32")
        return self

    def pairs_per_call(self, device: torch.device) -> int:
        """Training batches of pseudo pairs to make in one call on `device`.

        Batched synthesis is about a hundred small kernels launched from Python whatever the
        batch size; once the model's steps replay from a CUDA graph that was most of a GPU
        step's host time. On the CPU synthesis is arithmetic (under 3% of a step): one batch
        per call, so CPU runs draw exactly as before.
        """
        if self.pair_chunk is not None:
            return max(1, int(self.pair_chunk))
        return 1 if torch.device(device).type == "cpu" else 8

    def uses_channels_last(self, device: torch.device) -> bool:
        """NHWC layout on CUDA and on the CPU (measured on this project's 2-core CPU: default
        training 1.45-1.55x faster, an x2 step to 512^2 1.5x); MPS keeps the default layout."""
        return self.channels_last and torch.device(device).type in ("cuda", "cpu")

    def dtype(self, device: torch.device) -> torch.dtype | None:
        """The autocast dtype on `device`, or None for full fp32."""
        device = torch.device(device)
        if self.precision == "fp32":
            return None
        if device.type == "cuda":
            if torch.cuda.is_bf16_supported():
                return torch.bfloat16
            if self.precision == "bf16":
                raise UserError("precision bf16 asked for, but this GPU does not support bfloat16")
            return None
        if self.precision == "bf16":
            # Explicit request: CPU autocast in bf16 works, though it is rarely faster.
            return torch.bfloat16 if device.type == "cpu" else None
        return None

    def autocast(self, device: torch.device, *, cache: bool = True):
        """A context for the model's forward pass (a no-op context in fp32).

        `cache` False recasts the weights at every call: a captured CUDA graph must not keep
        autocast's cache of cast weights, which lives only as long as the context.
        """
        device = torch.device(device)
        dtype = self.dtype(device)
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=dtype, cache_enabled=cache)

    def prepare(self, model: torch.nn.Module, device: torch.device, *, training: bool = False) -> torch.nn.Module:
        """Move `model` to `device` in the chosen layout; returns the module to call.

        With `compile`, inference runs the model under torch.compile, measured faster than
        eager on both machines (docs/performance.md): on an H100 an x2 step to 2048^2 1.8-2.1x
        with static shapes (1.5-1.8x dynamic); on this project's 2-core CPU 1.1-1.5x with
        dynamic shapes (static ones 1.1x at 128^2, level with dynamic at 512^2, and they
        compile once per size). Static on CUDA means one compilation per new shape (an x4 is
        two plan steps: two); after the first recompilation torch goes dynamic by itself.
        The training denoiser is never compiled: compiled training ran at 0.5x on the H100
        (it cannot use the CUDA graph) and 0.7x on the CPU, and torch's inductor failed on its
        backward with dynamic shapes.
        """
        device = torch.device(device)
        model = model.to(device)
        if self.uses_channels_last(device):
            model = model.to(memory_format=torch.channels_last)
        if self.compile and not training:
            if not hasattr(torch, "compile"):
                raise UserError("--compile needs PyTorch 2.0 or newer")
            return torch.compile(model, dynamic=True if device.type == "cpu" else None)
        return model

    def wrap_loss(self, fn, device: torch.device):
        """A loss network (the perceptual loss) run under the same autocast, returning fp32."""
        device = torch.device(device)
        if self.dtype(device) is None:
            return fn

        def run(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            with self.autocast(device):
                return fn(a, b).float()

        return run


class FastDenoiser:
    """Calls a denoiser under `accel`'s autocast and hands back fp32 (the sampler's arithmetic)."""

    def __init__(self, model, accel: Accel, device: torch.device, *, autocast_cache: bool = True):
        self.model = model
        self.accel = accel
        self.device = torch.device(device)
        self.autocast_cache = autocast_cache
        self.cfg = getattr(model, "cfg", None)  # tiling reads the receptive field from it

    def __call__(self, x_t: torch.Tensor, y: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if self.accel.uses_channels_last(self.device):
            x_t = x_t.contiguous(memory_format=torch.channels_last)
            y = y.contiguous(memory_format=torch.channels_last)
        with self.accel.autocast(self.device, cache=self.autocast_cache):
            out = self.model(x_t, y, t)
        return out.float().contiguous()


class _TrainingCall(torch.nn.Module):
    """A FastDenoiser call as a module (`make_graphed_callables` finds parameters on modules),
    without autocast's weight cache, which must not live inside a captured graph."""

    def __init__(self, eager: FastDenoiser):
        super().__init__()
        self.model = eager.model
        self.call = FastDenoiser(eager.model, eager.accel, eager.device, autocast_cache=False)

    def forward(self, x_t: torch.Tensor, y: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.call(x_t, y, t)


class GraphedDenoiser:
    """A training-time denoiser whose forward and backward replay captured CUDA graphs.

    A training step of the small presets is bound by launching hundreds of tiny kernels from
    Python, not by the GPU (docs/performance.md); a graph launches the network's whole
    forward, and its whole backward, at once. Inputs of another shape than the captured one
    (they do not occur within a stage) run eagerly. Build with `GraphedDenoiser.capture`,
    which returns None where capture is impossible (not CUDA, graphs turned off, or an error,
    reported once as a warning): training then runs eagerly, with the same result.
    """

    def __init__(self, graphed: torch.nn.Module, eager: FastDenoiser, shapes: tuple):
        self.graphed = graphed
        self.eager = eager
        self.shapes = shapes
        self.cfg = eager.cfg
        self.replays = 0

    @classmethod
    def capture(cls, eager: FastDenoiser, x_shape: tuple) -> "GraphedDenoiser | None":
        """Capture for inputs x_t and y of `x_shape` (B x 3 x H x W) and B step indices."""
        accel, device = eager.accel, eager.device
        if device.type != "cuda" or not accel.cuda_graph:
            return None
        import warnings

        try:
            call = _TrainingCall(eager)
            x = torch.zeros(x_shape, device=device)
            args = (x, torch.zeros_like(x), torch.zeros(x_shape[0], dtype=torch.long, device=device))
            graphed = torch.cuda.make_graphed_callables(call, args, allow_unused_input=True)
        except Exception as exc:  # an old torch, an unsupported op: train eagerly instead
            warnings.warn(f"CUDA graph capture failed, training without it: {type(exc).__name__}: "
                          f"{' '.join(str(exc).split())[:160]}", RuntimeWarning, stacklevel=2)
            return None
        shapes = (tuple(x_shape), tuple(x_shape), (x_shape[0],))
        return cls(graphed, eager, shapes)

    def __call__(self, x_t: torch.Tensor, y: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if (tuple(x_t.shape), tuple(y.shape), tuple(t.shape)) != self.shapes or not torch.is_grad_enabled():
            return self.eager(x_t, y, t)
        self.replays += 1
        return self.graphed(x_t, y, t)
