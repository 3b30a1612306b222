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
# # 03 · Progressive inference: arbitrary-scale upscaling, step by step
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/OWNER/sr_core/blob/main/notebooks/03_progressive_inference.ipynb)
#
# A trained model does not jump to the final size. It goes there in steps: resize the current
# image a little (bicubic), run the full reverse diffusion with that image as the condition
# y, repeat; optionally one more diffusion pass at the final size.
#
# **What you will learn**
# - how `progressive_plan` turns "2 then 4", "3.3x" or "2x wide, 3x tall" into exact sizes;
# - what each intermediate looks like next to bicubic and Lanczos, with zoomed crops;
# - how to measure the result honestly: degrade a photo on purpose, upscale it back and
#   compare with the original (`sr_core.evaluation.metrics.evaluate`), against bicubic and Lanczos;
# - the equivalent `sr-core` and original-style command lines;
# - how to upscale your own photo with an `Upscaler`, save the result and download it.

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
SCALE = 2  # @param {type:"number"}
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
# Uploads are saved under `outputs/uploads/`. The graded test in section 2 uses its centre
# (at most 256x256); section 7 upscales the whole photo and saves the result.

# %%
from sr_core.faces import viz

picker = viz.PhotoPicker(PHOTO or DATA / IMAGE, upload=UPLOAD, folder=ROOT / "outputs" / "uploads")
picker

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch

from sr_core import Upscaler
from sr_core.evaluation.metrics import evaluate
from sr_core.method.infer import bicubic_upscale, progressive_plan, target_size
from sr_core.method.pairs import lanczos_resize
from sr_core.runtime.device import resolve_device

DEVICE = resolve_device("auto")  # what Upscaler(device="auto") picks
if SMOKE:
    torch.set_num_threads(1)  # tiny tensors: extra threads cost more than they give on a busy CPU
torch.manual_seed(SEED)
PRESET = "smoke" if SMOKE else "default"
OUT = ROOT / "outputs" / "notebooks" / "03_progressive_inference"
print("device:", DEVICE)

# %% [markdown]
# ## 1. The plan: exact sizes
#
# `target_size` turns a request into the exact output size (rounded, never truncated);
# `progressive_plan` lists the sizes of the steps. Three requests for a 64x64 input:
# - explicit factors **2 then 4** (the original's `--widthl 2 4 --heightl 2 4`), plus the
#   final refinement pass;
# - **3.3x**: an automatic plan whose steps are at most 2x (so two steps of about 1.82x);
# - **2x wide, 3x tall**: per-axis factors, also in two steps.

# %%
def describe(plan):
    return " -> ".join(f"{s.size[0]}x{s.size[1]}" + (" (refine)" if s.refine_only else "") for s in plan)


IN = (64, 64)
plan_24 = progressive_plan(IN, target_size(IN, scale=4), factors_w=[2, 4], factors_h=[2, 4], final_pass=True)
plan_33 = progressive_plan(IN, target_size(IN, scale=3.3), max_step=2.0)
plan_23 = progressive_plan(IN, target_size(IN, scale_w=2, scale_h=3), max_step=2.0)
for name, plan in [("2 then 4", plan_24), ("3.3x", plan_33), ("2x by 3x", plan_23)]:
    print(f"{name:>9}: 64x64 -> {describe(plan)}")
assert [s.size for s in plan_24] == [(128, 128), (256, 256), (256, 256)] and plan_24[-1].refine_only
assert [s.size for s in plan_33] == [(116, 116), (211, 211)]  # round(64 * 3.3**0.5), round(64 * 3.3)
assert [s.size for s in plan_23] == [(91, 111), (128, 192)]  # (64 * 2**0.5, 64 * 3**0.5), (64*2, 64*3)

# %% [markdown]
# ## 2. A test you can grade: degrade on purpose, upscale back
#
# Without ground truth nothing can be measured. So take the photo as the ground truth (GT),
# shrink it 2x (bicubic with antialiasing: the usual "bicubic protocol"), and give only the
# small image to an `Upscaler`: `fit` trains on it (zero-shot: the input is the only data),
# then `upscale` brings it back up.

# %%
gt = picker.load(max_side=256)
gt = gt[: gt.shape[0] // 2 * 2, : gt.shape[1] // 2 * 2]  # even sides: 2x of the half is the GT again
GT_SIZE = (gt.shape[1], gt.shape[0])
lr_tensor = torch.nn.functional.interpolate(torch.from_numpy(gt).permute(2, 0, 1)[None], scale_factor=0.5,
                                            mode="bicubic", antialias=True, align_corners=False)
lr = np.round(lr_tensor[0].permute(1, 2, 0).clamp(0, 1).numpy() * 255) / 255  # an 8-bit image, as saved
LR_SIZE = (lr.shape[1], lr.shape[0])
print(f"ground truth {GT_SIZE[0]}x{GT_SIZE[1]}, input {LR_SIZE[0]}x{LR_SIZE[1]}")
assert LR_SIZE == (GT_SIZE[0] // 2, GT_SIZE[1] // 2)

up = Upscaler(PRESET, seed=SEED).fit(lr, scale=2)  # `default` is sized by its input
cfg = up.config  # what it trained with, and why: cfg.resolved
print(f"trained {cfg.total_steps()} steps ({cfg.preset}) in {up.train_result.seconds:.0f} s")

# %% [markdown]
# ## 3. Upscale 2x, then 4x
#
# `plan=[2, 4]` asks for 2x, then 4x the input (plus a refinement pass at the final size where
# the preset asks for one: `cfg.infer.final_pass`). `up.last` keeps the plan and every
# intermediate.

# %%
out = up.upscale(plan=[2, 4])  # an array in (lr), an array out
plan = up.last.plan
print("plan:", describe(plan))
assert plan == progressive_plan(LR_SIZE, target_size(LR_SIZE, scale=4), factors_w=[2, 4], factors_h=[2, 4],
                                final_pass=cfg.infer.final_pass)
assert len(up.last.intermediates) == len(plan)
for step, img in zip(plan, up.last.intermediates):
    assert (img.shape[1], img.shape[0]) == step.size and img.min() >= 0 and img.max() <= 1
assert out.shape == (4 * LR_SIZE[1], 4 * LR_SIZE[0], 3) and out.dtype == lr.dtype

# %% [markdown]
# Each step next to bicubic and Lanczos from the input to the same size (whole image, then a
# zoomed crop of the same region).

# %%
for step, img in zip(plan, up.last.intermediates):
    w, h = step.size
    row = [img, bicubic_upscale(lr, (w, h)), lanczos_resize(lr, (w, h))]
    label = f"{w}x{h}" + (" refine" if step.refine_only else "")
    fig = viz.compare_figure(row, [f"sr_core {label}", "bicubic", "Lanczos"])
    plt.show()
    s = w // 3
    fig = viz.compare_figure(row, [f"zoom: sr_core {label}", "zoom: bicubic", "zoom: Lanczos"],
                             crop=(h // 3, w // 3, s))
    plt.show()

# %% [markdown]
# ## 4. Metrics against the ground truth (2x)
#
# The field's protocol (`sr_core.evaluation.metrics`): PSNR and SSIM on the luma (Y) channel with the
# border (2 px for 2x) shaved, PSNR on RGB, and the shift of the mean colour in grey levels.
# Whatever the numbers say, they are shown as they are: a model this small, trained for
# this short a time, does **not** necessarily beat bicubic (the `paper` preset is known to land
# below it; see docs/method.md). Only sizes and finiteness are asserted here.
#
# With `SR_SMOKE=1` the model has trained for seconds on the `smoke` preset: that run checks
# the plumbing, not the method. Run without `SR_SMOKE` to see what the `default` preset does.

# %%
sr_2x = up.upscale(scale=2, progress=False)
candidates = {"sr_core": sr_2x, "bicubic": bicubic_upscale(lr, GT_SIZE), "Lanczos": lanczos_resize(lr, GT_SIZE)}
scores = {name: evaluate(img, gt, border=2) for name, img in candidates.items()}
print(f"{'2x':<9}{'PSNR-Y':>8}{'SSIM-Y':>8}{'PSNR-RGB':>10}{'colour':>8}")
for name, m in scores.items():
    print(f"{name:<9}{m['psnr_y']:>8.2f}{m['ssim_y']:>8.4f}{m['psnr_rgb']:>10.2f}{m['color_shift']:>+8.2f}")
assert all(img.shape == gt.shape for img in candidates.values())
assert all(np.isfinite(v) for m in scores.values() for v in m.values())
fig = viz.compare_figure([gt, *candidates.values()], ["ground truth", *(f"{k} {scores[k]['psnr_y']:.2f} dB" for k in candidates)],
                         crop=(32, 32, 48))
plt.show()

# %% [markdown]
# ## 5. A JPEG-compressed photo
#
# Back-projection makes the result, downscaled, match the input exactly. If the input is a
# JPEG, that copies its compression artefacts back. JPEG leaves a trace in the pixels: each
# 8x8 block's DCT coefficients sit near multiples of the encoder's quantiser steps.
# `sr_core.method.jpeg` looks for that lattice, and where it finds it, inference blurs the
# back-projection residual by one input pixel (`infer.jpeg_residual_blur`): the coarse
# content is still matched, the artefacts are not. Here the same ground truth goes through
# the harness's `realistic` protocol (anisotropic blur, Gaussian noise of 3 grey levels,
# JPEG quality 80), a model trains on that input, and it upscales with the test (the
# default) and without it (`--clean` on the command line). On the four default benchmark
# images this measured +0.15 dB at 2x and +0.08 dB at 4x, with a smoother look; clean inputs
# are not flagged, so they are back-projected exactly as before (docs/decisions.md,
# "Projection inside the chain, and back-projection that knows JPEG"). A photo that is noisy
# but not JPEG'd can ask for the same with `--noisy`.

# %%
from sr_core.method.jpeg import jpeg_evidence
from sr_core.evaluation.protocols import make_lr

case = make_lr(gt, 2, "realistic", name=picker.path.name)
noisy_lr = case.lr.astype(np.float32)
print("realistic LR:", jpeg_evidence(noisy_lr).describe())
print("clean bicubic LR:", jpeg_evidence(lr).describe())
# noisy=None (the default): the Upscaler tests the pixels for JPEG when it upscales.
up_n = Upscaler(PRESET, seed=SEED).fit(noisy_lr, scale=2, progress=False)
# The same model, loaded with noisy=False: it back-projects exactly (`--clean`).
exact = Upscaler.load(up_n.save(OUT / "realistic-model"), noisy=False)
noisy_out = {
    "sr_core, exact (--clean)": exact.upscale(noisy_lr, scale=2, progress=False),
    "sr_core, JPEG test (default)": up_n.upscale(scale=2, progress=False),
}
noisy_out["bicubic"] = bicubic_upscale(noisy_lr, (case.hr.shape[1], case.hr.shape[0]))
for name, img in noisy_out.items():
    m = evaluate(img, case.hr, border=2)
    print(f"{name:<32} PSNR-Y {m['psnr_y']:6.2f}  SSIM-Y {m['ssim_y']:.4f}")
    assert img.shape == case.hr.shape and np.isfinite(m["psnr_y"])
assert jpeg_evidence(noisy_lr).detected and not jpeg_evidence(lr).detected
assert not np.array_equal(*list(noisy_out.values())[:2])  # the test changed the back-projection
fig = viz.compare_figure([case.hr, *noisy_out.values()], ["ground truth", *noisy_out], crop=(32, 32, 48))
plt.show()

# %% [markdown]
# ### If you know the blur
#
# The `realistic` input above was also blurred, by a kernel the harness knows
# (`case.info["kernel"]`, at the output's resolution). Where you know yours (a lens's
# measured PSF, or a kernel estimator's guess), `upscale(..., kernel=k)` (`--kernel FILE` on
# the command line) matches the result to the input *through* that blur, twice
# (`infer.kernel_iterations`): a deblurring step, as IBP's and ZSSR's known-kernel modes do.
# Give it to `fit(photo, scale=s, kernel=k)` as well and the network learns that blur: its
# training pairs are made with the kernel, in one step of the whole scale (presets with
# scale-aware pairs; `smoke` and `paper` only match). On whole Set5 images blurred, noised
# and JPEG'd at 4x, that took `default`'s perceptual distance from 0.336 to 0.258, level
# with ZSSR told the same kernel (0.256 to 0.262 by how its training crops are drawn), at
# 27.17 dB PSNR-Y against ZSSR's 26.87-26.94 (docs/results.md). It sharpens the noise too, so it is a trade: PSNR can fall while the
# perceptual distance (the offline ST-LPIPS the benchmark uses; lower is better) falls with
# it. Both are printed; on a small input such as this one, look at both before choosing.

# %%
from sr_core.evaluation.bench import perceptual_metric

distance, _ = perceptual_metric()  # None if its weights are missing
kernel = case.info["kernel"]
print(f"the blur: {kernel.shape[0]}x{kernel.shape[1]} px, sum {kernel.sum():.3f}")
told = up_n.upscale(scale=2, kernel=kernel, progress=False)
blind = noisy_out["sr_core, JPEG test (default)"]
for name, img in (("sr_core, blind", blind), ("sr_core, told the kernel", told), ("bicubic", noisy_out["bicubic"])):
    m = evaluate(img, case.hr, border=2)
    perc = f"  perceptual {distance(img, case.hr):.4f}" if distance else ""
    print(f"{name:<32} PSNR-Y {m['psnr_y']:6.2f}  SSIM-Y {m['ssim_y']:.4f}{perc}")
    assert img.shape == case.hr.shape and np.isfinite(m["psnr_y"])
assert not np.array_equal(told, blind)
fig = viz.compare_figure([case.hr, blind, told], ["ground truth", "blind", "told the kernel"], crop=(32, 32, 48))
plt.show()

# %% [markdown]
# ## 6. The same from a shell
#
# Everything above has a command line. `sr-core run` trains and upscales in one go (no image:
# the bundled sample); `sr-core upscale` reuses a checkpoint; `--gt` writes the metrics of
# the result and of bicubic. The original project's interface (`python -m sr_core --scope
# ...`) still works and runs the `paper` preset. The cell checks that each line parses.

# %%
commands = [
    "sr-core run data/chelsea_crop.png --scale 2",
    "sr-core run data/chelsea_crop.png --scale 3.3 --preset smoke",
    "sr-core run data/chelsea_crop.png --scale-w 2 --scale-h 3",
    "sr-core upscale IMG --checkpoint CKPT --plan 2 4",
    "sr-core upscale LR.png --checkpoint CKPT --scale 2 --gt GT.png",
    "sr-core run phone_photo.jpg --scale 2",
    "sr-core run noisy_scan.png --scale 2 --noisy",
    "sr-core run clean_render.png --scale 2 --clean",
    "sr-core run blurred.png --scale 2 --kernel psf.npy",
    "python -m sr_core --scope S --mode train --dataset_folder data --image_name chelsea_crop.png "
    "--results_folder outputs/results",
    "python -m sr_core --scope S --mode SR --dataset_folder data --image_name chelsea_crop.png "
    "--results_folder outputs/results --widthl 2 4 --heightl 2 4 --load_milestone 2",
]
from sr_core.faces import cli, original_cli

for line in commands:
    argv = line.split()
    if argv[0] == "sr-core":
        args = cli.build_parser().parse_args(argv[1:])
    else:
        args = original_cli.build_parser().parse_args(argv[3:])
    print(line)

# %% [markdown]
# ## 7. Your photo, upscaled and saved
#
# Everything above, as you would write it in your own script: fit an `Upscaler` on the whole
# photo (yours, if you chose one at the top), upscale it `SCALE` times, save the PNG (with the
# photo's bit depth, and its alpha if it has one) and take it home: Colab downloads it, Jupyter
# shows a link. A large photo takes a while on a CPU; on a GPU, minutes.

# %%
up = Upscaler(PRESET, device="auto", seed=SEED).fit(picker.path, scale=SCALE)
result = up.upscale(scale=SCALE)  # a PIL image: a path in, a picture out
saved = up.last.save(OUT / f"{picker.path.stem}_x{SCALE:g}.png", overwrite=True)
viz.offer_download(saved)

# %%
from PIL import Image

with Image.open(picker.path) as original, Image.open(saved) as written:
    in_size, out_size = original.size, written.size
assert result.size == out_size == target_size(in_size, scale=SCALE) == up.last.size
print(f"{picker.path.name} {in_size[0]}x{in_size[1]} -> {saved.name} {out_size[0]}x{out_size[1]} "
      f"({up.last.seconds:.0f} s); plan {describe(up.last.plan)}")
fig = viz.compare_figure([bicubic_upscale(up.last.source.rgb, out_size), up.last.image],
                         [f"bicubic {out_size[0]}x{out_size[1]}", "sr_core"],
                         crop=(out_size[1] // 3, out_size[0] // 3, min(out_size) // 3))
plt.show()

# %% [markdown]
# ## Summary
#
# - `progressive_plan` gives exact sizes for explicit factors, any real factor and per-axis
#   factors; `upscale` runs one full reverse diffusion per step.
# - Degrading a photo on purpose gives a ground truth to measure against; compare with
#   bicubic and Lanczos every time, and report what you get.
# - For noisy or compressed photos, `--noisy` (`infer.bp_residual_blur`) keeps their noise
#   out of the result, at some cost in texture.
# - Where the blur that made a photo is known, `--kernel` (`fit(..., kernel=k)`) trains on
#   pairs made with it and matches the result to the photo through that blur.
# - Your own photo: `Upscaler(...).fit(photo, scale=2)`, `.upscale(scale=2)`,
#   `.last.save("out.png")`; `up.save(folder)` and `Upscaler.load(folder)` keep the model.
# - Notebook 04 opens one of those reverse diffusions and shows every step.
