"""Checkpoints: written atomically, loaded with ``weights_only=True`` (no pickled code runs)."""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sr_core.config import Config
from sr_core.errors import UserError
from sr_core.runtime.io import atomic_path

FORMAT = "sr_core-checkpoint"
FORMAT_VERSION = 1


def image_fingerprint(rgb: np.ndarray) -> str:
    """A short hash of the training image, so a resume cannot silently switch images."""
    q = np.round(np.clip(rgb, 0, 1) * 255).astype(np.uint8)
    return hashlib.sha256(q.tobytes() + str(q.shape).encode()).hexdigest()[:16]


def save_checkpoint(path: Path, payload: dict[str, Any], config: Config) -> Path:
    """Write `payload` (tensors, numbers, strings, lists, dicts) plus the config atomically."""
    data = {"format": FORMAT, "format_version": FORMAT_VERSION, "config": config.to_json(), **payload}
    path = Path(path)
    with atomic_path(path, overwrite=True) as tmp:
        torch.save(data, tmp)
    return path


def publish_as(src: Path, dst: Path) -> Path:
    """Make `dst` (e.g. last.pt) the same file as `src` atomically: a hard link, else a copy."""
    with atomic_path(Path(dst), overwrite=True) as tmp:
        tmp.unlink()
        try:
            os.link(src, tmp)
        except OSError:  # file systems without hard links
            shutil.copyfile(src, tmp)
    return Path(dst)


def load_checkpoint(path: Path, *, expect: Config | None = None) -> tuple[dict[str, Any], Config]:
    """Load and validate a checkpoint; `expect` checks that the architecture matches."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"checkpoint not found: {path}")
    if path.is_dir():
        raise UserError(f"checkpoint path is a directory: {path}")
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic != b"PK\x03\x04":  # torch.save writes a zip archive
        raise UserError(f"not an sr_core checkpoint (not a torch zip archive): {path}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise UserError(
            f"refusing to load {path}: it holds objects other than plain weights, "
            "and unpickling them could run code"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, KeyError) as exc:
        raise UserError(f"corrupt or truncated checkpoint {path}: {type(exc).__name__}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise UserError(f"not an sr_core checkpoint: {path}")
    version = data.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise UserError(
            f"checkpoint {path} has format version {version}; this sr_core reads up to "
            f"{FORMAT_VERSION} (upgrade sr_core)"
        )
    if not isinstance(data.get("config"), str):
        raise UserError(f"checkpoint {path} holds no readable config")
    config = Config.from_json(data["config"])
    if expect is not None and expect.architecture() != config.architecture():
        raise UserError(
            f"checkpoint {path} was trained with another model config "
            f"({config.architecture()} != {expect.architecture()})"
        )
    if "model" not in data:
        raise UserError(f"checkpoint {path} holds no model weights")
    return data, config
