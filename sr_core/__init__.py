"""sr_core: zero-shot super-resolution by a tiny diffusion model trained on one photo.

Kept light on purpose: ``import sr_core`` does not import torch. Import the modules you
need (``sr_core.method.train``, ``sr_core.method.infer``, ...).
"""

__version__ = "0.1.0"

from sr_core.errors import UserError

__all__ = ["UserError", "__version__"]
