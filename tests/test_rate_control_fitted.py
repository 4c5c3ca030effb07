"""The committed fitted variable-rate codec (``tests/data/make_trained_rate_control.py``): one
checkpoint, three rate levels, on natural 256x256 images it was not fitted on."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from compact_codec import load_compact
from helpers import natural_image
from multirealism import bitstream_format
from test_rate import framing_bytes

MODEL = Path(__file__).parent / "data" / "fitted_tiny_rate_control.safetensors.gz"
IMAGES = ("coffee", "chelsea", "rocket")
QUALITIES = (0.0, 0.5, 1.0, 1.5, 2.0)


@pytest.fixture(scope="module")
def codec():
    return load_compact(MODEL)


@pytest.fixture(scope="module")
def coded(codec):
    """{image: {q: (bitstream, eval-forward output)}}."""
    out = {}
    for name in IMAGES:
        x = natural_image(name, 256)
        with torch.no_grad():
            out[name] = {q: (codec.compress(x, quality=q), codec(x, quality=q)) for q in QUALITIES}
    return out


def psnr(x_hat: torch.Tensor, x: torch.Tensor) -> float:
    return float(-10 * torch.log10(((x_hat.clamp(0, 1) - x) ** 2).mean()))


def test_the_fitted_codec_has_three_levels(codec):
    assert codec.num_levels == 3 and codec.config()["rate_control"]["name"] == "gain"


@pytest.mark.parametrize("image", IMAGES)
def test_bpp_strictly_increases_with_quality(coded, image):
    sizes = [len(coded[image][q][0]) for q in QUALITIES]
    assert sizes == sorted(set(sizes)), sizes
    assert sizes[-1] > 1.5 * sizes[0], "the levels should span a real rate range"


@pytest.mark.parametrize("image", ["chelsea", "rocket"])
def test_fractional_quality_lands_between_its_neighbours(coded, image):
    x = natural_image(image, 256)
    for low, mid, high in ((0.0, 0.5, 1.0), (1.0, 1.5, 2.0)):
        sizes = [len(coded[image][q][0]) for q in (low, mid, high)]
        quality = [psnr(coded[image][q][1].x_hat, x) for q in (low, mid, high)]
        assert sizes[0] < sizes[1] < sizes[2]
        assert quality[0] < quality[1] < quality[2], quality


@pytest.mark.parametrize("image", IMAGES)
def test_round_trip_equals_eval_forward_at_every_level(codec, coded, image):
    for q in QUALITIES:
        data, out = coded[image][q]
        assert bitstream_format.unpack(data).quality == q
        assert torch.allclose(codec.decompress(data), out.x_hat.clamp(0, 1), atol=1e-5)


@pytest.mark.parametrize("image", IMAGES)
def test_coded_bytes_match_the_likelihood_estimate_at_every_level(coded, image):
    for q in QUALITIES:
        data, out = coded[image][q]
        estimated_bits = float(out.bpp) * 256 * 256
        coded_bits = 8 * (len(data) - framing_bytes(bitstream_format.unpack(data)))
        assert estimated_bits > 8000
        assert abs(coded_bits - estimated_bits) <= 0.02 * estimated_bits, (q, coded_bits, estimated_bits)
