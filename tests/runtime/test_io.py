import contextlib
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sr_core.errors import UserError
from sr_core.runtime.io import atomic_write_bytes, load_image, save_image


def test_png_round_trip_8bit(tmp_path):
    rgb = np.random.default_rng(0).random((10, 12, 3)).astype(np.float32)
    path = save_image(tmp_path / "a.png", rgb)
    img = load_image(path)
    assert img.size == (12, 10) and img.bit_depth == 8 and not img.gray and img.alpha is None
    assert np.abs(img.rgb - rgb).max() <= 0.5 / 255 + 1e-6


def test_16bit_colour_keeps_precision(tmp_path):
    rgb = np.random.default_rng(1).random((8, 9, 3)).astype(np.float32)
    path = save_image(tmp_path / "b.png", rgb, bit_depth=16)
    img = load_image(path)
    assert img.bit_depth == 16 and np.abs(img.rgb - rgb).max() < 1e-4


def test_gray_and_rgba_and_palette(tmp_path):
    Image.fromarray(np.full((8, 8), 77, np.uint8), "L").save(tmp_path / "g.png")
    g = load_image(tmp_path / "g.png")
    assert g.gray and g.rgb.shape == (8, 8, 3) and np.allclose(g.rgb, 77 / 255)
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 128
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    a = load_image(tmp_path / "a.png")
    assert a.alpha is not None and np.allclose(a.alpha, 128 / 255) and np.allclose(a.rgb[..., 0], 200 / 255)
    Image.fromarray(rgba[..., :3]).convert("P").save(tmp_path / "p.png")
    assert load_image(tmp_path / "p.png").rgb.shape == (8, 8, 3)
    # 16-bit gray
    Image.fromarray(np.full((8, 8), 40000, np.uint16)).save(tmp_path / "g16.png")
    g16 = load_image(tmp_path / "g16.png")
    assert g16.bit_depth == 16 and g16.gray and np.allclose(g16.rgb, 40000 / 65535, atol=1e-6)


def test_exif_orientation_is_honoured(tmp_path):
    arr = np.zeros((6, 10, 3), np.uint8)
    arr[0, 0] = 255  # marker in the top-left corner of the stored pixels
    im = Image.fromarray(arr)
    exif = im.getexif()
    exif[0x0112] = 6  # stored rotated: display = rotate 90 degrees clockwise
    im.save(tmp_path / "r.jpg", exif=exif, quality=100)
    img = load_image(tmp_path / "r.jpg")
    assert img.size == (6, 10)
    assert img.rgb[0, -1].mean() > 0.5  # the marker moved to the top-right corner


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: None, "not found"),
        (lambda p: p.write_bytes(b""), "empty"),
        (lambda p: p.write_text("hello, not an image"), "not an image"),
        (lambda p: p.mkdir(), "directory"),
    ],
)
def test_bad_files_give_one_line_errors(tmp_path, make, message):
    p = tmp_path / "x.png"
    make(p)
    with pytest.raises(UserError, match=message) as info:
        load_image(p)
    assert "\n" not in str(info.value)


def test_truncated_and_tiny_images(tmp_path):
    rgb = np.random.default_rng(0).random((64, 64, 3)).astype(np.float32)
    data = (tmp_path / "ok.png")
    save_image(data, rgb)
    (tmp_path / "t.png").write_bytes(data.read_bytes()[:300])
    with pytest.raises(UserError, match="corrupt or truncated"):
        load_image(tmp_path / "t.png")
    Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(tmp_path / "tiny.png")
    with pytest.raises(UserError, match="too small"):
        load_image(tmp_path / "tiny.png")


def test_save_refuses_to_overwrite_and_leaves_no_temp(tmp_path):
    rgb = np.zeros((4, 4, 3), np.float32)
    save_image(tmp_path / "o.png", rgb)
    before = (tmp_path / "o.png").read_bytes()
    with pytest.raises(UserError, match="already exists"):
        save_image(tmp_path / "o.png", rgb + 1)
    assert (tmp_path / "o.png").read_bytes() == before
    save_image(tmp_path / "o.png", rgb + 1, overwrite=True)
    assert (tmp_path / "o.png").read_bytes() != before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.png"]


def test_output_folder_that_cannot_exist(tmp_path):
    (tmp_path / "file.txt").write_text("a file, not a folder")
    with pytest.raises(UserError, match="cannot create output folder"):
        atomic_write_bytes(tmp_path / "file.txt" / "x.bin", b"1")


@contextlib.contextmanager
def _without_root():
    """Run the body as `nobody` where we are root (chmod stops nothing for root, and CI runs
    as root). The saved user id stays 0, so the process takes root back afterwards."""
    if os.name != "posix" or os.geteuid() != 0:
        yield
        return
    os.setresgid(65534, 65534, 0)
    os.setresuid(65534, 65534, 0)
    try:
        yield
    finally:
        os.setresuid(0, 0, 0)
        os.setresgid(0, 0, 0)


def test_unwritable_folder():
    # In the system temp folder, not under tmp_path: pytest's own folders are closed to other
    # users, and `nobody` must reach the folder to find it read-only.
    ro = Path(tempfile.mkdtemp(prefix="sr-core-ro-"))
    ro.chmod(0o555)
    try:
        with _without_root():
            if os.access(ro, os.W_OK):
                pytest.skip(f"this user can write to a 0o555 folder (uid {os.getuid()})")
            if not os.access(ro, os.X_OK):
                pytest.skip(f"an unprivileged user cannot reach {ro.parent}")
            with pytest.raises(UserError, match="not writable"):
                atomic_write_bytes(ro / "x.bin", b"1")
        assert list(ro.iterdir()) == []
    finally:
        ro.chmod(0o700)
        shutil.rmtree(ro)


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_written_files_get_the_permissions_of_a_plain_write(tmp_path):
    # Results are written through a mkstemp file (mode 0o600); they must come out as a plain
    # open(path, "w") would leave them: 0o666 less the umask for a new file, an existing
    # file's own mode when it is replaced.
    old = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "a.bin", b"1")
        save_image(tmp_path / "a.png", np.zeros((4, 4, 3), np.uint8))
        os.umask(0o077)
        atomic_write_bytes(tmp_path / "private.bin", b"1")
        kept = tmp_path / "kept.bin"
        kept.write_bytes(b"0")
        kept.chmod(0o640)
        atomic_write_bytes(kept, b"1")
    finally:
        os.umask(old)
    mode = {name: (tmp_path / name).stat().st_mode & 0o777 for name in ("a.bin", "a.png", "private.bin", "kept.bin")}
    assert mode == {"a.bin": 0o644, "a.png": 0o644, "private.bin": 0o600, "kept.bin": 0o640}
    assert kept.read_bytes() == b"1"


def test_kernels_load_normalised_and_bad_ones_give_one_line_errors(tmp_path):
    from sr_core.runtime.io import load_kernel

    k = np.outer([1, 2, 1], [1, 2, 1]).astype(np.float64)
    np.save(tmp_path / "k.npy", k)
    np.testing.assert_allclose(load_kernel(tmp_path / "k.npy"), k / 16, atol=1e-7)
    np.save(tmp_path / "k3d.npy", k[:, :, None])  # a trailing channel axis is dropped
    assert load_kernel(tmp_path / "k3d.npy").shape == (3, 3)
    Image.fromarray((k * 60).astype(np.uint8)).save(tmp_path / "k.png")  # a kernel drawn as an image
    np.testing.assert_allclose(load_kernel(tmp_path / "k.png"), k / 16, atol=1e-6)
    np.save(tmp_path / "even.npy", np.ones((4, 4)))
    np.save(tmp_path / "rect.npy", np.ones((3, 5)))
    np.save(tmp_path / "zero.npy", np.zeros((3, 3)))
    np.save(tmp_path / "nan.npy", np.full((3, 3), np.nan))
    np.save(tmp_path / "huge.npy", np.ones((103, 103)))
    np.save(tmp_path / "pickle.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (tmp_path / "text.npy").write_text("not an array")
    np.save(tmp_path / "complex.npy", np.ones((3, 3), np.complex64))
    cases = {"missing.npy": "not found", "even.npy": "odd side", "rect.npy": "square", "zero.npy": "positive sum",
             "nan.npy": "NaN", "huge.npy": "at most", "pickle.npy": "cannot read", "text.npy": "cannot read",
             "complex.npy": "real-valued"}
    for name, message in cases.items():
        with pytest.raises(UserError, match=message) as err:
            load_kernel(tmp_path / name)
        assert "\n" not in str(err.value)
