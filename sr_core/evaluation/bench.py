"""``sr-core bench``: every method on the same synthesised LR inputs, by the field's metrics.

Cells are (image, method, scale, protocol). Each finished cell is appended to
``results.json`` at once (atomically), so a rerun with the same --out skips it; the SR images
go to ``images/``, the summary table to ``results.md`` and a side-by-side zoom to
``figure.png``. See docs/benchmarks.md for the protocols and the reference numbers.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import threading
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from sr_core.errors import UserError

DEFAULT_IMAGES = ("astronaut", "chelsea", "coffee", "rocket")  # bundled in scikit-image's wheel
DEFAULT_CROP = 192
BASELINES = ("bicubic", "lanczos", "ibp", "zssr")
KERNEL_SUFFIX = "+kernel"
DEFAULT_METHODS = ("bicubic", "lanczos", "ibp", "zssr", "paper", "default")
FIELDS = ("image", "method", "scale", "protocol", "psnr_y", "ssim_y", "psnr_rgb", "color_shift",
          "perceptual", "perceptual_backend", "niqe", "seconds", "peak_mem_mb")


# ----------------------------------------------------------------------------- data
def centre_crop(img: np.ndarray, size: int) -> np.ndarray:
    """The central `size` x `size` square (or the whole image where it is smaller)."""
    if size <= 0:
        return img
    h, w = img.shape[:2]
    ch, cw = min(size, h), min(size, w)
    y, x = (h - ch) // 2, (w - cw) // 2
    return img[y:y + ch, x:x + cw]


def load_images(data: str | Path | None, crop: int, *, only: Sequence[str] | None = None) -> list[tuple[str, np.ndarray]]:
    """(name, H x W x 3 float64 in [0, 1]) for every image of `data`, or the bundled set;
    `only` keeps the named ones (file stems)."""
    if data is None:
        import skimage.data

        names = list(only) if only else list(DEFAULT_IMAGES)
        bad = [n for n in names if n not in DEFAULT_IMAGES]
        if bad:
            raise UserError(f"unknown bundled image(s) {', '.join(bad)}; choose from {', '.join(DEFAULT_IMAGES)}")
        out = [(n, np.asarray(getattr(skimage.data, n)(), np.float64)[..., :3] / 255.0) for n in names]
    else:
        from sr_core.runtime.io import load_image

        folder = Path(data)
        if not folder.is_dir():
            raise UserError(f"--data {folder} is not a folder")
        files = sorted(p for p in folder.iterdir()
                       if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"))
        if not files:
            raise UserError(f"no images in {folder}")
        out = [(p.stem, load_image(p).rgb.astype(np.float64)) for p in files if not only or p.stem in only]
    return [(n, centre_crop(img, crop)) for n, img in out]


# -------------------------------------------------------------------------- methods
class MethodSpec:
    """A named way to go from LR to SR; `options` enter the cache key."""

    def __init__(self, name: str, run: Callable[[Any], np.ndarray], options: dict):
        self.name, self.run, self.options = name, run, options

    @property
    def signature(self) -> str:
        return hashlib.sha1(json.dumps(self.options, sort_keys=True).encode()).hexdigest()[:10]


def sr_core_upscaler(name: str, *, override: dict | None = None, steps: int | None = None, device: str = "cpu",
                     train_perceptual: str = "auto"):
    """The bench's Upscaler for preset `name`: the JSON fields of --preset-override (a "seed"
    among them is the seed), then --steps, and no perceptual loss with --train-perceptual off."""
    from sr_core.upscaler import Upscaler

    fields = dict(override or {})
    seed = fields.pop("seed", None)
    if steps is not None:
        fields["train.steps_per_scale"] = [int(steps)]
    if train_perceptual == "off":
        fields["train.perceptual_weight"] = 0.0
    return Upscaler(name, device=device, seed=seed, **fields)


def run_sr_core(lr: np.ndarray, scale: int, up, *, kernel: np.ndarray | None = None) -> np.ndarray:
    """Fit the Upscaler `up` on the LR image itself, then upscale it by `scale`; `kernel`: the
    protocol's blur, for a run told it (its pairs are made with it; Upscaler.fit)."""
    up.fit(np.ascontiguousarray(lr, np.float32), scale=scale, kernel=kernel, progress=False)
    return np.asarray(up.upscale(scale=scale, progress=False), np.float64)


def _settings(cfg) -> dict:
    """A config's settings for the cache key (without the record of how it was resolved)."""
    return {k: v for k, v in cfg.to_dict().items() if k != "resolved"}


def build_methods(names: Sequence[str], *, override: dict | None = None, steps: int | None = None,
                  zssr_iters: int | None = None, ibp_iters: int = 20, train_perceptual: str = "auto",
                  device: str = "cpu") -> list[MethodSpec]:
    from sr_core.evaluation import baselines
    from sr_core.config import MULTI_STEP_PRESETS, PRESETS, SIZED_PRESETS
    from sr_core.resolve import Target

    specs = []
    for name in names:
        if name == "bicubic":
            specs.append(MethodSpec(name, lambda c: baselines.bicubic(c.lr, c.scale), {}))
        elif name == "lanczos":
            specs.append(MethodSpec(name, lambda c: baselines.lanczos(c.lr, c.scale), {}))
        elif name == "ibp":
            specs.append(MethodSpec(name, lambda c: baselines.ibp(c.lr, c.scale, c.downscale, iters=ibp_iters),
                                    {"iters": ibp_iters}))
        elif name == "zssr":
            zcfg = baselines.ZSSRConfig() if zssr_iters is None else baselines.ZSSRConfig(
                max_iters=zssr_iters, min_iters=min(128, zssr_iters))

            def run_zssr(c, zcfg=zcfg):
                from dataclasses import replace

                real = c.protocol == "realistic"
                down = None if c.protocol == "bicubic" else c.downscale
                # ZSSR's settings for real images: noise on the sons; no turned fathers for an anisotropic blur
                return baselines.zssr(c.lr, c.scale, down, cfg=replace(zcfg, noise_std=0.0125 if real else 0.0,
                                                                       rotations=not real))

            specs.append(MethodSpec(name, run_zssr, {"max_iters": zcfg.max_iters, "crop": zcfg.crop,
                                                     "fathers": zcfg.fathers, "budget": zcfg.budget()}))
        elif name in PRESETS or name.removesuffix(KERNEL_SUFFIX) in PRESETS:
            # "PRESET+kernel" is told the protocol's blur kernel, as IBP and ZSSR are; a
            # protocol without one (bicubic) runs it as PRESET.
            told = name.endswith(KERNEL_SUFFIX)
            preset_name = name.removesuffix(KERNEL_SUFFIX)

            def make(p=preset_name):
                return sr_core_upscaler(p, override=override, steps=steps, device=device,
                                        train_perceptual=train_perceptual)

            up = make()
            sizing = SIZED_PRESETS.get(preset_name)
            min_pixels = sizing.min_pixels if sizing else 1
            small, large = (_settings(up.resolve(input_size=s)) for s in ((1, 1), (min_pixels, 1)))
            options = {"config": small, "train_perceptual": train_perceptual}
            if large != small:  # sized by its input: both configurations enter the cache key
                options["large_input"] = {"min_pixels": min_pixels, "config": large}
            if preset_name in MULTI_STEP_PRESETS:  # x4 and up: another configuration, in the key too
                options["multi_step"] = _settings(up.resolve(input_size=(64, 64), target=Target(scale=4)))
            if told:  # trained on pairs made with the kernel (before: only matched through it)
                options["told_kernel"] = "pairs"

            def run_preset(c, make=make, told=told):
                return run_sr_core(c.lr, c.scale, make(), kernel=c.info.get("kernel") if told else None)

            specs.append(MethodSpec(name, run_preset, options))
        else:
            raise UserError(f"unknown method {name!r}; choose from {', '.join(BASELINES + tuple(PRESETS))}, "
                            f"or a preset with {KERNEL_SUFFIX} (told the protocol's blur kernel)")
    return specs


# -------------------------------------------------------------------------- metrics
class PeakMemory:
    """Peak resident memory of this process above its level at entry, sampled every 10 ms (MB).

    Needs psutil (else ``mb`` stays None). Memory the process already holds from earlier
    cells is not counted again, so this is a lower bound on a method's own peak.
    """

    mb: float | None = None

    def __enter__(self):
        try:
            import psutil
        except ImportError:  # optional: without it the field is null
            self._proc = None
            return self
        self._proc = psutil.Process()
        self._base = self._proc.memory_info().rss
        self.peak = self._base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self):
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self._proc.memory_info().rss)

    def __exit__(self, *exc):
        if self._proc is None:
            return False
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)
        self.mb = (self.peak - self._base) / 2**20
        return False


def perceptual_metric() -> tuple[Callable[[np.ndarray, np.ndarray], float] | None, str]:
    """The offline perceptual distance (ST-LPIPS AlexNet) and its backend name, or (None, 'none')."""
    try:
        from sr_core.method import lpips_offline

        lpips_offline.load("alex")
        return (lambda a, b: lpips_offline.distance(a, b, net="alex")), lpips_offline.BACKEND.format(net="alex")
    except (FileNotFoundError, RuntimeError, ImportError):
        return None, "none"


def measure(sr: np.ndarray, hr: np.ndarray, scale: int, perceptual) -> dict[str, Any]:
    from sr_core.evaluation.metrics import evaluate
    from sr_core.evaluation.niqe import niqe

    rec = evaluate(sr, hr, border=scale)
    fn, backend = perceptual
    rec["perceptual"] = None if fn is None else fn(sr, hr)
    rec["perceptual_backend"] = backend
    try:
        rec["niqe"] = niqe(sr)  # whole image: NIQE needs at least 2 x 2 blocks of 96 px to be stable
    except ValueError:
        rec["niqe"] = None
    return rec


# ---------------------------------------------------------------------------- report
def _fmt(values: list[float], digits: int) -> str:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    if not vals:
        return "-"
    if len(vals) == 1:
        return f"{vals[0]:.{digits}f}"
    return f"{np.mean(vals):.{digits}f} ± {np.std(vals):.{digits}f}"


def summary_markdown(records: list[dict], *, title: str = "Benchmark results", crop: int | None = None) -> str:
    """Table: one row per (protocol, scale, method), mean ± std over images."""
    cols = [("PSNR-Y", "psnr_y", 2), ("SSIM-Y", "ssim_y", 4), ("PSNR-RGB", "psnr_rgb", 2),
            ("colour shift", "color_shift", 2), ("perceptual ↓", "perceptual", 4), ("NIQE ↓", "niqe", 2),
            ("seconds", "seconds", 1), ("peak MB", "peak_mem_mb", 0)]
    methods = list(dict.fromkeys(r["method"] for r in records))
    keys = sorted({(r["protocol"], r["scale"]) for r in records})
    backends = sorted({r.get("perceptual_backend", "none") for r in records})
    images = "whole images" if crop == 0 else (f"{crop}-px centre crops" if crop else "images")
    lines = [f"# {title}", "",
             f"{len({r['image'] for r in records})} {images}; mean ± std over images; perceptual backend: "
             f"{', '.join(backends)}.", "",
             "| protocol | scale | method | n | " + " | ".join(c[0] for c in cols) + " |",
             "|---|---|---|---|" + "---|" * len(cols)]
    for protocol, scale in keys:
        for m in methods:
            rows = [r for r in records if (r["protocol"], r["scale"], r["method"]) == (protocol, scale, m)]
            if rows:
                cells = [_fmt([r.get(k) for r in rows], d) for _, k, d in cols]
                lines.append(f"| {protocol} | x{scale} | {m} | {len(rows)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def zoom_figure(out: Path, records: list[dict], images_dir: Path, hr_dir: Path, *, zoom: int = 48):
    """For the first image: HR and every method's output, a central crop enlarged, per protocol/scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    if not records:
        return None
    image = records[0]["image"]
    methods = list(dict.fromkeys(r["method"] for r in records))
    keys = sorted({(r["protocol"], r["scale"]) for r in records if r["image"] == image})
    fig, axes = plt.subplots(len(keys), len(methods) + 1, figsize=(2.2 * (len(methods) + 1), 2.4 * len(keys)),
                             squeeze=False)
    for row, (protocol, scale) in enumerate(keys):
        hr = np.asarray(Image.open(hr_dir / f"{image}_{protocol}_x{scale}.png"))
        h, w = hr.shape[:2]
        z = min(zoom, h, w)
        y0, x0 = (h - z) // 2, (w - z) // 2
        panels = [("HR", hr)]
        for m in methods:
            p = images_dir / f"{protocol}_x{scale}" / f"{image}_{m}.png"
            panels.append((m, np.asarray(Image.open(p)) if p.exists() else None))
        for col, (label, img) in enumerate(panels):
            ax = axes[row, col]
            ax.axis("off")
            if img is not None:
                ax.imshow(img[y0:y0 + z, x0:x0 + z], interpolation="nearest")
            ax.set_title(f"{label}\n{protocol} x{scale}" if col == 0 else label, fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


# ------------------------------------------------------------------------------- run
def save_records(rows: list[dict], out: str | Path, name: str = "results.json") -> Path:
    """An ablation script's records as JSON in the folder `out` (made if missing), atomically."""
    from sr_core.runtime.io import atomic_write_text

    path = Path(out) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(rows, indent=1))
    return path


def append_record(record: dict, path: str | Path) -> dict:
    """Append one JSON line to `path` (the ablation scripts' running log) and return it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fh.write(json.dumps(record) + "\n")
    return record


def _save_png(path: Path, img: np.ndarray) -> None:
    from sr_core.runtime.io import atomic_write_bytes, encode_png

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, encode_png(np.asarray(img, np.float32), bit_depth=8))


def run_bench(
    *,
    data: str | Path | None = None,
    methods: Sequence[str] = DEFAULT_METHODS,
    scales: Sequence[int] = (2, 4),
    protocols: Sequence[str] = ("bicubic", "realistic"),
    out: str | Path,
    crop: int | None = None,
    override: dict | None = None,
    steps: int | None = None,
    zssr_iters: int | None = None,
    train_perceptual: str = "auto",
    device: str = "cpu",
    images: Sequence[str] | None = None,
    progress: bool = True,
    figure: bool = True,
) -> list[dict]:
    """Run every (image, method, scale, protocol) cell not already in ``out/results.json``.

    `crop`: centre crop of each HR image, 0 = whole; None = whole images for `data`, and
    DEFAULT_CROP for the bundled set (small enough for a 2-core CPU)."""
    from tqdm.auto import tqdm

    from sr_core.runtime.io import atomic_write_text
    from sr_core.evaluation.protocols import PROTOCOLS, make_lr, quantize8

    for p in protocols:
        if p not in PROTOCOLS:
            raise UserError(f"unknown protocol {p!r}; choose from {', '.join(PROTOCOLS)}")
    for s in scales:
        if int(s) != s or s < 2:
            raise UserError(f"scales must be integers >= 2, got {s}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.json"
    records: list[dict] = json.loads(results_path.read_text()) if results_path.exists() else []
    done = {(r["image"], r["method"], r["scale"], r["protocol"], r.get("options")) for r in records}
    specs = build_methods(methods, override=override, steps=steps, zssr_iters=zssr_iters,
                          train_perceptual=train_perceptual, device=device)
    if crop is None:
        crop = 0 if data is not None else DEFAULT_CROP
    images = load_images(data, crop, only=images)
    perceptual = perceptual_metric()
    cells = [(name, hr, int(s), p, spec) for name, hr in images for p in protocols for s in scales for spec in specs]
    todo = [c for c in cells if (c[0], c[4].name, c[2], c[3], c[4].signature) not in done]
    bar = tqdm(total=len(cells), initial=len(cells) - len(todo), desc="bench", disable=not progress,
               dynamic_ncols=True)
    cases: dict[tuple[str, int, str], Any] = {}
    for name, hr, scale, protocol, spec in todo:
        bar.set_postfix_str(f"{name} {protocol} x{scale} {spec.name}")
        key = (name, scale, protocol)
        if key not in cases:
            cases[key] = make_lr(hr, scale, protocol, name=name)
            _save_png(out / "hr" / f"{name}_{protocol}_x{scale}.png", cases[key].hr)
            _save_png(out / "lr" / f"{name}_{protocol}_x{scale}.png", cases[key].lr)
        case = cases[key]
        with PeakMemory() as mem:
            t0 = time.perf_counter()
            sr = spec.run(case)
            seconds = time.perf_counter() - t0
        sr = quantize8(sr)  # what a saved 8-bit result holds
        if sr.shape != case.hr.shape:
            raise RuntimeError(f"{spec.name} returned {sr.shape} for an HR of {case.hr.shape}")
        _save_png(out / "images" / f"{protocol}_x{scale}" / f"{name}_{spec.name}.png", sr)
        rec = {"image": name, "method": spec.name, "scale": scale, "protocol": protocol,
               **measure(sr, case.hr, scale, perceptual),
               "seconds": seconds, "peak_mem_mb": mem.mb, "options": spec.signature}
        records.append(rec)
        atomic_write_text(results_path, json.dumps(records, indent=1))
        bar.update(1)
    bar.close()
    wanted = {(c[0], c[4].name, c[2], c[3], c[4].signature) for c in cells}
    current = [r for r in records if (r["image"], r["method"], r["scale"], r["protocol"], r.get("options")) in wanted]
    budget = [f"ZSSR budget: {s.options['budget']}." for s in specs if s.name == "zssr"]
    atomic_write_text(out / "results.md", summary_markdown(current, crop=crop) + "".join(f"\n{b}\n" for b in budget))
    atomic_write_text(out / "methods.json", json.dumps({s.name: s.options for s in specs}, indent=1, default=str))
    if figure:
        zoom_figure(out / "figure.png", current, out / "images", out / "hr")
    return current


# ------------------------------------------------------------------------------- CLI
def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def cmd_bench(args: argparse.Namespace) -> int:
    override = None
    if args.preset_override:
        text = args.preset_override
        if Path(text).is_file():
            text = Path(text).read_text()
        try:
            override = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UserError(f"--preset-override is not valid JSON: {exc}") from None
        if not isinstance(override, dict):
            raise UserError("--preset-override must be a JSON object")
    try:
        scales = [int(s) for s in _csv(args.scales)]
    except ValueError:
        raise UserError(f"--scales must be integers like 2,4, got {args.scales!r}") from None
    steps, zssr_iters = args.steps, args.zssr_iters
    if args.quick:
        steps = 20 if steps is None else steps
        zssr_iters = 60 if zssr_iters is None else zssr_iters
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)  # on a busy machine 1 thread can be several times faster
    name = args.name or (Path(args.data).name if args.data else "skimage")
    out = Path(args.out) if args.out else Path("outputs") / "bench" / name
    records = run_bench(data=args.data, methods=_csv(args.methods), scales=scales, protocols=_csv(args.protocols),
                        out=out, crop=args.crop, override=override, steps=steps, zssr_iters=zssr_iters,
                        train_perceptual=args.train_perceptual, device=args.device, progress=not args.quiet,
                        images=_csv(args.images) if args.images else None, figure=not args.no_figure)
    print(summary_markdown(records, crop=args.crop if args.crop is not None else (0 if args.data else DEFAULT_CROP)))
    print(f"results in {out}")
    return 0


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``sr-core bench`` on the CLI's subparsers."""
    p = subparsers.add_parser("bench", help="benchmark SR methods on synthesised LR images")
    p.add_argument("--data", help="folder of HR images (default: scikit-image's bundled photos "
                                  f"{', '.join(DEFAULT_IMAGES)})")
    p.add_argument("--images", help="comma-separated subset of the images (names / file stems)")
    p.add_argument("--methods", default=",".join(DEFAULT_METHODS),
                   help="comma-separated: bicubic, lanczos, ibp, zssr and sr_core presets; PRESET+kernel is told "
                        "the protocol's blur kernel, as IBP and ZSSR are (default: %(default)s)")
    p.add_argument("--scales", default="2,4", help="comma-separated integer scales (default: %(default)s)")
    p.add_argument("--protocols", default="bicubic,realistic", help="comma-separated LR protocols (default: %(default)s)")
    p.add_argument("--crop", type=int,
                   help=f"centre crop of each HR image, 0 = none (default: whole images with --data, "
                        f"{DEFAULT_CROP}-px crops of the bundled set)")
    p.add_argument("--preset-override", help="JSON object (or a file of it) of config fields for the sr_core presets")
    p.add_argument("--steps", type=int, help="training steps per image scale for the sr_core presets")
    p.add_argument("--zssr-iters", type=int, help="cut ZSSR to N iterations (default: full, the published 3000 max iterations "
                        "with its learning-rate policy; tables name the budget)")
    p.add_argument("--quick", action="store_true", help="cut training down (--steps 20, --zssr-iters 60)")
    p.add_argument("--train-perceptual", choices=("auto", "off"), default="auto",
                   help="perceptual loss while training the sr_core presets (default: as the preset says)")
    p.add_argument("--name", help="run name for the default output folder")
    p.add_argument("--out", help="output folder (default: outputs/bench/NAME); reruns skip finished cells")
    p.add_argument("--device", default="cpu", help="device for the sr_core presets (default: %(default)s)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--no-figure", action="store_true", help="skip the zoomed-crop figure")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_bench)
    return p
