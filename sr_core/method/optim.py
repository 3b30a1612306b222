"""Adam and the two learning-rate schedules, without torch.optim.

torch.optim's optimizers import torch._dynamo on their first use (2.6 s on this project's CPU,
about as long as importing torch itself), a fixed cost on every training job that compiles
nothing. These are the same updates, written with torch's multi-tensor (`_foreach`) ops: one
call per update for all parameters. Their state dicts have torch.optim's layout, so a
checkpoint written by either resumes with the other.
"""

from __future__ import annotations

import math

import torch


class Adam:
    """Adam (Kingma & Ba 2015), no weight decay, no AMSGrad: the arithmetic of torch.optim.Adam's
    default settings (first moment by lerp, bias-corrected step and square root)."""

    def __init__(self, params, lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        self.params = [p for p in params if p.requires_grad]
        self.lr, self.betas, self.eps = float(lr), (float(betas[0]), float(betas[1])), float(eps)
        self.steps = 0
        self.exp_avg = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        live = [(p, p.grad, m, v) for p, m, v in zip(self.params, self.exp_avg, self.exp_avg_sq) if p.grad is not None]
        if not live:
            return
        self.steps += 1
        params, grads, m, v = (list(column) for column in zip(*live))
        b1, b2 = self.betas
        torch._foreach_lerp_(m, grads, 1 - b1)
        torch._foreach_mul_(v, b2)
        torch._foreach_addcmul_(v, grads, grads, 1 - b2)
        t = float(self.steps)
        step_size = self.lr / (1 - b1**t)
        denom = torch._foreach_sqrt(v)
        torch._foreach_div_(denom, (1 - b2**t) ** 0.5)
        torch._foreach_add_(denom, self.eps)
        torch._foreach_addcdiv_(params, m, denom, -step_size)

    def state_dict(self) -> dict:
        """torch.optim.Adam's layout: per-parameter state by index, one parameter group."""
        step = torch.tensor(float(self.steps))
        return {
            "state": {i: {"step": step.clone(), "exp_avg": m, "exp_avg_sq": v}
                      for i, (m, v) in enumerate(zip(self.exp_avg, self.exp_avg_sq)) if self.steps},
            "param_groups": [{"lr": self.lr, "betas": self.betas, "eps": self.eps, "weight_decay": 0,
                              "amsgrad": False, "maximize": False, "foreach": None, "capturable": False,
                              "differentiable": False, "fused": None, "params": list(range(len(self.params)))}],
        }

    def load_state_dict(self, data: dict) -> None:
        group = data["param_groups"][0]
        if len(data["param_groups"]) != 1 or len(group["params"]) != len(self.params):
            raise ValueError("optimizer state of another model")
        self.lr = float(group["lr"])
        state = data["state"]
        self.steps = int(float(next(iter(state.values()))["step"])) if state else 0
        for i, p in enumerate(self.params):
            if i in state:
                self.exp_avg[i] = state[i]["exp_avg"].to(p.device, p.dtype).clone()
                self.exp_avg_sq[i] = state[i]["exp_avg_sq"].to(p.device, p.dtype).clone()


class LRSchedule:
    """The learning rate at each step: "step" (times `gamma` at each milestone, as MultiStepLR)
    or "cosine" (to 0 over `total` steps, as CosineAnnealingLR's recursive form, so runs
    match those made with it). `step()` advances one step and sets the optimizer's rate."""

    def __init__(self, optimizer: Adam, kind: str, *, total: int = 1, milestones=(), gamma: float = 0.1):
        self.optimizer, self.kind = optimizer, kind
        self.total, self.milestones, self.gamma = max(1, int(total)), tuple(milestones), float(gamma)
        self.base_lr = optimizer.lr
        self.last_epoch = 0

    def step(self) -> None:
        self.last_epoch += 1
        t, lr = self.last_epoch, self.optimizer.lr
        if self.kind == "cosine":
            T = self.total
            if (t - 1 - T) % (2 * T) == 0:
                lr = lr + self.base_lr * (1 - math.cos(math.pi / T)) / 2
            else:
                lr = (1 + math.cos(math.pi * t / T)) / (1 + math.cos(math.pi * (t - 1) / T)) * lr
        elif t in self.milestones:
            lr = lr * self.gamma ** self.milestones.count(t)
        self.optimizer.lr = lr

    def state_dict(self) -> dict:
        return {"last_epoch": self.last_epoch, "base_lrs": [self.base_lr], "_last_lr": [self.optimizer.lr]}

    def load_state_dict(self, data: dict) -> None:
        self.last_epoch = int(data["last_epoch"])
        self.base_lr = float(data["base_lrs"][0])
