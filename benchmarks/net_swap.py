"""Our denoiser inside ZSSR's training loop: is the gap to ZSSR the network or the loop?

    python benchmarks/net_swap.py --net zssr                 # ZSSR as the bench runs it
    python benchmarks/net_swap.py --net next --filters 16 --lr 3e-3 [--depth 4] [--image chelsea]

Runs `sr_core.evaluation.baselines.zssr` (its pairs, L1 loss, adaptive learning rate, x8 median
ensemble and back-projection) on the bench's bicubic-protocol LR of one skimage photo
(192 x 192 centre crop, x2); with ``--net next`` only the network is swapped for NextNet
used as a direct regressor (x_t = y, t = 0). Prints PSNR-Y and seconds and appends the
record to outputs/bench/net_swap.jsonl. Not a test: no time limits.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from sr_core.evaluation import baselines
from sr_core.evaluation.bench import append_record, load_images
from sr_core.config import ModelConfig
from sr_core.evaluation.metrics import psnr_y
from sr_core.method.model import NextNet
from sr_core.evaluation.protocols import make_lr


class DirectNext(torch.nn.Module):
    """NextNet as a one-shot regressor on [0, 1] images: predict x0 from y alone."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.net = NextNet(cfg)

    def forward(self, up: torch.Tensor) -> torch.Tensor:
        y = up * 2 - 1
        return (self.net(y, y, torch.zeros(up.shape[0], dtype=torch.long)) + 1) / 2


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--net", choices=("zssr", "next"), default="next")
    p.add_argument("--image", default="astronaut")
    p.add_argument("--scale", type=int, default=2)
    p.add_argument("--filters", type=int, default=8)
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (ZSSR's: 1e-3)")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    (_, hr), = load_images(None, 192, only=[args.image])
    case = make_lr(hr, args.scale, "bicubic", name=args.image)
    if args.net == "zssr" and args.lr != 1e-3:
        p.error("--lr applies to --net next only")
    net_cfg = ModelConfig(filters=args.filters, depth=args.depth)
    make_net = (lambda: DirectNext(net_cfg)) if args.net == "next" else None
    t0 = time.perf_counter()
    out = baselines.zssr(case.lr, args.scale, cfg=baselines.ZSSRConfig(lr=args.lr), make_net=make_net)
    record = {"net": args.net, "image": args.image, "scale": args.scale, "psnr_y": round(psnr_y(out, case.hr, args.scale), 3),
              "seconds": round(time.perf_counter() - t0, 1)}
    if args.net == "next":
        record.update(filters=args.filters, depth=args.depth, lr=args.lr)
    print(json.dumps(record))
    return append_record(record, "outputs/bench/net_swap.jsonl")


if __name__ == "__main__":
    main()
