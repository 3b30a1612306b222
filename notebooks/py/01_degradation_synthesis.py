# ---
# jupyter:
#   accelerator: GPU
#   colab:
#     gpuType: T4
#     provenance: []
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 01 · Degradation synthesis: training pairs from one photo
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/OWNER/sr_core/blob/main/notebooks/01_degradation_synthesis.ipynb)
#
# `sr_core` trains a tiny diffusion model on **one** photo. There is no high-resolution
# ground truth, so the training pairs are made from the photo itself: a sharpened copy is the
# target (pseudo-HR) and a randomly degraded copy is the condition (pseudo-LR).
#
# **What you will learn**
# - how unsharp masking makes the pseudo-HR target, and what its mask does;
# - every blur-kernel family `sr_core` can draw (Gaussian, anisotropic, generalized,
#   plateau, sinc) at every size;
# - Gaussian vs Poisson noise, colour vs gray; JPEG; resize modes;
# - the pseudo pairs the trainer sees at every image scale;
# - an interactive panel to feel each degradation (after a static grid).

# %%
# Setup. In Colab: fetch the repository (code + sample images) and install sr_core without
# its dependencies, so Colab's own torch is never reinstalled. Locally: nothing is installed.
import os
import subprocess
import sys
from pathlib import Path

REPO = "OWNER/sr_core"  # = sr_core.faces.viz.COLAB_REPO (kept in sync by notebooks/sync_notebooks.py)
if "google.colab" in sys.modules:
    ROOT = Path(os.environ.get("SR_CORE_CLONE_DIR", "/content/sr_core"))
    # SR_CORE_REPO_URL: clone from elsewhere (tests/faces/test_colab_setup.py uses a local clone)
    URL = os.environ.get("SR_CORE_REPO_URL") or f"https://github.com/{REPO}.git"
    if not ROOT.exists():
        subprocess.run(["git", "clone", "-q", "--depth", "1", URL, str(ROOT)], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "-e", str(ROOT)], check=True)
    sys.path.insert(0, str(ROOT))  # the editable install is only seen after a restart
else:
    ROOT = next((p for p in [Path.cwd(), *Path.cwd().parents] if (p / "data" / "chelsea_crop.png").exists()), None)
    if ROOT is None:
        raise FileNotFoundError("run this notebook from inside a clone of the sr_core repository (it needs data/)")
DATA = ROOT / "data"

# %% tags=["parameters"]
import os

SMOKE = os.environ.get("SR_SMOKE") == "1"  # SR_SMOKE=1: a quick run on a CPU (CI, nbval)
if os.environ.get("CI") and not SMOKE:
    raise RuntimeError("CI runs the notebooks with SR_SMOKE=1; full settings take minutes")
IMAGE = "chelsea_crop.png"  # the bundled sample, in data/
# Your own photo: a path (empty: the sample), or UPLOAD = True to pick one in Colab.
PHOTO = ""  # @param {type:"string"}
UPLOAD = False  # @param {type:"boolean"}
SEED = 0

# %% [markdown]
# ## Your photo
#
# The notebook runs on a bundled sample photo unless you choose yours:
# - **Jupyter**: press the *your photo* button below and pick a file, then run the cells
#   after this one again (*Run > Run Selected Cell and All Below*); or set `PHOTO` above to
#   a path and run the notebook again.
# - **Colab**: tick `UPLOAD` above (or set `UPLOAD = True`) and run this cell: it asks for a
#   file from your computer. Or upload one in the Files pane and set `PHOTO` to its path.
#
# Uploads are saved under `outputs/uploads/`. A large photo is centre-cropped to 256x256
# here, so the figures stay readable.

# %%
from sr_core.faces import viz

picker = viz.PhotoPicker(PHOTO or DATA / IMAGE, upload=UPLOAD, folder=ROOT / "outputs" / "uploads")
picker

# %%
import math

import matplotlib.pyplot as plt
import numpy as np
import torch

from sr_core import Upscaler
from sr_core.config import DegradationConfig
from sr_core.method.degradation import (KERNEL_FAMILIES, degrade, filter2d, gaussian_kernel, gaussian_noise, jpeg,
                                        poisson_noise, random_kernel, resize, usm_sharpen)
from sr_core.method.pairs import PairSampler, image_scales, to_numpy, to_tensor

if SMOKE:
    torch.set_num_threads(1)  # tiny tensors: extra threads cost more than they give on a busy CPU
torch.manual_seed(SEED)
photo = picker.load(max_side=256)  # H x W x 3 floats in [0, 1]
# The configuration an Upscaler would train with on this photo (`paper`: the original's degradations)
cfg = Upscaler("smoke" if SMOKE else "paper", seed=SEED).resolve(photo)
x = to_tensor(photo)  # 1 x 3 x H x W
H, W = photo.shape[:2]
print(f"{picker.path.name}: {W}x{H}, preset {cfg.preset}")
assert x.shape == (1, 3, H, W) and 0 <= float(x.min()) and float(x.max()) <= 1

# %% [markdown]
# ## 1. The target: unsharp masking (pseudo-HR)
#
# The photo is the best picture of the scene we have; the model should learn to produce
# something a little *sharper* than its input. Unsharp masking adds back the detail that a
# Gaussian blur removes, but only where that detail is above a threshold (a soft mask), so
# flat areas and their noise stay untouched. Here it is written out once, with `sr_core`'s
# own blur; after this cell we call `usm_sharpen`.

# %%
kernel = gaussian_kernel(11)  # size 11, sigma 2.0 by OpenCV's rule for sigma=0
residual = x - filter2d(x, kernel)  # the detail the blur removed
sharp = (x + 1.0 * residual).clamp(0, 1)
mask = (residual.abs() * 255 > 5).float()  # where the detail is worth sharpening...
soft = filter2d(mask, kernel)  # ...with soft edges
usm_by_hand = soft * sharp + (1 - soft) * x

usm = usm_sharpen(x)  # the package's version, used by the trainer
assert torch.allclose(usm, usm_by_hand, atol=1e-6)
print(f"mask covers {float(soft.mean()):.0%} of the image; mean |change| {float((usm - x).abs().mean()) * 255:.2f}/255")

# %%
fig = viz.image_grid(
    [photo, to_numpy(soft), to_numpy(usm), np.clip(0.5 + 4 * (to_numpy(usm) - photo), 0, 1)],
    ["photo", "soft mask (per channel)", "unsharp-masked (pseudo-HR)", "difference x4"],
    size=2.6,
)
plt.show()

# %% [markdown]
# ## 2. Blur kernels: every family and size
#
# The pseudo-LR starts with a random blur. `random_kernel` draws a family with the
# probabilities in `DegradationConfig.kernel_probs` and then its shape parameters. The
# `paper` preset only uses isotropic/anisotropic Gaussians (90 %) and the sinc low-pass
# (10 %); the generalized and plateau families (from BSRGAN / Real-ESRGAN) are available by
# changing those probabilities. Below, each family is forced in turn, at each kernel size,
# with a slightly wider sigma range than the paper's (0.2-0.5 px is almost a delta at size 3).
# Every kernel is padded to 7x7.

# %%
sizes = (3, 5, 7)
gen = torch.Generator().manual_seed(SEED)
kernels, titles = [], []
for family in KERNEL_FAMILIES:
    for size in sizes:
        only = DegradationConfig(kernel_sizes=(size,), kernel_probs={family: 1.0}, blur_sigma=(0.6, 1.5))
        k, info = random_kernel(only, gen)
        assert k.shape == (7, 7) and abs(float(k.sum()) - 1) < 1e-5 and info["family"] == family
        kernels.append(k.numpy())
        titles.append(f"{family}\n{size}x{size}")
fig = viz.image_grid(kernels, titles, ncols=len(sizes) * 2, size=1.45, cmap="magma")
plt.show()
print(f"{len(kernels)} kernels ({len(KERNEL_FAMILIES)} families x {len(sizes)} sizes), each sums to 1")

# %% [markdown]
# The same kernels applied to the photo (size 7, one per family); a zoomed crop shows the
# difference better than the whole image. Note the ringing of the sinc kernel.

# %%
crop = (slice(H // 4, H // 4 + 48), slice(W // 4, W // 4 + 48))
blurred = [photo[crop]]
for i, family in enumerate(KERNEL_FAMILIES):
    k = torch.from_numpy(kernels[i * len(sizes) + 2])
    blurred.append(to_numpy(filter2d(x, k))[crop])
fig = viz.image_grid(blurred, ["photo", *KERNEL_FAMILIES], ncols=4, size=2.2)
plt.show()

# %% [markdown]
# ## 3. Noise: Gaussian or Poisson, colour or gray
#
# After blurring and shrinking, noise is added: with probability 0.5 Gaussian
# (sigma 1-3 on the 0-255 scale), otherwise Poisson (shot) noise scaled by 0.05-0.5; in 40 %
# of the cases the noise is gray (the same on every channel). The paper's noise is faint, so
# the noise itself is also shown, amplified 10x.

# %%
gen = torch.Generator().manual_seed(SEED)
no, yes = torch.tensor([False]), torch.tensor([True])
noises = {
    "Gaussian, colour": gaussian_noise(x.shape, torch.tensor([3.0]), no, gen),
    "Gaussian, gray": gaussian_noise(x.shape, torch.tensor([3.0]), yes, gen),
    "Poisson, colour": poisson_noise(x, torch.tensor([0.5]), no, gen),
    "Poisson, gray": poisson_noise(x, torch.tensor([0.5]), yes, gen),
}
noisy = [to_numpy((x + n).clamp(0, 1))[crop] for n in noises.values()]
amplified = [to_numpy((0.5 + 10 * n).clamp(0, 1))[crop] for n in noises.values()]
fig = viz.image_grid(noisy + amplified, [*noises] + [f"{k}: noise x10" for k in noises], ncols=4, size=2.2)
plt.show()
for name, n in noises.items():
    gray = bool(torch.allclose(n[:, 0], n[:, 1]) and torch.allclose(n[:, 1], n[:, 2]))
    assert gray == name.endswith("gray") and torch.isfinite(n).all()

# %% [markdown]
# ## 4. JPEG and resize modes
#
# JPEG compression (quality 70-95) exists in the original code but is switched off
# (`jpeg_prob = 0`); here it is for completeness. Resizing uses one of area / bilinear /
# bicubic, picked at random for the way down and again for the way back.

# %%
qualities = (95, 70, 30, 10)
jpegs = [to_numpy(jpeg(x[0], q)[None])[crop] for q in qualities]
modes = ("nearest", "area", "bilinear", "bicubic")
round_trips = [to_numpy(resize(resize(x, (H // 2, W // 2), m), (H, W), m).clamp(0, 1))[crop] for m in modes]
fig = viz.image_grid(jpegs + round_trips, [f"JPEG q={q}" for q in qualities] + [f"{m} 0.5x and back" for m in modes],
                     ncols=4, size=2.2)
plt.show()
assert all(j.shape == photo[crop].shape for j in jpegs + round_trips)

# %% [markdown]
# ## 5. The full random degradation
#
# `degrade` chains it all: blur with a random kernel, shrink by a random factor (0.8-1.0)
# with a random mode, add noise, (JPEG), bring it back to the original size with a random
# mode and quantize to 8 bits. It returns what it drew for each image of the batch.

# %%
gen = torch.Generator().manual_seed(SEED)
batch = degrade(x.expand(8, -1, -1, -1), cfg.degradation, gen)
assert batch.image.shape == (8, 3, H, W)
fig = viz.image_grid([to_numpy(batch.image[i : i + 1])[crop] for i in range(8)],
                     [f"{d['kernel']['family']} {d['kernel']['size']}, {d['noise']['type']}"
                      f"{' gray' if d['noise']['gray'] else ''}\n{d['down_mode']}->{d['up_mode']} x{d['resize_factor']:.2f}"
                      for d in batch.draws], ncols=4, size=2.2)
plt.show()

# %% [markdown]
# ## 6. The pseudo pairs at every image scale
#
# Training runs one stage per *image scale* (the photo resized with Lanczos, coarse first;
# the paper uses 0.9x and 1.0x). A `PairSampler` draws batches of (x0, y) pairs in [-1, 1]:
# x0 is the unsharp-masked image and y its degraded copy. The `paper` preset draws one fixed
# batch of 8 on the full image; `smoke` and `default` draw fresh pairs every step (`smoke`
# on 48-px crops).

# %%
scales = image_scales(photo, cfg.data)
pairs, titles = [], []
for s, img in zip(sorted(cfg.data.image_scales), scales):
    expect = (round(W * s), round(H * s))
    assert (img.shape[1], img.shape[0]) == expect, (img.shape, expect)
    sampler = PairSampler(img, cfg.data, cfg.degradation, generator=torch.Generator().manual_seed(SEED))
    x0, y = sampler.next_batch()
    assert x0.shape == y.shape and x0.shape[0] == cfg.data.batch_size
    assert -1 <= float(y.min()) and float(y.max()) <= 1
    pairs += [viz.from_signed(x0[:1]), viz.from_signed(y[:1])]
    titles += [f"scale {s}: x0 (pseudo-HR) {x0.shape[-1]}px", f"scale {s}: y (pseudo-LR)"]
fig = viz.image_grid(pairs, titles, ncols=4, size=2.4)
plt.show()
print("image scales:", [f"{im.shape[1]}x{im.shape[0]}" for im in scales])

# %% [markdown]
# ## 7. Try it yourself
#
# A hand-set degradation: blur sigma, Gaussian noise, JPEG quality and a shrink factor
# (shrink by it, then bicubic back up: what an upscaler has to undo). First a static grid of
# a few settings (it also shows on GitHub), then the same with sliders.

# %%
settings = [
    dict(blur_sigma=0.0, noise_sigma=0.0, jpeg_quality=100, resize_factor=1.0),
    dict(blur_sigma=1.0, noise_sigma=0.0, jpeg_quality=100, resize_factor=1.0),
    dict(blur_sigma=0.5, noise_sigma=8.0, jpeg_quality=100, resize_factor=1.0),
    dict(blur_sigma=0.5, noise_sigma=3.0, jpeg_quality=20, resize_factor=1.0),
    dict(blur_sigma=0.5, noise_sigma=3.0, jpeg_quality=90, resize_factor=2.0),
    dict(blur_sigma=0.5, noise_sigma=3.0, jpeg_quality=90, resize_factor=4.0),
]
rendered = [viz.render_degradation(photo, **p) for p in settings]
fig = viz.image_grid([r[crop] for r in rendered],
                     [f"blur {p['blur_sigma']}, noise {p['noise_sigma']:g}\nq={p['jpeg_quality']}, shrink {p['resize_factor']:g}x"
                      for p in settings], ncols=3, size=2.4)
plt.show()
assert all(r.shape == photo.shape and 0 <= r.min() and r.max() <= 1 for r in rendered)
assert np.abs(rendered[0] - photo).max() <= 0.5 / 255 + 1e-6  # no degradation = the photo (8-bit)

# %% [markdown]
# Move a slider: the degraded copy is redrawn from the photo (zoomed 2x for a small photo).
#
# > Reopened a saved notebook and see *Error displaying widget: model not found* instead of
# > the sliders? A widget lives in the kernel that drew it, not in the file. Run the
# > notebook again (*Run > Run All Cells*), or clear the old outputs first
# > (*Edit > Clear Outputs of All Cells*).

# %%
# NBVAL_IGNORE_OUTPUT
ZOOM = 2 if max(H, W) <= 160 else 1
panel = viz.degradation_panel(photo, zoom=ZOOM)
panel

# %%
# What the panel shows is the hand-set degradation of its sliders' values.
settings_now = {name: slider.value for name, slider in panel.sliders.items()}
assert panel.image.value == viz.array_to_png(viz.render_degradation(photo, **settings_now), zoom=ZOOM)
print("panel:", ", ".join(f"{k} {v:g}" for k, v in settings_now.items()))

# %% [markdown]
# ## Summary
#
# - The **pseudo-HR** target is the unsharp-masked photo (`usm_sharpen`): detail boosted only
#   where the mask says there is detail.
# - The **pseudo-LR** condition is the photo degraded at random (`degrade`): a kernel from
#   7 families, a resize, Gaussian/Poisson noise, optional JPEG, and back to size.
# - `PairSampler` serves these pairs for each image scale; notebook 02 trains on them.
