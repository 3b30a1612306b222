"""Image files in and out: any common format, 8/16 bit, gray/RGBA, EXIF orientation, atomic writes."""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from sr_core.errors import UserError

MIN_SIDE = 4  # smaller images cannot carry a 7x7 blur kernel's worth of structure
_GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}


@dataclass
class LoadedImage:
    """An image as floats in [0, 1] plus what is needed to write it back the same way."""

    rgb: np.ndarray  # float32, H x W x 3
    alpha: np.ndarray | None  # float32, H x W, or None
    bit_depth: int  # 8 or 16
    gray: bool  # the source had one colour channel
    path: Path | None = None

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)."""
        return self.rgb.shape[1], self.rgb.shape[0]


def load_image(path: str | os.PathLike, *, min_side: int = MIN_SIDE, name: str | None = None) -> LoadedImage:
    """Read an image file; raise UserError with a one-line reason if it cannot be used
    (`name`: what the reason calls the file, e.g. its path relative to a batch's input)."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"input image not found: {p}")
    if p.is_dir():
        raise UserError(f"input is a directory, not an image: {p}")
    if p.stat().st_size == 0:
        raise UserError(f"input image is empty (0 bytes): {name or p}")
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read {p}: {exc.strerror or exc}") from None
    image = decode_image(data, name=name or p, min_side=min_side)
    image.path = p
    return image


def decode_image(data: bytes, *, name: str | os.PathLike, min_side: int = MIN_SIDE) -> LoadedImage:
    """An image file's bytes as a LoadedImage; `name` (its path, or what a message calls it)."""
    from PIL import Image, UnidentifiedImageError

    p = Path(name)
    try:
        # Orientation is applied in numpy below, so 16-bit data stays intact.
        with Image.open(io.BytesIO(data)) as im:
            im.load()  # decode fully now, so truncated files fail here
            mode = im.mode
            has_alpha = mode in ("RGBA", "LA", "PA") or (
                mode == "P" and "transparency" in im.info
            )
            orientation = im.getexif().get(0x0112, 1)
            pil_pixels = _pil_to_array(im, has_alpha)
    except UnidentifiedImageError:
        raise UserError(f"not an image file (format not recognised): {p}") from None
    except Image.DecompressionBombError as exc:
        raise UserError(f"image too large to open safely: {p} ({exc})") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise UserError(f"corrupt or truncated image: {p} ({exc})") from None

    pixels = _cv2_decode(data, pil_pixels.shape[:2])
    if pixels is None or (pixels.ndim == 3 and pixels.shape[2] == 4) != has_alpha:
        pixels = pil_pixels
    pixels = _apply_orientation(pixels, orientation)
    return _from_pixels(pixels, has_alpha=has_alpha, gray=mode in _GRAY_MODES, min_side=min_side, path=p)


def _from_pixels(pixels: np.ndarray, *, has_alpha: bool, gray: bool, min_side: int = MIN_SIDE,
                 path: Path | None = None) -> LoadedImage:
    """uint8/uint16 pixels (H x W, H x W x 1-4) -> a LoadedImage."""
    bit_depth = 16 if pixels.dtype == np.uint16 else 8
    scale = 65535.0 if bit_depth == 16 else 255.0
    return _from_floats(pixels.astype(np.float32) / scale, has_alpha=has_alpha, gray=gray, bit_depth=bit_depth,
                        min_side=min_side, path=path)


def _from_floats(arr: np.ndarray, *, has_alpha: bool, gray: bool, bit_depth: int, min_side: int = MIN_SIDE,
                 path: Path | None = None) -> LoadedImage:
    """Float pixels in [0, 1] (H x W, H x W x 1-4) -> a LoadedImage."""
    if arr.ndim == 2:
        arr = arr[:, :, None]
    alpha = arr[:, :, -1] if has_alpha else None
    color = arr[:, :, :-1] if has_alpha else arr
    gray = gray or color.shape[2] == 1
    if color.shape[2] == 1:
        color = np.repeat(color, 3, axis=2)
    h, w = color.shape[:2]
    if min(h, w) < min_side:
        where = f": {path}" if path is not None else ""
        raise UserError(f"image is too small ({w}x{h}); need at least {min_side}x{min_side}{where}")
    return LoadedImage(
        rgb=np.ascontiguousarray(color[:, :, :3]),
        alpha=None if alpha is None else np.ascontiguousarray(alpha),
        bit_depth=bit_depth,
        gray=gray,
        path=path,
    )


def from_pil(im, *, min_side: int = MIN_SIDE) -> LoadedImage:
    """A PIL image (any mode) as a LoadedImage, as `load_image` would read it from a file."""
    has_alpha = im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info)
    return _from_pixels(_pil_to_array(im, has_alpha), has_alpha=has_alpha, gray=im.mode in _GRAY_MODES,
                        min_side=min_side)


def from_array(arr, *, min_side: int = MIN_SIDE) -> LoadedImage:
    """An H x W (gray), H x W x 3 (RGB) or H x W x 4 (RGBA) array: uint8, uint16, or floats in [0, 1]."""
    a = np.asarray(arr)
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (1, 3, 4)):
        raise UserError(f"an image array must be H x W, H x W x 3 or H x W x 4, got shape {a.shape}")
    if a.dtype == np.uint8 or a.dtype == np.uint16:
        pixels = a
    elif a.dtype.kind == "f":
        if a.size == 0 or not np.isfinite(a).all():
            raise UserError("an image array must hold finite values")
        if a.min() < 0 or a.max() > 1:
            raise UserError(f"a float image array must lie in [0, 1], got [{a.min():.3g}, {a.max():.3g}]")
        pixels = None
    else:
        raise UserError(f"an image array must be uint8, uint16 or float, got {a.dtype}")
    has_alpha = a.ndim == 3 and a.shape[2] == 4
    gray = a.ndim == 2 or a.shape[2] == 1
    if pixels is not None:
        return _from_pixels(pixels, has_alpha=has_alpha, gray=gray, min_side=min_side)
    return _from_floats(a.astype(np.float32), has_alpha=has_alpha, gray=gray, bit_depth=8, min_side=min_side)


@dataclass(frozen=True)
class ImageKind:
    """What the caller handed in, so a result can be handed back the same way."""

    kind: str  # "path", "pil" or "array"
    shape: tuple[int, ...] = ()
    dtype: str = ""


def as_loaded_image(image) -> tuple[LoadedImage, ImageKind]:
    """A path, PIL image or array as a LoadedImage, and what kind of thing it was."""
    if isinstance(image, LoadedImage):
        return image, ImageKind("path")
    if isinstance(image, (str, os.PathLike)):
        return load_image(image), ImageKind("path")
    if hasattr(image, "mode") and hasattr(image, "getexif"):  # a PIL image, without importing PIL
        return from_pil(image), ImageKind("pil")
    if isinstance(image, np.ndarray) or hasattr(image, "__array__"):
        arr = np.asarray(image)
        return from_array(arr), ImageKind("array", arr.shape, str(arr.dtype))
    raise UserError(f"an image must be a file path, a PIL image or an array, got {type(image).__name__}")


def as_kind(rgb: np.ndarray, alpha: np.ndarray | None, like: LoadedImage, kind: ImageKind):
    """The result as the caller gave the input: a PIL image for a path or PIL image (mode L,
    I;16, LA, RGB or RGBA as the input's), else an array of the input's dtype and layout."""
    if kind.kind in ("path", "pil"):
        from PIL import Image

        if like.gray:
            y = luma(rgb)
            if alpha is not None:
                return Image.fromarray(to_uint(np.stack([y, alpha], axis=2), 8), "LA")
            return Image.fromarray(to_uint(y, 16)) if like.bit_depth == 16 else Image.fromarray(to_uint(y, 8), "L")
        chans = rgb if alpha is None else np.concatenate([rgb, alpha[:, :, None]], axis=2)
        return Image.fromarray(to_uint(chans, 8), "RGBA" if alpha is not None else "RGB")
    channels = kind.shape[2] if len(kind.shape) == 3 else 0
    if channels == 4:
        out = np.concatenate([rgb, alpha[:, :, None]], axis=2)
    elif channels in (0, 1):
        out = luma(rgb)
        out = out if channels == 0 else out[:, :, None]
    else:
        out = rgb
    dtype = np.dtype(kind.dtype)
    if dtype in (np.dtype(np.uint8), np.dtype(np.uint16)):
        return to_uint(out, 16 if dtype == np.uint16 else 8)
    return np.clip(out, 0, 1).astype(dtype)


def _pil_to_array(im, has_alpha: bool) -> np.ndarray:
    if im.mode in ("I;16", "I;16B", "I;16L"):
        return np.asarray(im, dtype=np.uint16)
    if im.mode in ("I", "F"):
        arr = np.asarray(im, dtype=np.float64)
        top = 65535 if arr.max() > 255 else 255
        dtype = np.uint16 if top == 65535 else np.uint8
        return np.clip(arr, 0, top).astype(dtype)
    target = ("LA" if im.mode in ("LA", "1", "L") else "RGBA") if has_alpha else None
    if target is None:
        target = "L" if im.mode in ("1", "L") else "RGB"
    return np.asarray(im.convert(target), dtype=np.uint8)


def _cv2_decode(data: bytes, hw: tuple[int, int]) -> np.ndarray | None:
    """OpenCV keeps 16-bit colour that Pillow truncates; returns RGB(A) order or None."""
    try:
        import cv2
    except ImportError:
        return None
    flags = cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if arr is None or arr.shape[:2] != tuple(hw) or arr.dtype not in (np.uint8, np.uint16):
        return None
    if arr.ndim == 3 and arr.shape[2] == 3:
        arr = arr[:, :, ::-1]
    elif arr.ndim == 3 and arr.shape[2] == 4:
        arr = arr[:, :, [2, 1, 0, 3]]
    elif arr.ndim == 3 and arr.shape[2] == 2:
        pass  # gray + alpha
    elif arr.ndim != 2:
        return None
    return np.ascontiguousarray(arr)


def _apply_orientation(arr: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation tag (1-8) so the pixels are upright."""
    ops = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1, :],
        5: lambda a: np.swapaxes(a, 0, 1),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: np.rot90(np.swapaxes(a, 0, 1), 2),
        8: lambda a: np.rot90(a, 1),
    }
    op = ops.get(int(orientation or 1))
    return np.ascontiguousarray(op(arr)) if op else arr


def luma(rgb: np.ndarray) -> np.ndarray:
    """The gray value a one-channel output is written with (ITU-R BT.601 weights)."""
    return rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


def to_uint(arr: np.ndarray, bit_depth: int) -> np.ndarray:
    top = 65535 if bit_depth == 16 else 255
    dtype = np.uint16 if bit_depth == 16 else np.uint8
    return np.round(np.clip(arr, 0.0, 1.0) * top).astype(dtype)


def encode_png(
    rgb: np.ndarray, *, alpha: np.ndarray | None = None, bit_depth: int = 8, gray: bool = False
) -> bytes:
    """PNG bytes of an H x W x 3 float image in [0, 1], keeping bit depth and mode."""
    import cv2

    if gray:
        y = luma(rgb)
        chans = [y] if alpha is None else [y, y, y, alpha]  # OpenCV has no gray+alpha
    else:
        chans = [rgb[:, :, 2], rgb[:, :, 1], rgb[:, :, 0]]
        if alpha is not None:
            chans.append(alpha)
    arr = to_uint(np.stack(chans, axis=2) if len(chans) > 1 else chans[0], bit_depth)
    ok, buf = cv2.imencode(".png", arr)
    if not ok:
        raise UserError("could not encode the output as PNG")
    return buf.tobytes()


def save_image(
    path: str | os.PathLike,
    rgb: np.ndarray,
    *,
    alpha: np.ndarray | None = None,
    bit_depth: int = 8,
    gray: bool = False,
    overwrite: bool = False,
) -> Path:
    """Write a PNG atomically; refuse to replace an existing file unless `overwrite`."""
    p = Path(path)
    if p.suffix.lower() != ".png":
        raise UserError(f"output must be a .png file: {p}")
    atomic_write_bytes(p, encode_png(rgb, alpha=alpha, bit_depth=bit_depth, gray=gray),
                       overwrite=overwrite)
    return p


def check_writable(path: Path, *, overwrite: bool) -> None:
    """Fail early (before any long work) if `path` cannot be written as asked."""
    if path.exists() and not overwrite:
        raise UserError(f"output already exists: {path} (use --overwrite to replace it)")
    if path.exists() and path.is_dir():
        raise UserError(f"output path is a directory: {path}")
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create output folder {folder}: {exc.strerror or exc}") from None
    if not os.access(folder, os.W_OK):
        raise UserError(f"output folder is not writable: {folder}")


def _umask() -> int:
    """The process's umask, read without changing it where the OS allows (Linux)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore (not thread-safe, hence the above first)
    os.umask(mask)
    return mask


def _plain_write_mode(path: Path) -> int:
    """The permission bits `open(path, "w")` would leave: an existing file keeps its own, a
    new one gets 0o666 less the umask. (A temporary file from mkstemp is 0o600, so without
    this every result would be readable by its owner alone.)"""
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        return 0o666 & ~_umask()


@contextlib.contextmanager
def atomic_path(path: Path, *, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path` in one rename."""
    path = Path(path)
    check_writable(path, overwrite=overwrite)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if path.exists() and not overwrite:
            raise UserError(f"output already exists: {path} (use --overwrite to replace it)")
        os.chmod(tmp_path, _plain_write_mode(path))
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_bytes(path: Path, data: bytes, *, overwrite: bool = True) -> None:
    try:
        with atomic_path(Path(path), overwrite=overwrite) as tmp:
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
    except PermissionError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror}") from None


def atomic_write_text(path: Path, text: str, *, overwrite: bool = True) -> None:
    atomic_write_bytes(Path(path), text.encode("utf-8"), overwrite=overwrite)


MAX_KERNEL_SIDE = 101


def load_kernel(path: str | os.PathLike) -> np.ndarray:
    """Read a blur kernel: a 2-D .npy array (no pickles) or a grayscale image; returns it as
    float32 normalised to sum 1, or raises UserError with a one-line reason.

    The kernel must be square with an odd side (its centre is a pixel) of at most
    `MAX_KERNEL_SIDE`, finite, with a positive sum.
    """
    p = Path(path)
    if not p.is_file():
        raise UserError(f"kernel file not found: {p}")
    if p.suffix.lower() == ".npy":
        try:
            k = np.load(p, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise UserError(f"cannot read kernel {p} as a numpy array: {exc}") from None
        if k.dtype.kind not in "biuf":  # complex, strings, records: not a blur
            raise UserError(f"kernel {p} is not a real-valued array (dtype {k.dtype})")
        k = k.astype(np.float64)
        if k.ndim == 3 and 1 in (k.shape[0], k.shape[-1]):
            k = k.squeeze(axis=0 if k.shape[0] == 1 else -1)
    else:
        k = load_image(p, min_side=1).rgb.astype(np.float64).mean(axis=2)
    return check_kernel(k, f"kernel {p}")


def as_kernel(kernel) -> np.ndarray | None:
    """A blur kernel given as a file (`load_kernel`), an array (`check_kernel`) or None."""
    if kernel is None:
        return None
    if isinstance(kernel, (str, os.PathLike)):
        return load_kernel(kernel)
    return check_kernel(kernel)


def check_kernel(kernel, name: str = "kernel") -> np.ndarray:
    """A blur kernel given as an array: square, odd-sided (its centre a pixel), at most
    `MAX_KERNEL_SIDE`, finite, with a positive sum; returned as float32 normalised to sum 1,
    or a UserError with a one-line reason naming `name`."""
    try:
        k = np.asarray(kernel.detach().cpu() if hasattr(kernel, "detach") else kernel, dtype=np.float64)
    except (TypeError, ValueError):
        raise UserError(f"{name} is not an array of numbers") from None
    if k.ndim != 2:
        raise UserError(f"{name} must be 2-D, got shape {tuple(k.shape)}")
    h, w = k.shape
    if h != w or h % 2 == 0:
        raise UserError(f"{name} must be square with an odd side (its centre a pixel), got {w}x{h}")
    if h > MAX_KERNEL_SIDE:
        raise UserError(f"{name} is {w}x{h}; at most {MAX_KERNEL_SIDE}x{MAX_KERNEL_SIDE} is supported")
    if not np.all(np.isfinite(k)):
        raise UserError(f"{name} contains NaN or infinite values")
    total = float(k.sum())
    if total <= 0:
        raise UserError(f"{name} must have a positive sum, got {total:g}")
    return (k / total).astype(np.float32)
