"""Training data from one image: Lanczos image scales and per-stage pseudo-pair samplers."""

from __future__ import annotations

import math

import numpy as np
import torch

from sr_core.config import DataConfig, DegradationConfig
from sr_core.method.degradation import pseudo_pair, usm_sharpen, uniform


def to_tensor(rgb: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """H x W x 3 float array in [0, 1] -> 1 x 3 x H x W tensor."""
    return torch.from_numpy(np.ascontiguousarray(rgb, dtype=np.float32)).permute(2, 0, 1)[None].to(device)


def to_numpy(img: torch.Tensor) -> np.ndarray:
    """1 x 3 x H x W tensor in [0, 1] -> H x W x 3 float32 array."""
    return img[0].detach().float().cpu().clamp(0, 1).permute(1, 2, 0).numpy()


def lanczos_resize(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an H x W x 3 float image to (width, height) with Lanczos, channel by channel."""
    from PIL import Image

    w, h = size
    if (w, h) == (rgb.shape[1], rgb.shape[0]):
        return rgb.astype(np.float32, copy=True)
    chans = [
        np.asarray(Image.fromarray(rgb[:, :, c].astype(np.float32), mode="F").resize((w, h), Image.LANCZOS))
        for c in range(rgb.shape[2])
    ]
    return np.clip(np.stack(chans, axis=2), 0, 1).astype(np.float32)


def scaled_size(size: tuple[int, int], scale: float, max_pixels: int = 0) -> tuple[int, int]:
    """(width, height) of an image scale, shrunk further to at most `max_pixels`."""
    w, h = size
    if max_pixels and w * h * scale * scale > max_pixels:
        scale = math.sqrt(max_pixels / (w * h))
    return max(1, round(w * scale)), max(1, round(h * scale))


def image_scales(rgb: np.ndarray, cfg: DataConfig) -> list[np.ndarray]:
    """The training image at each relative scale of `cfg.image_scales` (coarse first)."""
    size = (rgb.shape[1], rgb.shape[0])
    return [lanczos_resize(rgb, scaled_size(size, s, cfg.max_train_pixels)) for s in sorted(cfg.image_scales)]


def dihedral(img: torch.Tensor, k: int) -> torch.Tensor:
    """One of the 8 rotations/flips of the square's symmetry group (k in 0..7)."""
    out = torch.rot90(img, k % 4, dims=(-2, -1))
    return out.flip(-1) if k >= 4 else out


class PairSampler:
    """Batches of (x0, y) pseudo pairs in [-1, 1] from one image scale.

    With `fixed_batch` (the original) one batch is drawn and returned for ever; otherwise
    fresh degradations every call, optionally on random crops with random flips. With
    `chunk` > 1, `next_batch` makes the pairs of `chunk` batches in one call and hands them
    out one by one (batch-wide draws, such as a random resize factor, are then shared by the
    chunk); `rng_state` and `restore` resume in the middle of a chunk exactly.
    """

    def __init__(
        self,
        rgb: np.ndarray,
        data: DataConfig,
        degradation: DegradationConfig,
        *,
        generator: torch.Generator,
        device: torch.device | str = "cpu",
        chunk: int = 1,
    ):
        self.data = data
        self.chunk = max(1, int(chunk))
        self._queue: list[tuple[torch.Tensor, torch.Tensor]] = []
        self._chunk_start: torch.Tensor | None = None  # generator state before the open chunk
        self.degradation = degradation
        self.generator = generator
        self.device = torch.device(device)
        self.image = to_tensor(rgb, self.device)
        # The USM target of the whole image does not change between steps: compute it once.
        self.sharp = usm_sharpen(self.image) if degradation.usm_target else self.image
        # Batched synthesis draws its noise where the batch lives; a CPU batch uses `generator`.
        self._device_gen = torch.Generator(self.device) if self.device.type != "cpu" else None
        # Drawn now, so a resumed stage (generator state restored afterwards) gets the same batch.
        self._fixed = self.draw() if data.fixed_batch else None

    def batch_pixels(self) -> int:
        """Pixels in one batch (how much work one training step is)."""
        _, _, h, w = self.image.shape
        c = self.data.crop_size
        return self.data.batch_size * (min(c, h) * min(c, w) if c else h * w)

    @property
    def size(self) -> tuple[int, int]:
        return self.image.shape[-1], self.image.shape[-2]

    def _crops(self, b: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.data.crop_size
        _, _, h, w = self.image.shape
        if not c or (c >= h and c >= w):
            return self.image.expand(b, -1, -1, -1), self.sharp.expand(b, -1, -1, -1)
        ch, cw = min(c, h), min(c, w)
        dev = generator.device
        tops = torch.randint(h - ch + 1, (b,), generator=generator, device=dev)
        lefts = torch.randint(w - cw + 1, (b,), generator=generator, device=dev)
        # One gather for the whole batch: rows/cols index grids of shape B x ch x cw.
        rows = (tops.view(b, 1, 1) + torch.arange(ch, device=dev).view(1, ch, 1)).expand(b, ch, cw).to(self.device)
        cols = (lefts.view(b, 1, 1) + torch.arange(cw, device=dev).view(1, 1, cw)).expand(b, ch, cw).to(self.device)
        img = self.image[0][:, rows, cols].permute(1, 0, 2, 3)  # 3 x B x ch x cw -> B x 3 x ch x cw
        if self.sharp is self.image:
            return img, img
        return img, self.sharp[0][:, rows, cols].permute(1, 0, 2, 3)

    def _flip(self, img: torch.Tensor, sharp: torch.Tensor, generator: torch.Generator):
        b = img.shape[0]
        ks = torch.randint(8, (b,), generator=generator, device=generator.device).to(self.device)
        square = img.shape[-1] == img.shape[-2]
        if not square:  # a 90-degree turn would change the shape
            ks = ks - ks % 2
        out_img, out_sharp = img, sharp
        # Every transform of the whole batch, each image keeping its own: no per-image loop,
        # no host round trip for the indices.
        for k in range(1, 8) if square else (2, 4, 6):
            pick = (ks == k).view(b, 1, 1, 1)
            out_img = torch.where(pick, dihedral(img, k), out_img)
            out_sharp = out_img if sharp is img else torch.where(pick, dihedral(sharp, k), out_sharp)
        return out_img, out_sharp

    def draw(self, images: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """A new batch (x0, y) of `images` pairs (default: the batch size), ignoring `fixed_batch`."""
        batched = self.data.synthesis == "batched"
        gen = self.generator  # per_sample: every draw on the CPU generator, the same on any device
        if batched and self._device_gen is not None:
            # Reseeded from the CPU generator each batch: a resumed run draws the same pairs.
            self._device_gen.manual_seed(int(torch.randint(2**62, (), generator=self.generator)))
            gen = self._device_gen
        img, sharp = self._crops(images or self.data.batch_size, gen)
        if self.data.flips:
            img, sharp = self._flip(img, sharp, gen)
        kwargs = dict(sharp=sharp, batched=batched, device_generator=gen if batched else None)
        if self.data.pair_mode == "scale_aware":
            factor = uniform(self.generator, *self.data.step_factor)
            return pseudo_pair(img, self.degradation, self.generator, down_factor=factor, up_mode="bicubic", **kwargs)
        return pseudo_pair(img, self.degradation, self.generator, **kwargs)

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._fixed is not None:
            return self._fixed
        if self.chunk == 1:
            return self.draw()
        if not self._queue:
            self._open_chunk()
        return self._queue.pop(0)

    def _open_chunk(self) -> None:
        self._chunk_start = self.generator.get_state()
        x0, y = self.draw(self.data.batch_size * self.chunk)
        self._queue = list(zip(x0.split(self.data.batch_size), y.split(self.data.batch_size)))

    def rng_state(self) -> tuple[torch.Tensor, int]:
        """(generator state, batches served from it) that `restore` resumes from: the state
        before the open chunk and how much of it was used, or the current state and 0."""
        if self._queue:
            return self._chunk_start, self.chunk - len(self._queue)
        return self.generator.get_state(), 0

    def restore(self, state: torch.Tensor, served: int = 0) -> None:
        """Continue exactly where the sampler that gave `rng_state()` was."""
        self.generator.set_state(state)
        self._queue = []
        if served:
            self._open_chunk()
            del self._queue[:served]
