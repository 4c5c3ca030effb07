"""Reading images into the codec's layout and writing results without ever clobbering a file.

:func:`load_image` turns any file Pillow can read into a ``(3, H, W)`` float32 tensor in [0, 1]
with explicit, documented conversions (every other mode is refused with :class:`ImageInputError`):

* EXIF orientation is applied first, so a rotated JPEG is coded the way viewers show it.
* Greyscale is replicated to RGB. 8-bit ``L``/``1`` map 0..255 to [0, 1]; 16-bit ``I;16*`` and
  32-bit ``I`` are read as 16-bit samples (0..65535 → [0, 1], values outside that range are refused);
  ``F`` must already lie in [0, 1].
* Palette images are expanded (with their transparency, if any); ``CMYK``, ``YCbCr``, ``LAB`` and
  ``HSV`` are converted with Pillow's conversion (ICC profiles are ignored).
* Animated or multi-page files (GIF, WebP, TIFF, ...) are refused: which frame to code is the user's choice.
* An alpha channel that is fully opaque is dropped silently. One with transparent pixels is dropped
  with a warning (``alpha="drop"``) or refused (``alpha="error"``); colour under transparent pixels
  is kept as stored, not composited.

The pixel count is checked against ``max_pixels`` from the header, before any pixel is decoded, so a
decompression bomb costs nothing. :func:`save_image` and :func:`write_new_file` write through a temp
file and a rename, and refuse an existing destination unless ``force=True``; a FIFO or character device
(``/dev/null``) is written through, never replaced.
"""

from __future__ import annotations

import io
import os
import stat
import warnings
from pathlib import Path
from typing import Union

import numpy as np
import torch
from PIL import Image, ImageOps
from torch import Tensor

from multirealism.checkpoint import atomic_write_bytes
from multirealism.bitstream_format import DEFAULT_MAX_PIXELS, pixel_limit_message
from multirealism.errors import ImageInputError, OutputExistsError, OutputPathError

PathLike = Union[str, "os.PathLike[str]"]
ALPHA_POLICIES = ("drop", "error")
_ALPHA_MODES = {"RGBA": "RGB", "RGBa": "RGB", "LA": "L", "La": "L", "PA": "RGB"}
_COLOUR_CONVERSIONS = {"P", "CMYK", "YCbCr", "LAB", "HSV", "RGBX", "1"}
_SIXTEEN_BIT = 65535.0


class TransparencyError(ImageInputError):
    """The image has transparent pixels and ``alpha="error"`` was asked; ``description`` says so without
    naming the Python or command-line option that drops the alpha channel."""

    def __init__(self, description: str) -> None:
        super().__init__(f"{description} (pass alpha='drop' to ignore it)")
        self.description = description


#: output formats written by extension (lossless WebP keeps the decoded pixels exactly, like PNG)
OUTPUT_FORMATS = {".png": ("PNG", {}), ".webp": ("WEBP", {"lossless": True}), ".jpg": ("JPEG", {"quality": 95}),
                  ".jpeg": ("JPEG", {"quality": 95})}


def _open_checked(path: Path, max_pixels: int, data: "bytes | None" = None) -> Image.Image:
    """Open lazily (``data`` if given, else the file ``path``) and check the declared size and frame count
    before decoding any pixel data."""
    if data is None and not path.is_file():
        raise ImageInputError(f"image {str(path)!r} does not exist or is not a file")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(path if data is None else io.BytesIO(data))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
            raise ImageInputError(f"image {str(path)!r} is too large: {err}") from err
        except (OSError, SyntaxError, ValueError) as err:  # UnidentifiedImageError is an OSError
            raise ImageInputError(f"{str(path)!r} is not a readable image: {err}") from err
    frames = getattr(image, "n_frames", 1)
    if frames > 1:
        image.close()
        raise ImageInputError(
            f"image {str(path)!r} has {frames} frames (animated or multi-page); multirealism codes one still image: "
            "extract the frame you want first"
        )
    width, height = image.size
    if width < 1 or height < 1:
        image.close()
        raise ImageInputError(f"image {str(path)!r} is empty ({width}x{height})")
    if width * height > max_pixels:
        image.close()
        raise ImageInputError(pixel_limit_message(f"image {str(path)!r} ({width}x{height})", width * height, max_pixels))
    return image


def _drop_alpha(image: Image.Image, path: Path, alpha: str) -> Image.Image:
    """Remove the alpha band, warning or refusing when it actually hides pixels."""
    if image.mode == "PA":
        image = image.convert("RGBA")
    alpha_band = np.asarray(image.getchannel("A"))
    if int(alpha_band.min()) < 255:
        message = f"image {str(path)!r} has transparent pixels ({image.mode}); its alpha channel"
        if alpha == "error":
            raise TransparencyError(f"{message} is not supported")
        warnings.warn(f"{message} was dropped", UserWarning, stacklevel=3)
    return image.convert(_ALPHA_MODES[image.mode])


def _to_unit_array(image: Image.Image, path: Path) -> np.ndarray:
    """(H, W, 3) float32 in [0, 1] from an ``RGB``, ``L``, ``I;16*``, ``I`` or ``F`` image."""
    mode = image.mode
    if mode in ("RGB", "L"):
        array = np.asarray(image, dtype=np.float32) / 255.0
    elif mode.startswith("I;16") or mode == "I":
        raw = np.asarray(image).astype(np.float64)
        if raw.size and (raw.min() < 0 or raw.max() > _SIXTEEN_BIT):
            raise ImageInputError(
                f"image {str(path)!r} ({mode}) has samples outside the 16-bit range 0..65535"
            )
        array = (raw / _SIXTEEN_BIT).astype(np.float32)
    elif mode == "F":
        array = np.asarray(image, dtype=np.float32)
        if not np.isfinite(array).all() or array.min() < 0.0 or array.max() > 1.0:
            raise ImageInputError(f"float image {str(path)!r} must hold finite values in [0, 1]")
    else:
        raise ImageInputError(f"image {str(path)!r} has unsupported mode {mode!r}")
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=-1)
    return array


def image_size(path: "PathLike | bytes", max_pixels: int = DEFAULT_MAX_PIXELS) -> "tuple[int, int]":
    """``(width, height)`` of an image file (or its bytes) from its header, without decoding pixels; the same
    refusals as :func:`load_image` for what is not a single image within ``max_pixels``."""
    data = bytes(path) if isinstance(path, (bytes, bytearray)) else None
    with _open_checked(Path("<bytes>" if data is not None else path), max_pixels, data) as image:
        return image.size


def load_image(
    path: "PathLike | bytes", alpha: str = "drop", max_pixels: int = DEFAULT_MAX_PIXELS
) -> Tensor:
    """Read ``path`` (a file, or an image file's bytes) as a ``(3, H, W)`` float32 tensor in [0, 1] (see the
    module docstring for the rules)."""
    if alpha not in ALPHA_POLICIES:
        raise ValueError(f"alpha must be one of {ALPHA_POLICIES}, got {alpha!r}")
    data = bytes(path) if isinstance(path, (bytes, bytearray)) else None
    path = Path("<bytes>" if data is not None else path)
    image = _open_checked(path, max_pixels, data)
    try:
        with image:
            try:
                image.load()
                image = ImageOps.exif_transpose(image)
            except (OSError, SyntaxError, ValueError, EOFError) as err:
                raise ImageInputError(f"image {str(path)!r} is truncated or corrupt: {err}") from err
            if image.mode == "P":
                image = image.convert("RGBA" if "transparency" in image.info else "RGB")
            if image.mode in _ALPHA_MODES:
                image = _drop_alpha(image, path, alpha)
            if image.mode in _COLOUR_CONVERSIONS:
                image = image.convert("L" if image.mode == "1" else "RGB")
            array = _to_unit_array(image, path)
    finally:
        image.close()
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))


def output_format(path: PathLike) -> str:
    """The image format written for ``path``'s extension; refuses extensions we cannot honour."""
    suffix = Path(path).suffix.lower()
    if suffix not in OUTPUT_FORMATS:
        raise OutputPathError(
            f"cannot write {str(path)!r}: unsupported extension {suffix or '(none)'!r} "
            f"(use {', '.join(OUTPUT_FORMATS)})"
        )
    return OUTPUT_FORMATS[suffix][0]


def encode_image(image: Tensor, path: PathLike) -> bytes:
    """8-bit RGB bytes of ``image`` in the format ``path``'s extension names (PNG, lossless WebP, JPEG)."""
    output_format(path)
    if image.dim() == 4 and image.shape[0] == 1:
        image = image[0]
    if image.dim() != 3 or image.shape[0] != 3:
        raise ImageInputError(f"expected an RGB image shaped (3, H, W); got {tuple(image.shape)}")
    name, options = OUTPUT_FORMATS[Path(path).suffix.lower()]
    buffer = io.BytesIO()
    to_pil(image).save(buffer, format=name, **options)
    return buffer.getvalue()


def is_stream_target(path: Path) -> bool:
    """Whether ``path`` is a FIFO or a character device (``/dev/null``, a terminal): written through, as Unix
    tools do, never replaced by a regular file."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISCHR(mode)


def check_destination(path: Path, force: bool) -> None:
    """Refuse an output whose folder is missing, that is a folder or another special file, or that exists
    (unless ``force``); a FIFO or character device is accepted, to be written through."""
    if is_stream_target(path):
        return
    if not path.parent.is_dir():
        raise OutputPathError(f"cannot write {str(path)!r}: folder {str(path.parent)!r} does not exist")
    if path.is_dir():
        raise OutputPathError(f"cannot write {str(path)!r}: it is a folder")
    if path.exists() and not path.is_file():
        raise OutputPathError(f"cannot write {str(path)!r}: it is not a regular file (a socket or block device)")
    if path.exists() and not force:
        raise OutputExistsError(str(path))


def write_new_file(path: PathLike, data: bytes, force: bool = False) -> None:
    """Write ``data`` atomically (temp file + rename); an existing ``path`` is an error unless ``force``,
    also when another process creates it while we write. A FIFO or character device is opened and
    written through instead (never replaced)."""
    path = Path(path)
    check_destination(path, force)
    if is_stream_target(path):
        with open(path, "wb") as handle:
            handle.write(data)
        return
    try:
        atomic_write_bytes(path, data, overwrite=force)
    except FileExistsError:
        raise OutputExistsError(str(path)) from None


def to_pil(image: Tensor) -> Image.Image:
    """8-bit RGB PIL image of a ``(3, H, W)`` tensor in [0, 1] (values clamped, then rounded)."""
    array = image.detach().float().cpu().clamp(0, 1).mul(255).round().to(torch.uint8)
    return Image.fromarray(array.permute(1, 2, 0).contiguous().numpy())


def encode_png(image: Tensor) -> bytes:
    """8-bit RGB PNG bytes of a ``(3, H, W)`` or ``(1, 3, H, W)`` tensor in [0, 1] (values are clamped)."""
    return encode_image(image, "image.png")


def save_image(image: Tensor, path: PathLike, force: bool = False) -> None:
    """Write ``image`` as an 8-bit PNG at ``path``, atomically; never overwrites unless ``force``."""
    path = Path(path)
    check_destination(path, force)  # fail before the (cheap) encode, too
    write_new_file(path, encode_png(image), force=force)
