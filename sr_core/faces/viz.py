"""Figures and notebook widgets: loss curves, crops, galleries, the degradation panel, the
diffusion step explorer, and the notebooks' "your photo" picker and result download
(matplotlib and ipywidgets imported lazily).

Widgets are thin wrappers around pure render functions (`render_degradation`,
`explorer_frame`, `explorer_png`), so tests drive them by setting `slider.value`.
"""

from __future__ import annotations

import os
import sys
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
    from sr_core.runtime.io import atomic_path

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


# ------------------------------------------------------------------ Colab badges
# The one place that names the GitHub repository the notebooks' Colab links point at.
# A fork changes this line and runs `python notebooks/sync_notebooks.py`.
COLAB_REPO = "OWNER/sr_core"
COLAB_BRANCH = "main"
COLAB_BADGE_SVG = "https://colab.research.google.com/assets/colab-badge.svg"


def colab_url(notebook: str, *, repo: str = COLAB_REPO, branch: str = COLAB_BRANCH) -> str:
    """The Colab link of a notebook under notebooks/ (name with or without .ipynb)."""
    name = notebook if notebook.endswith(".ipynb") else f"{notebook}.ipynb"
    return f"https://colab.research.google.com/github/{repo}/blob/{branch}/notebooks/{name}"


def colab_badge(notebook: str, **kwargs) -> str:
    """Markdown for an 'Open in Colab' badge."""
    return f"[![Open In Colab]({COLAB_BADGE_SVG})]({colab_url(notebook, **kwargs)})"


# ------------------------------------------------------------------ your photo
def in_colab() -> bool:
    """True inside Google Colab (its kernel has imported google.colab)."""
    return "google.colab" in sys.modules


def center_crop(rgb: np.ndarray, max_side: int | None) -> np.ndarray:
    """The centre of an H x W x C image, at most `max_side` pixels on each side."""
    if max_side is None:
        return rgb
    h, w = rgb.shape[:2]
    ch, cw = min(h, max_side), min(w, max_side)
    top, left = (h - ch) // 2, (w - cw) // 2
    return rgb[top : top + ch, left : left + cw]


class PhotoPicker:
    """Your photo for a notebook: `default` (the bundled sample) unless you give another.

    - Colab, with `upload=True`: `google.colab.files.upload()` asks for a file when the
      picker is made (the cell waits for it); the file is saved in `folder`.
    - Jupyter: `.widget` is a FileUpload button and a status line. A picked file is saved in
      `folder` and becomes `.path`; then run the cells below the picker again.
    - Otherwise `.path` stays `default`, so the notebook runs with no input (CI, nbval).

    Shown as the last line of a cell, it displays its widget (Jupyter) or its path (Colab).
    """

    def __init__(self, default: str | Path, *, upload: bool = False, folder: str | Path = "outputs/uploads"):
        self.default = self.path = Path(default)
        self.folder = Path(folder)
        self.widget = self.upload = self.status = None
        if in_colab():
            if upload:
                from google.colab import files  # type: ignore[import-not-found]

                for name, data in files.upload().items():  # {} when cancelled: keep the default
                    self._take(name, data)
        else:
            self.widget = self._make_widget()

    def _take(self, name: str, data: bytes) -> Path:
        """Save an uploaded file in `folder` and use it, if it is an image sr_core can read."""
        from sr_core.runtime.io import load_image

        path = self.folder / (Path(str(name)).name or "photo.png")
        self.folder.mkdir(parents=True, exist_ok=True)
        path.write_bytes(bytes(data))
        try:
            load_image(path)
        except Exception:
            path.unlink(missing_ok=True)
            raise
        self.path = path
        return path

    def describe(self) -> str:
        from PIL import Image

        with Image.open(self.path) as im:
            w, h = im.size
        which = "photo" if self.path == self.default else "uploaded"
        return f"{which}: {self.path.name} ({w}x{h})"

    def _make_widget(self):
        import ipywidgets as widgets

        self.upload = widgets.FileUpload(accept="image/*", multiple=False, description="your photo")
        self.status = widgets.Label(self.describe())
        self.upload.observe(self._on_upload, names="value")
        return widgets.HBox([self.upload, self.status])

    def _on_upload(self, change) -> None:
        files = change["new"]
        if isinstance(files, dict):  # ipywidgets 7: {name: {"content": ...}}
            files = [{"name": k, **v} for k, v in files.items()]
        if not files:
            return
        f = files[0]
        try:
            self._take(f["name"], f["content"])
        except Exception as exc:  # shown in the status line: a widget callback has nowhere to raise
            self.status.value = f"not used ({f['name']}): {str(exc).splitlines()[0][:120]}"
            return
        self.status.value = f"{self.describe()}: now run the cells below this one again"

    def load(self, max_side: int | None = None) -> np.ndarray:
        """The photo as H x W x 3 floats in [0, 1]; centre-cropped to `max_side` if larger."""
        from sr_core.runtime.io import load_image

        rgb = load_image(self.path).rgb
        out = center_crop(rgb, max_side)
        if out.shape != rgb.shape:
            print(f"{self.path.name} is {rgb.shape[1]}x{rgb.shape[0]}: this notebook uses its centre "
                  f"{out.shape[1]}x{out.shape[0]}")
        return out

    def _ipython_display_(self) -> None:
        from IPython.display import display

        if self.widget is not None:
            display(self.widget)
        else:
            print(self.describe())

    def __repr__(self) -> str:
        return f"PhotoPicker({str(self.path)!r})"


def offer_download(path: str | Path):
    """The written file for you: Colab downloads it to your computer; elsewhere this returns
    a link to it (an IPython FileLink, relative to the notebook's folder) to show."""
    path = Path(path)
    if in_colab():
        from google.colab import files  # type: ignore[import-not-found]

        files.download(str(path))
        return None
    from IPython.display import FileLink

    try:
        rel = os.path.relpath(path)
    except ValueError:  # another drive (Windows)
        rel = str(path)
    return FileLink(rel, result_html_prefix="result: ")


# ------------------------------------------------------------- generic figures
def to_display(img) -> np.ndarray:
    """An image for display: tensor (1|3 x H x W, or B=1 batch) or array, [0, 1] float H x W x C."""
    if hasattr(img, "detach"):
        img = img.detach().float().cpu()
        if img.dim() == 4:
            img = img[0]
        img = img.permute(1, 2, 0).numpy()
    return np.clip(np.asarray(img, dtype=np.float32), 0, 1)


def from_signed(img) -> np.ndarray:
    """A [-1, 1] tensor or array mapped to [0, 1] for display."""
    return to_display((img + 1) / 2)


def image_grid(
    images: Sequence[np.ndarray],
    titles: Sequence[str] | None = None,
    *,
    ncols: int | None = None,
    size: float = 2.3,
    suptitle: str | None = None,
    cmap: str | None = None,
):
    """A grid of images (H x W x 3 or H x W), nearest-neighbour so pixels stay visible."""
    plt = _plt()
    n = len(images)
    ncols = ncols or n
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + (0.4 if suptitle else 0)),
                             squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        img = np.asarray(images[i])
        if img.ndim == 2:
            ax.imshow(img, cmap=cmap or "gray", interpolation="nearest")
        else:
            ax.imshow(np.clip(img, 0, 1), interpolation="nearest")
        if titles is not None:
            ax.set_title(titles[i], fontsize=8)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    return fig


def figure_to_png(fig, *, dpi: int = 80, close: bool = True) -> bytes:
    """PNG bytes of a matplotlib figure (for ipywidgets.Image)."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    if close:
        _plt().close(fig)
    return buf.getvalue()


def array_to_png(img: np.ndarray, *, zoom: int = 1) -> bytes:
    """PNG bytes of an H x W x 3 image in [0, 1], enlarged `zoom` times (nearest)."""
    import io

    from PIL import Image

    arr = (np.clip(img, 0, 1) * 255).round().astype(np.uint8)
    if zoom > 1:
        arr = arr.repeat(zoom, axis=0).repeat(zoom, axis=1)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


# ----------------------------------------------------------- degradation panel
DEGRADATION_DEFAULTS = {"blur_sigma": 0.5, "noise_sigma": 3.0, "jpeg_quality": 95, "resize_factor": 1.25}


def render_degradation(
    image: np.ndarray,
    *,
    blur_sigma: float = 0.5,
    noise_sigma: float = 3.0,
    jpeg_quality: int = 100,
    resize_factor: float = 1.0,
    seed: int = 0,
) -> np.ndarray:
    """One hand-set degradation of an H x W x 3 image: blur, shrink, noise, JPEG, enlarge back.

    blur_sigma: isotropic Gaussian (0 = none); noise_sigma: Gaussian, 0-255 scale;
    jpeg_quality: 100 = no JPEG; resize_factor: shrink by this, then bicubic back up.
    """
    import torch

    from sr_core.method.pairs import to_numpy, to_tensor
    from sr_core.method.degradation import bivariate_kernel, filter2d, gaussian_noise, jpeg, quantize, resize

    x = to_tensor(image)
    h, w = x.shape[-2:]
    if blur_sigma > 0:
        size = 2 * max(1, int(np.ceil(3 * blur_sigma))) + 1
        x = filter2d(x, bivariate_kernel(size, blur_sigma, blur_sigma))
    if resize_factor > 1:
        x = resize(x, (round(h / resize_factor), round(w / resize_factor)), "bicubic", antialias=True).clamp(0, 1)
    if noise_sigma > 0:
        gen = torch.Generator().manual_seed(int(seed))
        x = x + gaussian_noise(x.shape, torch.tensor([float(noise_sigma)]), torch.tensor([False]), gen)
    x = x.clamp(0, 1)
    if jpeg_quality < 100:
        x = jpeg(x[0], int(jpeg_quality))[None]
    x = resize(x, (h, w), "bicubic").clamp(0, 1)
    return to_numpy(quantize(x))


def degradation_panel(image: np.ndarray, *, zoom: int = 2, seed: int = 0, **initial):
    """Sliders (blur sigma, noise, JPEG quality, resize factor) and the degraded image.

    Returns an ipywidgets VBox with `.sliders` (name -> slider) and `.image` attached.
    """
    import ipywidgets as widgets

    values = {**DEGRADATION_DEFAULTS, **initial}
    sliders = {
        "blur_sigma": widgets.FloatSlider(value=values["blur_sigma"], min=0.0, max=3.0, step=0.1,
                                          description="blur sigma"),
        "noise_sigma": widgets.FloatSlider(value=values["noise_sigma"], min=0.0, max=25.0, step=0.5,
                                           description="noise (/255)"),
        "jpeg_quality": widgets.IntSlider(value=values["jpeg_quality"], min=5, max=100, step=5,
                                          description="JPEG quality"),
        "resize_factor": widgets.FloatSlider(value=values["resize_factor"], min=1.0, max=4.0, step=0.25,
                                             description="shrink by"),
    }
    original = widgets.Image(value=array_to_png(image, zoom=zoom), format="png")
    shown = widgets.Image(format="png")

    def redraw(_=None):
        params = {k: s.value for k, s in sliders.items()}
        shown.value = array_to_png(render_degradation(image, seed=seed, **params), zoom=zoom)

    for s in sliders.values():
        s.observe(redraw, names="value")
    redraw()
    panel = widgets.VBox([
        widgets.HBox(list(sliders.values())[:2]),
        widgets.HBox(list(sliders.values())[2:]),
        widgets.HBox([widgets.VBox([widgets.Label("original"), original]),
                      widgets.VBox([widgets.Label("degraded"), shown])]),
    ])
    panel.sliders = sliders
    panel.image = shown
    return panel


# ----------------------------------------------------------- diffusion explorer
def explorer_frame(frames, step: int) -> np.ndarray:
    """x_t and the predicted x0 of reverse step number `step` (0 = first, at t = T) side by side."""
    frame = frames[step]
    x_t, x0 = from_signed(frame.x_t), from_signed(frame.x0_pred)
    gap = np.ones((x_t.shape[0], 4, 3), dtype=np.float32)
    return np.concatenate([x_t, gap, x0], axis=1)


def schedule_figure(diffusion, *, current_t: int | None = None, ax=None):
    """eta_t and the noise std kappa*sqrt(eta_t) against t = 1..T, optionally marking one t."""
    plt = _plt()
    if ax is None:
        fig, ax = plt.subplots(figsize=(4.2, 2.8))
    else:
        fig = ax.figure
    ts = np.arange(1, diffusion.timesteps + 1)
    ax.plot(ts, diffusion.eta.numpy(), "o-", ms=3, label=r"$\eta_t$ (share of y - x0)")
    ax.plot(ts, diffusion.noise_std(), "s-", ms=3, label=r"noise std $\kappa\sqrt{\eta_t}$")
    if current_t is not None:
        ax.axvline(current_t, color="crimson", lw=1.5)
        ax.set_title(f"t = {current_t}", fontsize=9)
    ax.set_xlabel("t")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig


def frames_figure(frames, *, max_cols: int = 8):
    """Static grid: x_t (top row) and predicted x0 (bottom row) at (up to `max_cols`) steps."""
    n = len(frames)
    idx = sorted(set(np.linspace(0, n - 1, min(n, max_cols)).round().astype(int).tolist()))
    images = [from_signed(frames[i].x_t) for i in idx] + [from_signed(frames[i].x0_pred) for i in idx]
    titles = [f"x_t, t={frames[i].t + 1}" for i in idx] + [f"x0 pred, t={frames[i].t + 1}" for i in idx]
    return image_grid(images, titles, ncols=len(idx), size=1.9)


def explorer_title(frames, step: int) -> str:
    """The explorer's caption of reverse step `step`, counted from 1 as its slider is."""
    return f"step {step}/{len(frames)} (t = {frames[step - 1].t + 1}): x_t (left), predicted x0 (right)"


def explorer_png(frames, step: int, diffusion, *, zoom: int = 2) -> bytes:
    """One explorer picture of reverse step `step` (counted from 1, as the slider and the
    title count): x_t | x0 prediction, and the schedule with this step's t marked."""
    plt = _plt()
    pair = explorer_frame(frames, step - 1)
    fig, (a, b) = plt.subplots(1, 2, figsize=(8.4, 2.9), gridspec_kw={"width_ratios": [1.6, 1]})
    a.imshow(pair, interpolation="nearest")
    a.set_title(explorer_title(frames, step), fontsize=9)
    a.axis("off")
    schedule_figure(diffusion, current_t=frames[step - 1].t + 1, ax=b)
    return figure_to_png(fig)


def diffusion_explorer(frames, diffusion, *, interval_ms: int = 600):
    """A Play button linked to a step slider over precomputed frames of one reverse chain.

    The slider counts steps from 1 to len(frames), as the caption and the picture's title do.
    Returns an ipywidgets VBox with `.slider`, `.play`, `.caption`, `.image` and `.pngs`
    (`.pngs[step - 1]` is the picture of step `step`) attached.
    """
    import ipywidgets as widgets

    n = len(frames)
    pngs = [explorer_png(frames, step, diffusion) for step in range(1, n + 1)]
    play = widgets.Play(value=1, min=1, max=n, step=1, interval=interval_ms, description="play")
    slider = widgets.IntSlider(value=1, min=1, max=n, step=1, description="step")
    widgets.jslink((play, "value"), (slider, "value"))
    caption = widgets.Label(explorer_title(frames, 1))
    image = widgets.Image(value=pngs[0], format="png")

    def show(change):
        caption.value = explorer_title(frames, change["new"])
        image.value = pngs[change["new"] - 1]

    slider.observe(show, names="value")
    box = widgets.VBox([widgets.HBox([play, slider]), caption, image])
    box.slider, box.play, box.caption, box.image, box.pngs = slider, play, caption, image, pngs
    return box


# ------------------------------------------------------------- live loss plot
class LiveLoss:
    """An `on_step(step, parts)` callback that redraws a loss plot in a notebook every `every` steps."""

    def __init__(self, *, every: int = 10, title: str = "training loss"):
        self.every, self.title = every, title
        self.steps: list[int] = []
        self.losses: list[float] = []
        self._handle = None
        plt = _plt()
        self.fig, self.ax = plt.subplots(figsize=(5.6, 2.6))
        plt.close(self.fig)  # shown through a display handle, not at the end of the cell
        try:
            from IPython.display import display

            self._handle = display(self.fig, display_id=True)
        except Exception:  # no IPython: a plain callback that only records
            self._handle = None

    def __call__(self, step: int, parts: dict) -> None:
        self.steps.append(step)
        self.losses.append(float(parts["loss"]))
        if len(self.steps) % self.every == 0:
            self.draw()

    def draw(self) -> None:
        ax = self.ax
        ax.clear()
        ax.plot(self.steps, self.losses, lw=1)
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        if self.losses and min(self.losses) > 0:
            ax.set_yscale("log")
        ax.set_title(f"{self.title} (step {self.steps[-1] if self.steps else 0})", fontsize=9)
        self.fig.tight_layout()
        if self._handle is not None:
            self._handle.update(self.fig)
