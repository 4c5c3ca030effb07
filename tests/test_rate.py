"""Real bytes against the likelihood estimate, on natural 256x256 images and fitted tiny codecs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from compact_codec import load_compact
from helpers import natural_image
from multirealism import bitstream_format

FITTED = Path(__file__).parent / "data"
RANS_FLUSH_BYTES = 4  # compressai's rANS coder ends each string with its 32-bit state


def framing_bytes(stream: bitstream_format.Bitstream) -> int:
    """Bytes that are not coded symbols: the fixed header and CRC, each string's varint length
    and its rANS flush."""
    strings = [s for per_image in stream.strings for s in per_image]
    varints = sum(len(bitstream_format._varint(len(s))) for s in strings)
    return bitstream_format.HEADER_BYTES + varints + RANS_FLUSH_BYTES * len(strings)


@pytest.mark.parametrize("entropy_model", ["hyperprior", "charm"])
@pytest.mark.parametrize("image", ["astronaut", "coffee", "chelsea"])
def test_bytes_match_likelihood_estimate(entropy_model: str, image: str) -> None:
    codec = load_compact(FITTED / f"fitted_tiny_{entropy_model}.safetensors.gz")
    x = natural_image(image, 256)
    data = codec.compress(x)
    with torch.no_grad():
        estimated_bits = float(codec(x).bpp) * 256 * 256
    coded_bits = 8 * (len(data) - framing_bytes(bitstream_format.unpack(data)))
    assert estimated_bits > 8000, "the fitted codec should spend a realistic number of bits"
    assert abs(coded_bits - estimated_bits) <= 0.02 * estimated_bits
    # and bpp as every tool reports it: counted from the whole file
    assert 8 * len(data) / (256 * 256) == pytest.approx(
        (estimated_bits + 8 * framing_bytes(bitstream_format.unpack(data))) / 65536, rel=0.02
    )
