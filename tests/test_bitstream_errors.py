"""Bad bytes raise the library's own errors, never garbage."""

from __future__ import annotations

import pytest
import torch

from helpers import make_tiny_codec
from multirealism import BitstreamError, ModelMismatchError, bitstream_format


@pytest.fixture(scope="module")
def codec_and_data():
    codec = make_tiny_codec("charm")
    torch.manual_seed(0)
    return codec, codec.compress(torch.rand(1, 3, 40, 40))


def test_truncated_bytes(codec_and_data) -> None:
    codec, data = codec_and_data
    for cut in (0, 3, 10, bitstream_format.HEADER_BYTES, len(data) // 2, len(data) - 1):
        with pytest.raises(BitstreamError):
            codec.decompress(data[:cut])


def test_flipped_bits(codec_and_data) -> None:
    codec, data = codec_and_data
    for position in range(5, len(data), max(1, len(data) // 15)):
        corrupted = bytearray(data)
        corrupted[position] ^= 0x10
        with pytest.raises(BitstreamError):
            codec.decompress(bytes(corrupted))


def test_wrong_magic(codec_and_data) -> None:
    codec, data = codec_and_data
    with pytest.raises(BitstreamError, match="magic"):
        codec.decompress(b"JUNK" + data[4:])


def test_newer_format_version(codec_and_data) -> None:
    codec, data = codec_and_data
    newer = data[:4] + bytes([bitstream_format.FORMAT_VERSION + 1]) + data[5:]
    with pytest.raises(BitstreamError, match="format version"):
        codec.decompress(newer)


def test_other_model(codec_and_data) -> None:
    _, data = codec_and_data
    other = make_tiny_codec("charm", seed=1)
    with pytest.raises(ModelMismatchError, match="written by model"):
        other.decompress(data)


def test_trailing_garbage(codec_and_data) -> None:
    codec, data = codec_and_data
    with pytest.raises(BitstreamError):
        codec.decompress(data + b"\x00")


def test_header_round_trip(codec_and_data) -> None:
    codec, data = codec_and_data
    stream = codec.read_header(data)
    assert (stream.num_images, stream.height, stream.width) == (1, 40, 40)
    assert stream.latent_shape == (1, 1)
    assert len(stream.strings) == codec.entropy_model.num_streams
    assert bitstream_format.pack(stream) == data
