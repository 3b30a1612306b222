"""Figures: loss curves and side-by-side crops (matplotlib, imported lazily)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np


def _plt():
    import matplotlib

    if matplotlib.get_backend().lower() not in ("module://matplotlib_inline.backend_inline", "nbagg", "widget"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def loss_figure(history: dict[str, list], *, title: str = "training loss"):
    """Loss against step, one colour per stage, with a moving average."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    steps = np.asarray(history.get("step", []))
    loss = np.asarray(history.get("loss", []), dtype=float)
    stages = np.asarray(history.get("stage", []))
    for s in np.unique(stages):
        m = stages == s
        ax.plot(steps[m], loss[m], alpha=0.35, lw=1)
        if m.sum() >= 5:
            k = max(2, int(m.sum()) // 10)
            smooth = np.convolve(loss[m], np.ones(k) / k, mode="valid")
            ax.plot(steps[m][k - 1 :], smooth, lw=2, label=f"stage {int(s) + 1}", color=ax.lines[-1].get_color())
        else:
            ax.lines[-1].set_label(f"stage {int(s) + 1}")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    if len(loss) and np.all(loss > 0):
        ax.set_yscale("log")
    ax.set_title(title)
    if len(steps):
        ax.legend()
    fig.tight_layout()
    return fig


def save_figure(fig, path: Path) -> Path:
    """Save a figure atomically as PNG and close it."""
    from sr_core.io import atomic_path

    path = Path(path)
    with atomic_path(path, overwrite=True) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    _plt().close(fig)
    return path


def compare_figure(
    images: Sequence[np.ndarray],
    titles: Sequence[str],
    *,
    crop: tuple[int, int, int] | None = None,
    nearest: bool = True,
):
    """Images side by side (optionally the same square crop (top, left, size) of each)."""
    plt = _plt()
    n = len(images)
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 3.4), squeeze=False)
    for ax, img, title in zip(axes[0], images, titles):
        if crop is not None:
            t, l, s = crop
            img = img[t : t + s, l : l + s]
        ax.imshow(np.clip(img, 0, 1), interpolation="nearest" if nearest else "bilinear")
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    return fig
