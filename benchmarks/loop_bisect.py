"""One compact training loop whose every difference from ZSSR's can be switched on its own.

    python benchmarks/loop_bisect.py '{}'                                  # our `default` loop
    python benchmarks/loop_bisect.py '{"pairs": "zssr", "objective": "regress", "filters": 16,
        "lr": 3e-3, "schedule": "constant", "ema": false, "batch": 1, "crop": 64,
        "median8": true, "bp": "matlab", "l1": true}'                       # ZSSR's loop, NextNet
    python benchmarks/loop_bisect.py '{"filters": 16, "steps": 800, "lr": 3e-3, "l1": true,
        "batch": 2, "crop": 64}'                                            # the new default

Bench LR of one skimage photo (192 x 192 centre crop, x2 unless "scale"), one torch thread.
Switches (JSON, every key optional): "pairs" ours (scale-aware pairs from the `default`
preset's degradation, stage by stage over its image scales) or zssr (ZSSR's fathers, MATLAB
bicubic down and up); "objective" diffusion (ResShift loss, 15-step deterministic sampler)
or regress (x_t = y, t = 0); "filters", "steps", "batch", "crop", "lr", "schedule" (cosine or
constant), "ema" (0.99, used for sampling), "l1" (else MSE), "median8" (median of the 8
dihedral outputs before back-projection, as ZSSR), "bp" (torch: `sr_core.method.infer.back_project`;
matlab: ZSSR's), "seed", "image", "protocol". Prints one JSON record (PSNR-Y with and without
back-projection, training seconds) and appends it to outputs/bench/loop_bisect.jsonl.
Not a test: no time limits.
"""

from __future__ import annotations

import copy
import json
import math
import sys
import time

import numpy as np
import torch

from sr_core.evaluation import baselines
from sr_core.evaluation.bench import append_record, load_images
from sr_core.config import preset
from sr_core.method.pairs import PairSampler, image_scales, to_numpy, to_tensor
from sr_core.method.degradation import resize
from sr_core.method.diffusion import ResShiftDiffusion
from sr_core.method.infer import back_project
from sr_core.evaluation.metrics import psnr_y
from sr_core.method.model import NextNet
from sr_core.evaluation.protocols import imresize, make_lr
from sr_core.method.train import update_ema

DEFAULTS = {"image": "astronaut", "protocol": "bicubic", "scale": 2, "pairs": "ours", "objective": "diffusion",
            "filters": 8, "steps": 400, "batch": 16, "crop": 48, "lr": 2e-3, "schedule": "cosine", "ema": True,
            "l1": False, "median8": False, "bp": "torch", "seed": 0}


def pair_source(opt: dict, lr_img: np.ndarray, cfg, rng: np.random.Generator):
    """A function step -> (x0, y) batch in [-1, 1], and the upsampler inference must use."""
    s = opt["scale"]
    if opt["pairs"] == "zssr":
        trainer = baselines._ZSSRTrainer([lr_img], s, lambda x: imresize(x, 1.0 / s),
                                         baselines.ZSSRConfig(crop=opt["crop"]), rng,
                                         make_net=lambda: torch.nn.Conv2d(1, 1, 1))

        def draw(step: int):
            pairs = [trainer._pair() for _ in range(opt["batch"])]
            y = torch.cat([baselines._t(p[0]) for p in pairs]).float()
            x0 = torch.cat([baselines._t(p[1]) for p in pairs]).float()
            return x0 * 2 - 1, y * 2 - 1

        return draw, lambda lr, size: imresize(lr, size=size)
    gen = torch.Generator().manual_seed(opt["seed"])
    samplers = [PairSampler(im, cfg.data, cfg.degradation, generator=gen) for im in image_scales(lr_img, cfg.data)]

    def draw(step: int):  # coarse scales first, equal shares of the steps, as `sr_core.method.train`
        return samplers[min(len(samplers) - 1, step * len(samplers) // opt["steps"])].next_batch()

    return draw, lambda lr, size: to_numpy(resize(to_tensor(lr), size, "bicubic").clamp(0, 1)).astype(np.float64)


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    opt = {**DEFAULTS, **(json.loads(argv[0]) if argv else {})}
    unknown = set(opt) - set(DEFAULTS)
    if unknown:
        raise SystemExit(f"unknown switch(es): {', '.join(sorted(unknown))}")
    torch.set_num_threads(1)
    torch.manual_seed(opt["seed"])
    rng = np.random.default_rng(opt["seed"])
    s = opt["scale"]
    (_, hr), = load_images(None, 192, only=[opt["image"]])
    case = make_lr(hr, s, opt["protocol"], name=opt["image"])
    cfg = preset("default")
    cfg.seed, cfg.model.filters = opt["seed"], opt["filters"]
    cfg.data.crop_size, cfg.data.batch_size, cfg.data.step_factor = opt["crop"], opt["batch"], (float(s), float(s))
    diffusion = ResShiftDiffusion(cfg.diffusion)
    net = NextNet(cfg.model)
    ema = copy.deepcopy(net).requires_grad_(False)
    optimizer = torch.optim.Adam(net.parameters(), lr=opt["lr"])
    draw, upsample = pair_source(opt, case.lr, cfg, rng)
    # A plain regressor sees x_t = y at t = 0: the same loss call, the schedule's x_t ignored.
    denoise = (lambda x_t, y, t: net(y, y, torch.zeros_like(t))) if opt["objective"] == "regress" else net
    decay = 0.99 if opt["ema"] else 0.0
    t0 = time.perf_counter()
    for step in range(opt["steps"]):
        if opt["schedule"] == "cosine":
            for group in optimizer.param_groups:
                group["lr"] = opt["lr"] * 0.5 * (1 + math.cos(math.pi * step / opt["steps"]))
        x0, y = draw(step)
        loss, _ = diffusion.loss(denoise, x0, y, pixel_loss="l1" if opt["l1"] else "mse")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        update_ema(ema, net, decay)
    train_s = time.perf_counter() - t0
    model = ema.eval()

    def predict(lr: np.ndarray) -> np.ndarray:
        y = to_tensor(upsample(lr, (lr.shape[0] * s, lr.shape[1] * s))) * 2 - 1
        with torch.no_grad():
            if opt["objective"] == "regress":
                x0 = model(y, y, torch.zeros(1, dtype=torch.long))
            else:
                for frame in diffusion.sample_steps(model, y, stochastic=False):
                    x0 = frame.x0_pred
        return to_numpy(((x0 + 1) / 2).clamp(0, 1)).astype(np.float64)

    if opt["median8"]:
        outs = [baselines._undihedral(predict(np.ascontiguousarray(baselines._dihedral(case.lr, k))), k) for k in range(8)]
        out = np.median(np.stack(outs), axis=0)
    else:
        out = predict(case.lr)
    raw = psnr_y(out, case.hr, s)
    if opt["bp"] == "matlab":
        for _ in range(10):
            out = np.clip(out + imresize(case.lr - imresize(out, 1.0 / s), size=out.shape[:2]), 0, 1)
    else:
        out = to_numpy(back_project(to_tensor(out), to_tensor(case.lr), 10)).astype(np.float64)
    record = {**opt, "psnr_y_no_bp": round(raw, 3), "psnr_y": round(psnr_y(out, case.hr, s), 3),
              "train_s": round(train_s, 1)}
    print(json.dumps(record))
    return append_record(record, "outputs/bench/loop_bisect.jsonl")


if __name__ == "__main__":
    main()
