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
# # 04 · Diffusion explorer: one reverse chain, step by step
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/OWNER/sr_core/blob/main/notebooks/04_diffusion_explorer.ipynb)
#
# Each progressive step of notebook 03 runs a full reverse diffusion. ResShift diffusion does
# not start from pure noise: it starts from the upscaled input y (plus noise, in the paper's
# stochastic sampler) and *shifts the residual* y - x0 away, step by step.
#
# **What you will learn**
# - the schedule: eta_t (how much of the residual y - x0 is left at step t) and the noise
#   standard deviation kappa * sqrt(eta_t);
# - what x_t and the model's prediction of x0 look like at every timestep;
# - how one reverse step is computed (shown once, checked against `sr_core`);
# - an explorer with a slider and a Play button (after a static grid).

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
IMAGE = "coffee_crop.png"  # the bundled sample, in data/
# Your own photo: a path (empty: the sample), or UPLOAD = True to pick one in Colab.
PHOTO = ""  # @param {type:"string"}
UPLOAD = False  # @param {type:"boolean"}
SEED = 0
STOCHASTIC = True  # the paper's sampler (noise to watch disappear); False: the deterministic one

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
# Uploads are saved under `outputs/uploads/`. The explorer works on its centre (at most
# 128x128; 64x64 with `SR_SMOKE=1`), which its 2x step doubles.

# %%
from sr_core.faces import viz

picker = viz.PhotoPicker(PHOTO or DATA / IMAGE, upload=UPLOAD, folder=ROOT / "outputs" / "uploads")
picker

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch

from sr_core import Upscaler
from sr_core.method.diffusion import ResShiftDiffusion
from sr_core.runtime.device import resolve_device

DEVICE = resolve_device("auto")  # what Upscaler(device="auto") picks
if SMOKE:
    torch.set_num_threads(1)  # tiny tensors: extra threads cost more than they give on a busy CPU
torch.manual_seed(SEED)
print("device:", DEVICE)

# %% [markdown]
# ## 1. The schedule
#
# Forward process: `x_t = x0 + eta_t (y - x0) + kappa sqrt(eta_t) eps`. sqrt(eta_t) grows
# exponentially from 0.01 to 0.99 over a power-warped grid, so eta_T is about 0.98: at the
# last step x_t is nearly y plus noise of std about kappa = 1.

# %%
photo = picker.load(max_side=64 if SMOKE else 128)  # 64x64 in smoke mode: the 2x step then makes 128x128
H, W = photo.shape[:2]
cfg = Upscaler("smoke" if SMOKE else "default", seed=SEED).resolve(photo, scale=2)  # what a 2x fit uses
diffusion = ResShiftDiffusion(cfg.diffusion)
eta = diffusion.eta.numpy()
std = np.array(diffusion.noise_std())
print("t      " + " ".join(f"{t:>6d}" for t in range(1, diffusion.timesteps + 1)))
print("eta_t  " + " ".join(f"{v:>6.3f}" for v in eta))
assert len(eta) == cfg.diffusion.timesteps and np.all(np.diff(eta) > 0) and np.all(np.diff(std) > 0)
assert np.isclose(std[-1], cfg.diffusion.kappa * cfg.diffusion.max_noise_level)
fig = viz.schedule_figure(diffusion)
plt.show()

# %% [markdown]
# ## 2. A model and one progressive step
#
# Fit an `Upscaler` on the photo (the `smoke` preset with `SR_SMOKE=1`, else `default`), then
# upscale it 2x with `keep_frames=True`: it keeps x_t and the predicted x0 of every reverse
# step (on the CPU) in `up.last.frames`. The explorer uses the paper's *stochastic* sampler,
# so there is noise to watch disappear; the `default` preset samples deterministically (it
# starts at y and stays close to it) and then back-projects onto the input: set
# `STOCHASTIC = False` at the top to see that instead. How it samples is a config override.

# %%
sampler = {"infer.stochastic": True, "infer.back_projection": 0} if STOCHASTIC else {}
up = Upscaler("smoke" if SMOKE else "default", seed=SEED, **sampler).fit(photo, scale=2)
assert up.config.diffusion == cfg.diffusion
out = up.upscale(scale=2, keep_frames=True)  # an array in, an array out
plan, infer_cfg = up.last.plan, up.config.infer
frames = up.last.frames[0]  # the reverse chain of the first (here: only) plan step
T = diffusion.timesteps
print(f"{W}x{H} -> {plan[0].size[0]}x{plan[0].size[1]}: {len(frames)} frames, t = {[f.t + 1 for f in frames]}")
assert len(plan) == 1 and infer_cfg.stochastic == STOCHASTIC
assert len(frames) == T and [f.t for f in frames] == list(range(T - 1, -1, -1))
assert all(f.x_t.shape == f.x0_pred.shape == (1, 3, 2 * H, 2 * W) for f in frames)
assert all(float(f.x0_pred.abs().max()) <= 1 for f in frames)  # predictions are clamped to [-1, 1]
if not infer_cfg.back_projection:
    assert np.allclose(viz.from_signed(frames[-1].x0_pred), out, atol=1e-6)  # last prediction = result

# %% [markdown]
# ## 3. One reverse step, by hand
#
# Given x_t and the predicted x0, the next state comes from the posterior
# `q(x_{t-1} | x_t, x0)`: mean `(eta_{t-1}/eta_t) x_t + (alpha_t/eta_t) x0` with
# `alpha_t = eta_t - eta_{t-1}`, variance `kappa^2 (eta_{t-1}/eta_t) alpha_t`. The stochastic
# sampler (the paper's) starts at `y + kappa sqrt(eta_T) eps` and draws from it; the
# deterministic one (`cfg.infer.stochastic = False`) starts at y and takes the mean. Here is
# one step by hand, checked against the next frame: with noise, what is left after removing
# the mean, divided by the standard deviation, should be standard normal; without, nothing.

# %%
k = 0  # the first reverse step: from t = T to t = T-1
t = frames[k].t
eta_t, eta_prev = float(diffusion.eta[t]), float(diffusion.eta[t - 1]) if t > 0 else 0.0
alpha = eta_t - eta_prev
mean = (eta_prev / eta_t) * frames[k].x_t + (alpha / eta_t) * frames[k].x0_pred
var = cfg.diffusion.kappa**2 * (eta_prev / eta_t) * alpha
ref_mean, ref_var = diffusion.q_posterior(frames[k].x_t, frames[k].x0_pred, torch.tensor([t]))
assert torch.allclose(mean, ref_mean, atol=1e-5) and np.isclose(var, float(ref_var.flatten()[0]))
if T > 1 and infer_cfg.stochastic:
    z = (frames[k + 1].x_t - mean) / var**0.5
    print(f"step t={t + 1} -> {t}: residual noise mean {float(z.mean()):+.3f}, std {float(z.std()):.3f}")
    assert abs(float(z.mean())) < 0.1 and 0.9 < float(z.std()) < 1.1
elif T > 1:
    print(f"step t={t + 1} -> {t}: deterministic sampler, x_(t-1) is the posterior mean")
    assert torch.allclose(frames[k + 1].x_t, mean.to(frames[k + 1].x_t), atol=1e-5)

# %% [markdown]
# ## 4. Every step, static
#
# Top row: the state x_t, from y (left; noisy with the stochastic sampler) to the result. Bottom row: the model's guess of
# x0 at that step. The guesses change little: the network sees y as well, and predicts x0
# directly.

# %%
fig = viz.frames_figure(frames)
plt.show()
first, last = viz.explorer_frame(frames, 0), viz.explorer_frame(frames, T - 1)
assert first.shape == last.shape == (2 * H, 2 * (2 * W) + 4, 3)
if T > 1:
    assert not np.allclose(first, last)

# %% [markdown]
# ## 5. The explorer
#
# Drag the slider or press Play: x_t and the predicted x0 at each step, and where that step
# sits on the schedule. The pictures are precomputed; the slider only picks one. Steps are
# counted from 1 (at t = T) to T, on the slider and in the picture's title alike.
#
# > Reopened a saved notebook and see *Error displaying widget: model not found* instead of
# > the slider? A widget lives in the kernel that drew it, not in the file. Run the
# > notebook again (*Run > Run All Cells*), or clear the old outputs first
# > (*Edit > Clear Outputs of All Cells*).

# %%
# NBVAL_IGNORE_OUTPUT
explorer = viz.diffusion_explorer(frames, diffusion)
explorer

# %%
# The picture is the one of the slider's step, and its caption names that same step.
step = explorer.slider.value
assert explorer.image.value == explorer.pngs[step - 1] and len(explorer.pngs) == T
assert explorer.caption.value == viz.explorer_title(frames, step) and explorer.slider.max == T
print(explorer.caption.value)

# %% [markdown]
# ## Summary
#
# - ResShift starts at y (plus `kappa sqrt(eta_T) eps` when stochastic), not at pure noise,
#   and removes the residual y - x0 (and the noise) over T steps.
# - `diffusion.sample_steps` yields `(t, x_t, x0_pred)` at every step; `upscale(...,
#   keep_frames=True)` keeps them per plan step, which is all this explorer needs.
