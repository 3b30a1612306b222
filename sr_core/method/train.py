"""Training on one image, stage by stage over the image scales (coarse first).

``train_stage`` trains one scale and is what a notebook shows; ``train`` is the loop over
stages with checkpoints, resume and the loss curve.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from sr_core.runtime.accel import Accel, FastDenoiser, GraphedDenoiser
from sr_core.runtime.checkpoint import image_fingerprint, load_checkpoint, publish_as, save_checkpoint
from sr_core.config import Config
from sr_core.method.pairs import PairSampler, image_scales
from sr_core.method.diffusion import ResShiftDiffusion
from sr_core.errors import UserError
from sr_core.method.model import DenoiserAverage, make_denoiser
from sr_core.method.optim import Adam, LRSchedule


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed) & 0xFFFF_FFFF_FFFF)


def build_model(cfg: Config, *, seed: int | None = None, device: torch.device | str = "cpu") -> torch.nn.Module:
    """A freshly initialised denoiser; the same seed gives the same weights."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed if seed is None else seed)
        model = make_denoiser(cfg.model)
    return model.to(device)


@dataclass
class TrainState:
    """Everything that changes during training; a checkpoint is this, serialised."""

    cfg: Config
    model: torch.nn.Module
    ema: torch.nn.Module
    optimizer: Adam
    scheduler: LRSchedule
    noise_gen: torch.Generator
    fingerprint: str
    stage: int = 0
    stage_step: int = 0
    global_step: int = 0
    history: dict[str, list] = field(default_factory=lambda: {"step": [], "stage": [], "loss": [], "mse": []})
    data_gen_state: torch.Tensor | None = None
    data_served: int = 0  # batches already used from the pair sampler's open chunk

    @classmethod
    def fresh(cls, cfg: Config, fingerprint: str, device: torch.device) -> "TrainState":
        model = build_model(cfg, device=device)
        optimizer = Adam(model.parameters(), lr=cfg.train.lr)
        scheduler = LRSchedule(optimizer, cfg.train.lr_schedule, total=cfg.total_steps(),
                               milestones=cfg.train.lr_milestones, gamma=cfg.train.lr_gamma)
        ema = copy.deepcopy(model).eval().requires_grad_(False)
        return cls(cfg, model, ema, optimizer, scheduler, _generator(cfg.seed + 1), fingerprint)

    def payload(self, sampler: PairSampler | None) -> dict:
        data_rng, served = sampler.rng_state() if sampler is not None else (torch.empty(0, dtype=torch.uint8), 0)
        return {
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "noise_rng": self.noise_gen.get_state(),
            "data_rng": data_rng,
            "data_served": served,
            "stage": self.stage,
            "stage_step": self.stage_step,
            "global_step": self.global_step,
            "history": self.history,
            "fingerprint": self.fingerprint,
        }

    def save(self, path: Path, sampler: PairSampler | None) -> Path:
        return save_checkpoint(path, self.payload(sampler), self.cfg)

    @classmethod
    def resume(cls, path: Path, cfg: Config, fingerprint: str, device: torch.device) -> "TrainState":
        data, saved = load_checkpoint(path, expect=cfg)
        if _fields(saved) != _fields(cfg):
            raise UserError(f"cannot resume from {path}: it was made with a different config")
        if data.get("fingerprint") != fingerprint:
            raise UserError(f"cannot resume from {path}: it was trained on a different image")
        missing = [k for k in ("ema", "optimizer", "scheduler", "noise_rng", "data_rng", "stage",
                               "stage_step", "global_step", "history") if k not in data]
        if missing:
            raise UserError(f"cannot resume from {path}: it holds no training state ({', '.join(missing)})")
        state = cls.fresh(cfg, fingerprint, device)
        state.model.load_state_dict(data["model"])
        state.ema.load_state_dict(data["ema"])
        try:
            state.optimizer.load_state_dict(data["optimizer"])
            state.scheduler.load_state_dict(data["scheduler"])
        except (ValueError, KeyError, TypeError, StopIteration) as exc:
            raise UserError(f"cannot resume from {path}: its optimizer state does not fit ({exc})") from None
        state.noise_gen.set_state(data["noise_rng"])
        state.stage, state.stage_step = int(data["stage"]), int(data["stage_step"])
        state.global_step = int(data["global_step"])
        state.history = {k: list(v) for k, v in data["history"].items()}
        state.data_gen_state = data["data_rng"] if data["data_rng"].numel() else None
        state.data_served = int(data.get("data_served", 0))  # older checkpoints: no chunks
        return state


def _fields(cfg: Config) -> dict:
    """The config's settings, without the record of how they were resolved."""
    return {k: v for k, v in cfg.to_dict().items() if k != "resolved"}


@torch.no_grad()
def update_ema(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    torch._foreach_lerp_(list(ema.parameters()), list(model.parameters()), 1.0 - decay)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


def _defer_interrupts(pending: list[int]) -> Callable[[], None]:
    """Hold Ctrl-C / SIGTERM until the current step is done; returns a function that restores.

    A checkpoint taken mid-step would pair new weights or advanced RNGs with the old step
    count, so a resume would not match an uninterrupted run. Only handlers that raise in
    Python (default SIGINT, the CLI's SIGTERM) are held; a second signal stops at once.
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def hold(signum, frame):
        if pending:
            raise KeyboardInterrupt
        pending.append(signum)

    saved = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        if callable(signal.getsignal(sig)):
            saved[sig] = signal.signal(sig, hold)

    def restore() -> None:
        for sig, handler in saved.items():
            signal.signal(sig, handler)

    return restore


SYNC_EVERY = 25  # steps between reading losses back from an accelerator


def train_stage(
    state: TrainState,
    sampler: PairSampler,
    diffusion: ResShiftDiffusion,
    steps: int,
    *,
    perceptual=None,
    checkpoint: Callable[[], None] | None = None,
    progress: bool = True,
    on_step: Callable[[int, dict], None] | None = None,
    accel: Accel | None = None,
    sync_every: int | None = None,
    graphs: dict | None = None,
) -> list[float]:
    """Train the current stage up to `steps` steps (continuing from `state.stage_step`).

    On CUDA the model's forward and backward are captured in a graph at the first step
    (`GraphedDenoiser`); pass the same `graphs` dict to later stages of the same state to
    reuse a capture of the same batch shape.

    On an accelerator the losses are read back every `SYNC_EVERY` steps (and at every
    checkpoint), not every step, so the GPU never waits for Python; a non-finite loss is
    caught there, before any checkpoint is written.
    """
    from tqdm.auto import tqdm

    cfg = state.cfg.train
    device = next(state.model.parameters()).device
    accel = (accel or Accel()).for_batch(sampler.batch_pixels())
    forward = FastDenoiser(accel.prepare(state.model, device, training=True), accel, device)
    if perceptual is not None:
        perceptual = accel.wrap_loss(perceptual, device)
    if sync_every is None:
        sync_every = 1 if device.type == "cpu" or on_step is not None else SYNC_EVERY
    state.model.train()
    losses: list[float] = []
    unread: list[tuple[int, int, dict]] = []  # (global step, stage, parts as device tensors)
    bar = tqdm(
        total=steps,
        initial=state.stage_step,
        desc=f"stage {state.stage + 1}/{len(state.cfg.data.image_scales)} {sampler.size[0]}x{sampler.size[1]}",
        disable=not progress,
        leave=True,
        dynamic_ncols=True,
    )

    def read_back() -> None:
        if not unread:
            return
        keys = sorted(unread[0][2])
        values = torch.stack([torch.stack([p[k].float() for k in keys]) for _, _, p in unread]).cpu().tolist()
        for (step, stage, _), row in zip(unread, values):
            parts = dict(zip(keys, row))
            if not math.isfinite(parts["loss"]):
                raise UserError(
                    f"training diverged (loss {parts['loss']}) at step {step}; "
                    "the last good checkpoint is kept — try a lower learning rate (--train.lr ...)"
                )
            losses.append(parts["loss"])
            state.history["step"].append(step)
            state.history["stage"].append(stage)
            state.history["loss"].append(parts["loss"])
            state.history["mse"].append(parts.get("mse"))
            if on_step is not None:
                on_step(step, parts)
        bar.update(len(unread))
        bar.set_postfix(loss=f"{losses[-1]:.4f}", refresh=False)
        unread.clear()

    pending: list[int] = []
    restore_signals = _defer_interrupts(pending)
    denoiser, capture = forward, device.type == "cuda"  # captured at the first step (batch shape known)
    try:
        while state.stage_step < steps:
            if pending:
                raise KeyboardInterrupt
            x0, y = sampler.next_batch()
            if capture:
                capture = False
                key = (id(state.model), tuple(x0.shape), dataclasses.astuple(accel))
                graphs = {} if graphs is None else graphs
                if key not in graphs:
                    graphs[key] = GraphedDenoiser.capture(forward, tuple(x0.shape))
                denoiser = graphs[key] or forward
            loss, parts = diffusion.loss(
                denoiser, x0, y, generator=state.noise_gen,
                perceptual=perceptual, perceptual_weight=cfg.perceptual_weight, sync=False,
                pixel_loss=cfg.pixel_loss,
            )
            state.optimizer.zero_grad()
            loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(state.model.parameters(), cfg.grad_clip)
            state.optimizer.step()
            state.scheduler.step()
            state.stage_step += 1
            state.global_step += 1
            if state.global_step < cfg.ema_start:
                update_ema(state.ema, state.model, 0.0)  # EMA follows the model until it starts
            elif state.global_step % cfg.ema_every == 0:
                update_ema(state.ema, state.model, cfg.ema_decay)
            unread.append((state.global_step, state.stage, parts))
            due = checkpoint is not None and (
                state.global_step % cfg.checkpoint_every == 0 or state.stage_step == steps
            )
            if due or len(unread) >= sync_every or state.stage_step == steps:
                read_back()
            if due:
                if not all(bool(torch.isfinite(p).all()) for p in state.model.parameters()):
                    raise UserError(
                        f"training diverged (non-finite weights) at step {state.global_step}; "
                        "the last good checkpoint is kept — try a lower learning rate (--train.lr ...)"
                    )
                checkpoint()
        if pending:
            raise KeyboardInterrupt
    finally:
        if unread and sys.exc_info()[0] is KeyboardInterrupt:
            try:
                read_back()  # an interrupted run keeps the history of the steps it took
            except UserError:
                pass
        restore_signals()
        bar.close()
        state.model.eval()
    return losses


@dataclass
class TrainResult:
    model: torch.nn.Module
    ema: torch.nn.Module
    config: Config
    history: dict[str, list]
    checkpoint: Path | None
    seconds: float

    def sampling_model(self) -> torch.nn.Module:
        """The weights inference should use (EMA or raw, as the config says)."""
        return self.ema if self.config.infer.use_ema else self.model


def train(
    rgb: np.ndarray,
    cfg: Config,
    *,
    device: torch.device | str = "cpu",
    out_dir: Path | None = None,
    resume: Path | None = None,
    progress: bool = True,
    perceptual="auto",
    on_step: Callable[[int, dict], None] | None = None,
    accel: Accel | None = None,
) -> TrainResult:
    """Train a model on one image (H x W x 3 floats in [0, 1]) over all image scales.

    Checkpoints go to ``out_dir/checkpoints/step-NNNNNN.pt`` (and ``last.pt``); with
    `resume` training continues from a checkpoint of the same config and image.
    """
    import time

    from sr_core.method.perceptual import load_perceptual

    cfg.validate()
    if cfg.model.members > 1 or cfg.model.partner:
        return _train_members(rgb, cfg, device=device, out_dir=out_dir, resume=resume, progress=progress,
                              perceptual=perceptual, on_step=on_step, accel=accel)
    t0 = time.perf_counter()
    device = torch.device(device)
    fingerprint = image_fingerprint(rgb)
    state = (
        TrainState.resume(Path(resume), cfg, fingerprint, device)
        if resume
        else TrainState.fresh(cfg, fingerprint, device)
    )
    if perceptual == "auto":
        perceptual = load_perceptual("vgg", device) if cfg.train.perceptual_weight > 0 else None
    diffusion = ResShiftDiffusion(cfg.diffusion)
    ckpt_dir = Path(out_dir) / "checkpoints" if out_dir is not None else None
    last: Path | None = None

    scales = image_scales(rgb, cfg.data)
    graphs: dict = {}  # CUDA graphs, shared by stages whose batches have the same shape
    for stage in range(state.stage, len(scales)):
        if stage != state.stage:
            state.stage, state.stage_step = stage, 0
            state.data_gen_state = None
        data_gen = _generator(cfg.seed * 1009 + stage)
        sampler = PairSampler(scales[stage], cfg.data, cfg.degradation, generator=data_gen, device=device,
                              chunk=(accel or Accel()).pairs_per_call(device))
        if state.data_gen_state is not None:
            sampler.restore(state.data_gen_state, state.data_served)
            state.data_gen_state, state.data_served = None, 0

        def checkpoint() -> None:
            nonlocal last
            if ckpt_dir is None:
                return
            last = state.save(ckpt_dir / f"step-{state.global_step:06d}.pt", sampler)
            publish_as(last, ckpt_dir / "last.pt")

        try:
            train_stage(
                state, sampler, diffusion, cfg.steps_for_stage(stage),
                perceptual=perceptual, checkpoint=checkpoint, progress=progress, on_step=on_step,
                accel=accel, graphs=graphs,
            )
        except KeyboardInterrupt:
            if ckpt_dir is not None and state.stage_step > 0:
                checkpoint()
            raise
    if hasattr(perceptual, "forget_target"):
        perceptual.forget_target()  # the last batch's features, no longer needed
    if out_dir is not None and last is None and ckpt_dir is not None:
        # Nothing trained in this call (all stages already done): still leave a checkpoint.
        last = state.save(ckpt_dir / f"step-{state.global_step:06d}.pt", None)
        publish_as(last, ckpt_dir / "last.pt")
    return TrainResult(state.model, state.ema, cfg, state.history, last, time.perf_counter() - t0)


def load_model(path: Path, *, device: torch.device | str = "cpu", use_ema: bool | None = None):
    """A model ready for sampling from a checkpoint, with the config it was trained with."""
    data, cfg = load_checkpoint(Path(path))
    model = make_denoiser(cfg.model)
    ema = cfg.infer.use_ema if use_ema is None else use_ema
    try:
        model.load_state_dict(data["ema"] if ema and "ema" in data else data["model"])
    except (RuntimeError, KeyError) as exc:
        raise UserError(f"checkpoint {path} does not match its own model config: {' '.join(str(exc).split())[:120]}") from None
    return model.to(device).eval(), cfg


def _train_members(rgb: np.ndarray, cfg: Config, *, out_dir: Path | None, resume: Path | None, **kw) -> TrainResult:
    """`cfg.model.members` trainings, one after the other, at seeds seed, seed + 1, ..., then
    the partner's (`Config.partner_config`); each member's run goes to ``out_dir/members/K``,
    the averaged model to ``out_dir/checkpoints/last.pt``."""
    import time

    if resume is not None:
        raise UserError("resume continues one network; with model.members > 1 or a model.partner start again, "
                        "or resume a member's run (its folder under members/) as a single network")
    t0 = time.perf_counter()
    runs = []
    for k in range(cfg.model.members):
        member = copy.deepcopy(cfg)
        member.model.members, member.model.partner, member.seed = 1, "", cfg.seed + k
        runs.append(member)
    if cfg.model.partner:
        runs.append(cfg.partner_config())
    results = []
    for k, member in enumerate(runs):
        if kw.get("progress"):
            print(f"member {k + 1} of {len(runs)} ({member.model.describe()}, seed {member.seed})", file=sys.stderr)
        results.append(train(rgb, member, out_dir=None if out_dir is None else Path(out_dir) / "members" / str(k),
                             resume=None, **kw))
    model = DenoiserAverage([r.model for r in results])
    ema = DenoiserAverage([r.ema for r in results])
    history = {key: [v for r in results for v in r.history.get(key, [])] for key in results[0].history}
    last = None
    if out_dir is not None:
        last = save_checkpoint(Path(out_dir) / "checkpoints" / "last.pt",
                               {"model": model.state_dict(), "ema": ema.state_dict()}, cfg)
    return TrainResult(model, ema, cfg, history, last, time.perf_counter() - t0)
