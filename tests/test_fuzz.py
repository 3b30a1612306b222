"""Fuzzing: odd images x odd scale requests, and mutated PNG/JPEG bytes.

The contract: every case either gives exactly the requested size or a one-line
UserError; nothing else escapes (no other exception, no traceback for the CLI to show).
Counts are printed (run with ``-s`` to see them) and recorded in docs/reliability.md.
"""

from __future__ import annotations

import io
import math
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from sr_core.config import DiffusionConfig, InferConfig
from sr_core.method.diffusion import ResShiftDiffusion
from sr_core.errors import UserError
from sr_core.method.infer import progressive_plan, target_size, upscale
from sr_core.runtime.io import MIN_SIDE, load_image

MODES = ["L", "LA", "RGB", "RGBA", "P", "I;16"]
HYPOTHESIS_EXAMPLES = 200
FUZZ_CASES = 600
COUNTS: dict[str, int] = {}


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors: one thread is far faster than two threads fighting for shared cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def identity_model(x_t, y, t):
    return y


def make_image(mode: str, w: int, h: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    if mode == "I;16":
        return Image.fromarray(rng.integers(0, 65536, (h, w), dtype=np.uint16))
    rgba = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
    if mode == "P":
        return Image.fromarray(rgba[..., :3], "RGB").convert("P")
    return Image.fromarray(rgba, "RGBA").convert(mode)


finite_or_not = st.one_of(
    st.floats(min_value=1, max_value=6, allow_nan=False),
    st.floats(min_value=-4, max_value=9, allow_nan=False),
    st.sampled_from([float("nan"), float("inf"), -float("inf"), 0.0, 1.0, 1.0001, 64.5, 1e9]),
)
requests = st.one_of(
    st.builds(lambda s: {"scale": s}, finite_or_not),
    st.builds(lambda a, b: {"scale_w": a, "scale_h": b}, st.none() | finite_or_not, st.none() | finite_or_not),
    st.builds(lambda a, b: {"size": (a, b)}, st.integers(-2, 90), st.integers(-2, 90)),
    st.builds(lambda a, b: {"size": (a, b)}, st.integers(20, 90), st.integers(20, 90)),
    st.just({}),
    st.just({"scale": 2.0, "size": (40, 40)}),  # two targets at once
)


@settings(max_examples=HYPOTHESIS_EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(
    mode=st.sampled_from(MODES),
    w=st.integers(4, 20) | st.integers(1, 3),
    h=st.integers(4, 20) | st.integers(1, 3),
    request=requests,
    final_pass=st.booleans(),
    max_step=st.sampled_from([1.5, 2.0, 4.0]),
)
def test_any_image_any_request_gives_exact_size_or_user_error(mode, w, h, request, final_pass, max_step):
    COUNTS["hypothesis"] = COUNTS.get("hypothesis", 0) + 1
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "in.png"
        make_image(mode, w, h, seed=w * 31 + h).save(path)
        before = path.read_bytes()
        try:
            img = load_image(path)
        except UserError as exc:
            assert min(w, h) < MIN_SIDE and "\n" not in str(exc)
            COUNTS["hypothesis_too_small"] = COUNTS.get("hypothesis_too_small", 0) + 1
            return
        assert img.size == (w, h) and img.rgb.shape == (h, w, 3) and img.rgb.dtype == np.float32
        assert img.bit_depth == (16 if mode == "I;16" else 8)
        assert (img.alpha is not None) == (mode in ("LA", "RGBA"))
        try:
            target = target_size(img.size, **request)
            plan = progressive_plan(img.size, target, max_step=max_step, final_pass=final_pass)
        except UserError as exc:
            assert "\n" not in str(exc)
            COUNTS["hypothesis_user_error"] = COUNTS.get("hypothesis_user_error", 0) + 1
            return
        if "size" in request:
            assert target == tuple(request["size"])
        else:
            fw = request.get("scale", request.get("scale_w")) or 1.0
            fh = request.get("scale", request.get("scale_h")) or 1.0
            assert target == (max(1, round(w * fw)), max(1, round(h * fh)))
        assert plan[-1].size == target
        diffusion = ResShiftDiffusion(DiffusionConfig(timesteps=2))
        out = upscale(identity_model, img.rgb, plan, diffusion, InferConfig(), progress=False)
        assert out.image.shape == (target[1], target[0], 3)
        assert np.isfinite(out.image).all() and out.image.min() >= 0 and out.image.max() <= 1
        assert path.read_bytes() == before  # the input is never touched
        COUNTS["hypothesis_upscaled"] = COUNTS.get("hypothesis_upscaled", 0) + 1


def _seed_files() -> dict[str, bytes]:
    """Small valid files of several kinds, to mutate."""
    out: dict[str, bytes] = {}

    def save(name, im, fmt, **kw):
        buf = io.BytesIO()
        im.save(buf, fmt, **kw)
        out[name] = buf.getvalue()

    save("rgb.png", make_image("RGB", 12, 9, 1), "PNG")
    save("rgba.png", make_image("RGBA", 9, 12, 2), "PNG")
    save("g16.png", make_image("I;16", 10, 10, 3), "PNG")
    save("p.png", make_image("P", 10, 8, 4), "PNG", transparency=0)
    save("rgb.jpg", make_image("RGB", 16, 16, 5), "JPEG", quality=90)
    exif_im = make_image("RGB", 12, 8, 6)
    exif = exif_im.getexif()
    exif[0x0112] = 6
    save("exif.jpg", exif_im, "JPEG", exif=exif)
    save("cmyk.jpg", make_image("RGB", 8, 8, 7).convert("CMYK"), "JPEG")
    save("prog.jpg", make_image("L", 16, 12, 8), "JPEG", progressive=True)
    return out


def _mutate(data: bytes, rng: np.random.Generator) -> bytes:
    b = bytearray(data)
    kind = rng.integers(0, 4)
    if kind == 0:  # flip a few bits
        for _ in range(int(rng.integers(1, 9))):
            i = int(rng.integers(0, len(b)))
            b[i] ^= 1 << int(rng.integers(0, 8))
    elif kind == 1:  # truncate
        b = b[: int(rng.integers(0, len(b)))]
    elif kind == 2:  # overwrite a run of bytes with random ones
        i = int(rng.integers(0, len(b)))
        n = int(rng.integers(1, 16))
        b[i:i + n] = rng.integers(0, 256, min(n, len(b) - i), dtype=np.uint8).tobytes()
    else:  # flip bits, then truncate
        i = int(rng.integers(0, len(b)))
        b[i] ^= 0xFF
        b = b[: int(rng.integers(len(b) // 2, len(b) + 1))]
    return bytes(b)


def test_mutated_png_and_jpeg_bytes_load_or_raise_user_error(tmp_path):
    rng = np.random.default_rng(20240611)
    seeds = _seed_files()
    names = sorted(seeds)
    outcomes = {"loaded": 0, "user_error": 0}
    failures = []
    path = tmp_path / "fuzz"
    for case in range(FUZZ_CASES):
        name = names[case % len(names)]
        data = _mutate(seeds[name], rng)
        p = path.with_suffix(Path(name).suffix)
        p.write_bytes(data)
        try:
            img = load_image(p)
        except UserError as exc:
            outcomes["user_error"] += 1
            if "\n" in str(exc):
                failures.append((case, name, "multi-line UserError", str(exc)))
            continue
        except Exception as exc:  # noqa: BLE001 - this is what the fuzz test looks for
            failures.append((case, name, type(exc).__name__, str(exc)[:200]))
            continue
        outcomes["loaded"] += 1
        ok = (img.rgb.ndim == 3 and img.rgb.shape[2] == 3 and min(img.size) >= MIN_SIDE
              and np.isfinite(img.rgb).all() and 0 <= img.rgb.min() and img.rgb.max() <= 1
              and (img.alpha is None or img.alpha.shape == img.rgb.shape[:2]))
        if not ok:
            failures.append((case, name, "bad array", f"{img.rgb.shape} {img.rgb.dtype}"))
    COUNTS["fuzz_cases"] = FUZZ_CASES
    print(f"\nfuzz: {FUZZ_CASES} mutated files ({len(names)} seeds): {outcomes}")
    assert not failures, failures[:10]


def test_zz_report_counts():
    """Print how many examples ran (the hypothesis test counts its own examples)."""
    print(f"\nhypothesis: {COUNTS.get('hypothesis', 0)} examples, "
          f"{COUNTS.get('hypothesis_upscaled', 0)} upscaled to the exact size, "
          f"{COUNTS.get('hypothesis_user_error', 0)} requests refused with a UserError, "
          f"{COUNTS.get('hypothesis_too_small', 0)} images refused as too small; "
          f"fuzz: {COUNTS.get('fuzz_cases', 0)} mutated files")
    assert math.isfinite(len(COUNTS))
