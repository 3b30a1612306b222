"""sr_core: zero-shot super-resolution by a tiny diffusion model trained on one photo.

    from sr_core import Upscaler
    up = Upscaler().fit("photo.png", scale=4)
    up.upscale(scale=4).save("photo_x4.png")

Kept light on purpose: ``import sr_core`` does not import torch; `Upscaler` is imported on
first use. Layers: `sr_core.method` (the algorithm), `sr_core.evaluation` (metrics,
protocols, baselines, bench), `sr_core.runtime` (devices, files, tiling), `sr_core.faces`
(command lines, notebook widgets); `sr_core.resolve` decides what a run does.
"""

__version__ = "0.1.0"

from sr_core.errors import UserError

__all__ = ["Upscaler", "UserError", "__version__"]


def __getattr__(name: str):
    if name == "Upscaler":
        from sr_core.upscaler import Upscaler

        return Upscaler
    raise AttributeError(f"module 'sr_core' has no attribute {name!r}")
