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
# # 02 · Multi-scale training, stage by stage
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/OWNER/sr_core/blob/main/notebooks/02_multiscale_training.ipynb)
#
# The model is trained on one photo, one *image scale* at a time, coarse first. Each stage is
# one call to `sr_core.method.train.train_stage`; `sr_core.method.train.train` (what `sr-core train` runs)
# is just a loop over these calls with checkpoints. Here the loop is unrolled so each stage
# can be watched.
#
# **What you will learn**
# - what the presets `paper`, `default`, `fast` and `smoke` set, and how they differ;
# - how a `TrainState`, a `PairSampler` and the `ResShiftDiffusion` fit together;
# - how the loss falls in each stage (progress bar and a live plot);
# - what the model predicts from noisy inputs at a few timesteps after each stage;
# - how a checkpoint is saved and loaded back.

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
LIVE_EVERY = 10  # redraw the live loss plot every this many steps

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
# here, so each stage trains in reasonable time.

# %%
from sr_core.faces import viz

picker = viz.PhotoPicker(PHOTO or DATA / IMAGE, upload=UPLOAD, folder=ROOT / "outputs" / "uploads")
picker

# %%
import dataclasses

import matplotlib.pyplot as plt
import numpy as np
import torch

from sr_core import Upscaler
from sr_core.config import PRESETS, preset
from sr_core.method.diffusion import ResShiftDiffusion
from sr_core.method.pairs import PairSampler, image_scales
from sr_core.method.perceptual import load_perceptual
from sr_core.method.train import TrainState, train_stage
from sr_core.resolve import describe
from sr_core.runtime.checkpoint import image_fingerprint
from sr_core.runtime.device import resolve_device

DEVICE = resolve_device("auto")
if SMOKE:
    torch.set_num_threads(1)  # tiny tensors: extra threads cost more than they give on a busy CPU
torch.manual_seed(SEED)
OUT = ROOT / "outputs" / "notebooks" / "02_multiscale_training"
print("device:", DEVICE)

# %% [markdown]
# ## 1. The presets
#
# A configuration is a set of typed dataclasses (`sr_core.config`). Six presets:
# - `paper`: the original implementation's defaults (one fixed batch of 8 degradations per
#   scale, 100 steps per scale, lr 1e-2, MSE + LPIPS, 15 diffusion steps);
# - `default`: our measured best for everyday use (see its docstring): fresh scale-aware
#   pairs on crops, more image scales and steps, EMA weights, deterministic sampling; from a
#   64x64 input up it becomes `wide` (below, the table shows it for a small input);
# - `fast`: `default` on two 64-px crops per step instead of sixteen 48-px ones — the same
#   benchmark scores for a quarter of the training time;
# - `wide`: `fast` with a 16-filter network trained 3x as long on L1;
# - `quality`: for one x2 step, three trainings of a plain 8 x 64-channel convolution chain
#   (ZSSR's body) and one of `wide`'s network, averaged at every reverse step, about 8x
#   `wide`'s time; for x4 and up one chain and `wide`'s network, trained again on each x2
#   step's own input (the table shows the one-step configuration);
# - `smoke`: seconds on a CPU (tests, this notebook with `SR_SMOKE=1`).
#
# The fields where they differ:

# %%
def flat(cfg):
    d = dataclasses.asdict(cfg)
    return {f"{s}.{k}": v for s, sub in d.items() if isinstance(sub, dict) for k, v in sub.items()}

presets = {name: flat(preset(name)) for name in PRESETS}
differ = [k for k in presets["paper"] if len({repr(p[k]) for p in presets.values()}) > 1]
print(f"{'field':<26}" + "".join(f"{n:>12}" for n in presets))
for k in differ:
    print(f"{k:<26}" + "".join(f"{str(p[k]):>12}" for p in presets.values()))
assert "train.steps_per_scale" in differ and "diffusion.timesteps" in differ

# %% [markdown]
# This notebook trains with the configuration that `Upscaler(...).fit(photo, scale=2)` would
# use: `Upscaler.resolve` sizes `default` by the photo and makes its pairs for the 2x steps
# of the plan (`cfg.resolved` says what it decided, and why).

# %%
photo = picker.load(max_side=256)
cfg = Upscaler("smoke" if SMOKE else "default", seed=SEED).resolve(photo, scale=2)
print(describe(cfg))  # what a fit prints first
scales = image_scales(photo, cfg.data)  # one stage per image scale, coarse first
print(f"preset {cfg.preset}: {cfg.total_steps()} steps over {len(scales)} stages "
      f"({', '.join(f'{s.shape[1]}x{s.shape[0]}' for s in scales)}), batch {cfg.data.batch_size}, "
      f"{cfg.diffusion.timesteps} diffusion steps")
assert len(scales) == len(cfg.data.image_scales)

# %% [markdown]
# ## 2. The pieces
#
# - `TrainState` holds everything that changes: the model (about 21K parameters), its EMA
#   copy, the optimizer, the random generator of the diffusion noise, the step counters and
#   the loss history. A checkpoint is this state, serialised.
# - `ResShiftDiffusion` owns the noise schedule; its `loss(model, x0, y)` noises x0 towards y
#   at a random timestep and scores the model's guess of x0.
# - A `PairSampler` per stage serves (x0, y) pseudo pairs of that image scale (notebook 01).
#
# The perceptual (LPIPS) loss needs ImageNet weights from the internet; where they cannot be
# loaded, training warns once and uses MSE alone (`smoke` does not use it).

# %%
state = TrainState.fresh(cfg, image_fingerprint(photo), DEVICE)
diffusion = ResShiftDiffusion(cfg.diffusion)
perceptual = load_perceptual("vgg", DEVICE) if cfg.train.perceptual_weight > 0 else None
n_params = sum(p.numel() for p in state.model.parameters())
print(f"model: {n_params:,} parameters; diffusion: T = {diffusion.timesteps}")


def data_generator(stage):
    """The random generator of a stage's pairs, seeded as sr_core.method.train.train seeds it."""
    return torch.Generator().manual_seed(cfg.seed * 1009 + stage)


def predictions(model, sampler, stage, timesteps):
    """Noise one pair to a few timesteps and show the model's guess of x0 (MSE in the title)."""
    x0, y = sampler.draw()
    x0, y = x0[:1], y[:1]
    gen = torch.Generator().manual_seed(SEED)
    images = [viz.from_signed(x0), viz.from_signed(y)]
    titles = ["x0 (target)", f"y (condition)\nMSE {float(((y - x0) ** 2).mean()):.4f}"]
    errors = []
    with torch.no_grad():
        for t in timesteps:
            tt = torch.tensor([t])
            x_t = diffusion.q_sample(x0, y, tt, generator=gen)
            pred = model(x_t, y, tt.to(DEVICE)).clamp(-1, 1)
            errors.append(float(((pred - x0) ** 2).mean()))
            images += [viz.from_signed(x_t), viz.from_signed(pred)]
            titles += [f"x_t, t={t + 1}", f"x0 pred, t={t + 1}\nMSE {errors[-1]:.4f}"]
    fig = viz.image_grid(images, titles, ncols=len(images), size=1.9,
                         suptitle=f"after stage {stage + 1}")
    plt.show()
    return errors


SHOW_T = sorted({0, diffusion.timesteps // 2, diffusion.timesteps - 1})

# %% [markdown]
# After each stage, `predictions` noises one pair to a few timesteps and shows the model's
# guess of x0 next to it. The MSE under y is the error of simply returning the condition: a
# useful model beats it, at least at small t. (With `SR_SMOKE=1` the model trains for only
# a few dozen steps: expect small gains.)
#
# ## 3. Stage 1: the coarse scale
#
# One call trains the stage. The progress bar and the live plot update as it runs.

# %%
stage = 0
state.stage, state.stage_step = stage, 0
data_gen = data_generator(stage)
sampler = PairSampler(scales[stage], cfg.data, cfg.degradation, generator=data_gen, device=DEVICE)
live = viz.LiveLoss(every=LIVE_EVERY, title=f"stage {stage + 1} loss")
losses = train_stage(state, sampler, diffusion, cfg.steps_for_stage(stage), perceptual=perceptual, on_step=live)
live.draw()
assert len(losses) == cfg.steps_for_stage(stage) and np.isfinite(losses).all()
print(f"stage 1: loss {np.mean(losses[:5]):.4f} (first 5 steps) -> {np.mean(losses[-5:]):.4f} (last 5)")

# %%
sampling_model = state.ema if cfg.infer.use_ema else state.model
errors_1 = predictions(sampling_model, sampler, stage, SHOW_T)
assert np.isfinite(errors_1).all()

# %% [markdown]
# ## 4. The finer stages
#
# The same call on each next scale (coarse to fine, the last one the full-size image). The
# model, optimizer and EMA carry over: each stage fine-tunes what the previous one learned.

# %%
for stage in range(1, len(scales)):
    state.stage, state.stage_step = stage, 0
    data_gen = data_generator(stage)
    sampler = PairSampler(scales[stage], cfg.data, cfg.degradation, generator=data_gen, device=DEVICE)
    live = viz.LiveLoss(every=LIVE_EVERY, title=f"stage {stage + 1} loss")
    losses = train_stage(state, sampler, diffusion, cfg.steps_for_stage(stage), perceptual=perceptual, on_step=live)
    live.draw()
    assert len(losses) == cfg.steps_for_stage(stage) and np.isfinite(losses).all()
    print(f"stage {stage + 1}: loss {np.mean(losses[:5]):.4f} (first 5 steps) -> {np.mean(losses[-5:]):.4f} (last 5)")
    errors = predictions(sampling_model, sampler, stage, SHOW_T)
    assert np.isfinite(errors).all()
assert state.global_step == cfg.total_steps()

# %% [markdown]
# ## 5. Loss per stage
#
# The whole history (one colour per stage, with a moving average). At small t the input x_t
# is almost x0 and the task is easy; at large t it is y plus noise: the loss is an average
# over random timesteps, so it stays noisy.

# %%
fig = viz.loss_figure(state.history, title=f"{picker.path.name}: loss per stage ({cfg.preset})")
plt.show()
assert sorted(set(state.history["stage"])) == list(range(len(scales)))
assert len(state.history["loss"]) == cfg.total_steps()

# %% [markdown]
# ## 6. Save a checkpoint, and upscale with it
#
# `TrainState.save` writes the whole state plus the config as JSON, atomically;
# `TrainState.resume` would continue training from it. `Upscaler.load` takes the same file
# and gives a model ready for sampling (EMA or raw weights, as the config says): the model
# trained by hand above now upscales your photo, as notebook 03 does in detail.

# %%
path = state.save(OUT / "checkpoints" / "last.pt", sampler)
resumed = TrainState.resume(path, cfg, image_fingerprint(photo), DEVICE)
assert resumed.global_step == state.global_step == cfg.total_steps()
print(f"checkpoint: {path.relative_to(ROOT)} ({path.stat().st_size / 1024:.0f} KiB), step {resumed.global_step}")

trained = Upscaler.load(path, device=str(DEVICE))
assert trained.config.model == cfg.model and trained.config.diffusion == cfg.diffusion
x0, y = sampler.draw()
t = torch.zeros(x0.shape[0], dtype=torch.long)
with torch.no_grad():
    assert torch.allclose(trained.model(x0, y, t), sampling_model(x0, y, t), atol=1e-6)
big = trained.upscale(photo, scale=2, progress=False)  # an array in, an array out
assert big.shape == (2 * photo.shape[0], 2 * photo.shape[1], 3) and 0 <= big.min() and big.max() <= 1
fig = viz.compare_figure([photo, big], ["photo", f"2x by the model trained above ({big.shape[1]}x{big.shape[0]})"])
plt.show()

# %% [markdown]
# ## Summary
#
# - Training = one `train_stage` call per image scale, sharing one `TrainState`.
#   `Upscaler(...).fit(photo, scale=2)` runs exactly this loop (`sr_core.method.train.train`,
#   with checkpoints and resume) on the configuration `Upscaler(...).resolve` gave above;
#   from a shell: `sr-core train data/chelsea_crop.png --preset smoke`.
# - The checkpoint holds weights, EMA, optimizer, random states, history and config;
#   `Upscaler.load(path)` upscales with it.
# - Notebook 03 uses such a model to upscale, step by step.
