"""The ``.mrc`` container: a versioned, checksummed envelope around the entropy coder's strings.

Layout (big-endian)::

    magic      4s   b"MRIC"
    version    B    FORMAT_VERSION
    model      8s   fingerprint of the model that wrote the file
    images     H    number of images (all of one size)
    height     I    original image height in pixels
    width      I    original image width in pixels
    z_height   H    hyper-latent height  } checked by the codec against height/width
    z_width    H    hyper-latent width   }
    streams    B    number of coded streams (entropy-model specific)
    quality    f    rate level the encoder used (float32; 0 for a codec without rate control)
    payload         for each stream, for each image: LEB128 length, then that many bytes
    crc32      I    CRC-32 of everything before it

Parsing checks the byte count, the image count and the pixel count against limits before anything
is allocated and never reads past the end, so malformed input ends in :class:`BitstreamError`, not a
crash, a hang or a huge alloc. Callers can refuse a file by its size before reading it by comparing
it with ``DEFAULT_MAX_BITSTREAM_BYTES`` (or the codec's ``max_bitstream_bytes``).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from typing import List, Tuple

from multirealism.errors import BitstreamError

MAGIC = b"MRIC"
#: 2 added the quality field (rate control); version 1 streams are refused
FORMAT_VERSION = 2
FINGERPRINT_BYTES = 8
_HEADER = struct.Struct(">4sB8sHIIHHBf")
_CRC = struct.Struct(">I")
HEADER_BYTES = _HEADER.size + _CRC.size
#: default refusal threshold for images × height × width declared in a header
DEFAULT_MAX_PIXELS = 64 * 2**20
#: default refusal threshold for the number of images in one bitstream
DEFAULT_MAX_IMAGES = 256
#: default refusal threshold for a whole bitstream's size in bytes (checked before parsing)
DEFAULT_MAX_BITSTREAM_BYTES = 256 * 2**20
MAX_STREAMS = 64
MAX_QUALITY = 255.0


def pixel_limit_message(what: str, pixels: int, max_pixels: int) -> str:
    """The one wording for every refusal by pixel count (inputs, headers, padded decode sizes)."""
    return f"{what} has {pixels} pixels, over the limit of max_pixels={max_pixels}"


@dataclass(frozen=True)
class Bitstream:
    """Decoded container fields; ``strings[s][i]`` is stream ``s`` of image ``i``."""

    fingerprint: bytes
    num_images: int
    height: int
    width: int
    latent_shape: Tuple[int, int]
    strings: List[List[bytes]]
    version: int = FORMAT_VERSION
    quality: float = 0.0

    @property
    def num_pixels(self) -> int:
        return self.num_images * self.height * self.width


def as_header_quality(quality: float) -> float:
    """``quality`` rounded to the header's float32, so encoder and decoder use the same value."""
    (value,) = struct.unpack(">f", struct.pack(">f", float(quality)))
    return value


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _read_varint(data: bytes, pos: int, end: int) -> Tuple[int, int]:
    value, shift = 0, 0
    while True:
        if pos >= end:
            raise BitstreamError("bitstream is truncated inside a length field")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 35:
            raise BitstreamError("bitstream has an over-long length field")


def pack(stream: Bitstream) -> bytes:
    """Serialise a :class:`Bitstream`."""
    if len(stream.fingerprint) != FINGERPRINT_BYTES:
        raise ValueError(f"fingerprint must be {FINGERPRINT_BYTES} bytes")
    if any(len(s) != stream.num_images for s in stream.strings):
        raise ValueError("every stream needs one string per image")
    header = _HEADER.pack(
        MAGIC,
        FORMAT_VERSION,
        stream.fingerprint,
        stream.num_images,
        stream.height,
        stream.width,
        *stream.latent_shape,
        len(stream.strings),
        stream.quality,
    )
    body = bytearray(header)
    for per_image in stream.strings:
        for s in per_image:
            body += _varint(len(s))
            body += s
    body += _CRC.pack(zlib.crc32(body))
    return bytes(body)


def unpack(
    data: bytes,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_images: int = DEFAULT_MAX_IMAGES,
    max_bitstream_bytes: int = DEFAULT_MAX_BITSTREAM_BYTES,
) -> Bitstream:
    """Parse and validate bytes written by :func:`pack`; raises :class:`BitstreamError`."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise BitstreamError(f"expected bytes, got {type(data).__name__}")
    if len(data) > max_bitstream_bytes:
        raise BitstreamError(
            f"bitstream is {len(data)} bytes, over the limit of max_bitstream_bytes={max_bitstream_bytes}"
        )
    data = bytes(data)
    if len(data) < 4 or data[:4] != MAGIC:
        raise BitstreamError("not a multirealism bitstream (bad magic bytes)")
    if len(data) < 5:
        raise BitstreamError("bitstream is truncated in its header")
    if data[4] != FORMAT_VERSION:
        raise BitstreamError(
            f"bitstream format version {data[4]} is not supported (this library reads version {FORMAT_VERSION})"
        )
    if len(data) < HEADER_BYTES:
        raise BitstreamError("bitstream is truncated in its header")
    _, version, fingerprint, images, height, width, zh, zw, streams, quality = _HEADER.unpack_from(data)
    if images < 1 or height < 1 or width < 1:
        raise BitstreamError(f"bitstream declares an empty image ({images} x {height} x {width})")
    if images > max_images:
        raise BitstreamError(f"bitstream declares {images} images, over the limit of max_images={max_images}")
    if images * height * width > max_pixels:
        raise BitstreamError(pixel_limit_message("bitstream", images * height * width, max_pixels))
    if not 1 <= streams <= MAX_STREAMS:
        raise BitstreamError(f"bitstream declares {streams} streams")
    if not 0 <= quality <= MAX_QUALITY:  # also refuses NaN
        raise BitstreamError(f"bitstream declares quality {quality}, outside [0, {MAX_QUALITY}]")
    end = len(data) - _CRC.size
    (crc,) = _CRC.unpack_from(data, end)
    if zlib.crc32(data[:end]) != crc:
        raise BitstreamError("bitstream checksum mismatch: the bytes are corrupted or truncated")
    pos = _HEADER.size
    strings: List[List[bytes]] = []
    for _ in range(streams):
        per_image = []
        for _ in range(images):
            length, pos = _read_varint(data, pos, end)
            if pos + length > end:
                raise BitstreamError("bitstream is truncated inside a coded string")
            per_image.append(data[pos : pos + length])
            pos += length
        strings.append(per_image)
    if pos != end:
        raise BitstreamError(f"bitstream has {end - pos} unexpected trailing bytes")
    return Bitstream(fingerprint, images, height, width, (zh, zw), strings, version, quality)
