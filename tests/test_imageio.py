"""Image input: every Pillow mode gets a defined conversion or a clear error; outputs never clobber."""

from __future__ import annotations

import io
import os
import stat
import threading
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from multirealism.errors import ImageInputError
from multirealism.imageio import OutputPathError, load_image, save_image, write_new_file

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, size=(13, 17, 3), dtype=np.uint8)


def _expect_rgb(tensor: torch.Tensor, array: np.ndarray) -> None:
    assert tensor.dtype == torch.float32 and tensor.shape == (3, *array.shape[:2])
    np.testing.assert_allclose(tensor.permute(1, 2, 0).numpy(), array.astype(np.float32) / 255, atol=1e-6)


def test_rgb_png(tmp_path):
    Image.fromarray(RGB).save(tmp_path / "a.png")
    _expect_rgb(load_image(tmp_path / "a.png"), RGB)


def test_grayscale_8bit_is_replicated(tmp_path):
    grey = RGB[..., 0]
    Image.fromarray(grey).save(tmp_path / "g.png")
    _expect_rgb(load_image(tmp_path / "g.png"), np.repeat(grey[..., None], 3, axis=-1))


def test_grayscale_16bit_is_scaled_not_clipped(tmp_path):
    grey = np.array([[0, 1000, 40000, 65535]], dtype=np.uint16)
    Image.fromarray(grey).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode.startswith("I;16")
    image = load_image(tmp_path / "g16.png")
    np.testing.assert_allclose(image[0, 0].numpy(), grey[0] / 65535, rtol=1e-6)
    assert torch.equal(image[0], image[2])


def test_int32_and_float_modes(tmp_path):
    Image.fromarray(np.array([[0, 65535]], dtype=np.int32)).save(tmp_path / "i.tif")
    np.testing.assert_allclose(load_image(tmp_path / "i.tif")[1, 0].numpy(), [0, 1])
    Image.fromarray(np.array([[70000]], dtype=np.int32)).save(tmp_path / "big.tif")
    with pytest.raises(ImageInputError, match="16-bit range"):
        load_image(tmp_path / "big.tif")
    Image.fromarray(np.array([[0.25, 1.0]], dtype=np.float32)).save(tmp_path / "f.tif")
    np.testing.assert_allclose(load_image(tmp_path / "f.tif")[0, 0].numpy(), [0.25, 1.0])
    Image.fromarray(np.array([[2.0]], dtype=np.float32)).save(tmp_path / "f2.tif")
    with pytest.raises(ImageInputError, match=r"\[0, 1\]"):
        load_image(tmp_path / "f2.tif")


def test_palette_with_and_without_transparency(tmp_path):
    palette = Image.fromarray(RGB).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    palette.save(tmp_path / "p.png")
    expected = np.asarray(palette.convert("RGB"))
    _expect_rgb(load_image(tmp_path / "p.png"), expected)
    palette.save(tmp_path / "pt.png", transparency=int(np.asarray(palette)[0, 0]))
    with pytest.warns(UserWarning, match="transparent"):
        _expect_rgb(load_image(tmp_path / "pt.png"), expected)
    with pytest.raises(ImageInputError, match="alpha"):
        load_image(tmp_path / "pt.png", alpha="error")


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_alpha_dropped_with_warning_or_refused(tmp_path, mode):
    rgba = np.concatenate([RGB, np.full((13, 17, 1), 255, np.uint8)], axis=-1)
    rgba[0, 0, 3] = 0
    Image.fromarray(rgba).convert(mode).save(tmp_path / "a.png")
    with pytest.warns(UserWarning, match="alpha channel was dropped"):
        image = load_image(tmp_path / "a.png")
    expected = RGB if mode == "RGBA" else np.asarray(Image.fromarray(RGB).convert("L").convert("RGB"))
    _expect_rgb(image, expected)
    with pytest.raises(ImageInputError, match="transparent pixels"):
        load_image(tmp_path / "a.png", alpha="error")


def test_opaque_alpha_is_dropped_silently(tmp_path):
    Image.fromarray(RGB).convert("RGBA").save(tmp_path / "o.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _expect_rgb(load_image(tmp_path / "o.png", alpha="error"), RGB)


def test_cmyk_jpeg_is_converted(tmp_path):
    cmyk = Image.fromarray(RGB).convert("CMYK")
    cmyk.save(tmp_path / "c.jpg", quality=95)
    image = load_image(tmp_path / "c.jpg")
    reference = np.asarray(Image.open(tmp_path / "c.jpg").convert("RGB"))
    _expect_rgb(image, reference)


def test_exif_orientation_is_applied(tmp_path):
    tall = np.zeros((20, 8, 3), np.uint8)
    tall[:4] = 255  # white band at the top of the stored pixels
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    Image.fromarray(tall).save(tmp_path / "r.jpg", exif=exif, quality=95)
    image = load_image(tmp_path / "r.jpg")
    assert image.shape == (3, 8, 20)  # displayed landscape
    assert float(image[:, :, -4:].mean()) > 0.9 and float(image[:, :, :4].mean()) < 0.1


@pytest.mark.parametrize("shape", [(1, 1), (1, 300), (300, 1)])
def test_tiny_and_thin_images(tmp_path, shape):
    array = RNG.integers(0, 256, size=(*shape, 3), dtype=np.uint8)
    Image.fromarray(array).save(tmp_path / "t.png")
    _expect_rgb(load_image(tmp_path / "t.png"), array)


def test_non_image_truncated_and_missing_files(tmp_path):
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(ImageInputError, match="notes.png.*not a readable image"):
        load_image(tmp_path / "notes.png")
    buffer = io.BytesIO()
    Image.fromarray(RNG.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)).save(buffer, format="PNG")
    (tmp_path / "cut.png").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(ImageInputError, match="cut.png.*truncated"):
        load_image(tmp_path / "cut.png")
    with pytest.raises(ImageInputError, match="does not exist"):
        load_image(tmp_path / "missing.png")


def test_pixel_limit_checked_before_decoding(tmp_path, monkeypatch):
    Image.fromarray(RGB).save(tmp_path / "a.png")

    def no_decode(self):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(Image.Image, "load", no_decode)
    with pytest.raises(ImageInputError, match="over the limit"):
        load_image(tmp_path / "a.png", max_pixels=13 * 17 - 1)


def test_decompression_bomb_header_is_refused(tmp_path):
    """A PNG whose header claims 100000 x 100000 pixels is refused from the header alone."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    (tmp_path / "bomb.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))
    with pytest.raises(ImageInputError, match="too large|over the limit"):
        load_image(tmp_path / "bomb.png")


def test_save_image_round_trip_and_no_clobber(tmp_path):
    image = torch.from_numpy(RGB).permute(2, 0, 1).float() / 255
    save_image(image, tmp_path / "out.png")
    _expect_rgb(load_image(tmp_path / "out.png"), RGB)
    before = (tmp_path / "out.png").read_bytes()
    with pytest.raises(OutputPathError, match="already exists"):
        save_image(torch.zeros(3, 4, 4), tmp_path / "out.png")
    assert (tmp_path / "out.png").read_bytes() == before
    save_image(torch.zeros(1, 3, 4, 4), tmp_path / "out.png", force=True)
    assert load_image(tmp_path / "out.png").shape == (3, 4, 4)
    assert sorted(os.listdir(tmp_path)) == ["out.png"]  # no temp files left behind


def test_write_errors_are_clear(tmp_path):
    with pytest.raises(OutputPathError, match="does not exist"):
        write_new_file(tmp_path / "no" / "x.mrc", b"x")
    with pytest.raises(OutputPathError, match="folder"):
        write_new_file(tmp_path, b"x", force=True)
    with pytest.raises(ImageInputError, match="RGB"):
        save_image(torch.zeros(4, 4), tmp_path / "x.png")


def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "keep.png"
    target.write_bytes(b"old")

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        write_new_file(target, b"new", force=True)
    assert target.read_bytes() == b"old"
    assert sorted(os.listdir(tmp_path)) == ["keep.png"]


def test_file_created_by_another_writer_meanwhile_is_not_overwritten(tmp_path, monkeypatch):
    """The existence check and the final rename are not one step: another process may create the file in
    between. The no-overwrite write links the finished temp file into place, which fails atomically."""
    target = tmp_path / "race.mrc"
    real_fdopen = os.fdopen

    def other_writer_wins(fd, *args, **kwargs):  # runs after the check, before our file is in place
        target.write_bytes(b"theirs")
        return real_fdopen(fd, *args, **kwargs)

    monkeypatch.setattr(os, "fdopen", other_writer_wins)
    with pytest.raises(OutputPathError, match="already exists"):
        write_new_file(target, b"ours")
    assert target.read_bytes() == b"theirs"
    assert sorted(os.listdir(tmp_path)) == ["race.mrc"]


def test_written_files_get_the_usual_permissions(tmp_path):
    mask = os.umask(0o022)
    try:
        write_new_file(tmp_path / "a.mrc", b"x")
    finally:
        os.umask(mask)
    assert (tmp_path / "a.mrc").stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize("suffix", [".gif", ".webp"])
def test_animated_inputs_are_refused_not_cut_to_one_frame(tmp_path, suffix):
    frames = [Image.fromarray(np.full((8, 8, 3), value, np.uint8)) for value in (0, 255)]
    frames[0].save(tmp_path / f"a{suffix}", save_all=True, append_images=frames[1:], duration=100, loop=0)
    with pytest.raises(ImageInputError, match="2 frames"):
        load_image(tmp_path / f"a{suffix}")


def test_fifo_and_device_outputs_are_written_through_never_replaced(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    write_new_file(fifo, b"MRIC-data", force=True)
    reader.join(timeout=30)
    assert received == [b"MRIC-data"] and stat.S_ISFIFO(fifo.stat().st_mode)
    null = _null_device(tmp_path)  # a character device: written into, still a device
    write_new_file(null, b"x", force=True)
    write_new_file(null, b"x")  # as Unix tools do, with or without force
    assert stat.S_ISCHR(null.stat().st_mode)
    assert sorted(os.listdir(tmp_path)) == ["null", "pipe"]  # no temp file


def _null_device(folder):
    """A private /dev/null (a code under test that replaced it would replace this one, not the system's)."""
    path = folder / "null"
    try:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("creating a device node needs root")
    return path


def test_unwritable_folder_and_full_disk_name_the_target_not_the_temp_file(tmp_path, monkeypatch):
    import errno
    import tempfile

    def read_only(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path / ".x.mrc.abcd.tmp"))

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    with pytest.raises(PermissionError) as err:
        write_new_file(tmp_path / "x.mrc", b"data")
    assert err.value.filename == str(tmp_path / "x.mrc")
    monkeypatch.undo()

    def disk_full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError) as err:
        write_new_file(tmp_path / "y.mrc", b"data")
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(tmp_path / "y.mrc")
    assert os.listdir(tmp_path) == []  # the temp file is gone


def test_existing_output_message_names_the_api_argument(tmp_path):
    (tmp_path / "a.mrc").write_bytes(b"x")
    with pytest.raises(OutputPathError, match="force=True") as err:
        write_new_file(tmp_path / "a.mrc", b"y")
    assert "--force" not in str(err.value) and "--force" in err.value.for_command_line()
