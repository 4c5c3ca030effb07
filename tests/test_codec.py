"""MultiRealismCodec: round trips, β after compression, spatial β, persistence, bad input."""

from __future__ import annotations

import pytest
import torch

from helpers import make_tiny_codec
from multirealism import ImageInputError, MultiRealismCodec

SIZES = [(37, 70), (64, 64), (17, 129)]


@pytest.mark.parametrize("entropy_model", ["hyperprior", "charm"])
@pytest.mark.parametrize("size", SIZES)
def test_round_trip_matches_eval_forward(entropy_model: str, size) -> None:
    codec = make_tiny_codec(entropy_model)
    torch.manual_seed(1)
    x = torch.rand(2, 3, *size)
    data = codec.compress(x)
    betas = [0.0, codec.beta_max / 2, codec.beta_max]
    decoded = codec.decompress(data, beta=betas)
    assert len(decoded) == len(betas)
    for beta, image in zip(betas, decoded):
        assert image.shape == x.shape
        expected = codec(x, beta).x_hat.clamp(0, 1)
        torch.testing.assert_close(image, expected, atol=1e-5, rtol=0)


def test_multi_beta_decode_equals_single_decodes() -> None:
    codec = make_tiny_codec("charm")
    x = torch.rand(1, 3, 48, 40)
    data = codec.compress(x)
    together = codec.decompress(data, beta=[0.0, 5.12])
    for beta, image in zip([0.0, 5.12], together):
        torch.testing.assert_close(image, codec.decompress(data, beta=beta))


def test_beta_changes_reconstruction_not_bytes() -> None:
    codec = make_tiny_codec()
    x = torch.rand(1, 3, 64, 64)
    data = codec.compress(x)
    assert codec.compress(x) == data
    low, high = codec.decompress(data, beta=[0.0, codec.beta_max])
    assert (low - high).abs().max() > 1e-4
    # the rate is a property of the latent, not of β
    torch.testing.assert_close(codec(x, 0.0).bpp, codec(x, codec.beta_max).bpp)
    # ... and estimate_bpp gives it without running the generator
    torch.testing.assert_close(codec.estimate_bpp(x), codec(x, 0.0).bpp)


def test_constant_beta_map_equals_scalar_and_per_image_beta() -> None:
    codec = make_tiny_codec()
    x = torch.rand(2, 3, 40, 50)
    data = codec.compress(x)
    scalar = codec.decompress(data, beta=1.7)
    constant_map = codec.decompress(data, beta=torch.full((2, 1, 40, 50), 1.7))
    torch.testing.assert_close(constant_map, scalar, atol=1e-5, rtol=0)
    per_image = codec.decompress(data, beta=torch.tensor([0.0, 5.12]))
    torch.testing.assert_close(per_image[:1], codec.decompress(data, beta=0.0)[:1])
    torch.testing.assert_close(per_image[1:], codec.decompress(data, beta=5.12)[1:])


def test_spatial_beta_map_is_local() -> None:
    """A map that is β_max on the right half changes the right half far more than the left."""
    codec = make_tiny_codec()
    x = torch.rand(1, 3, 64, 256)
    data = codec.compress(x)
    beta_map = torch.zeros(1, 1, 64, 256)
    beta_map[..., 128:] = codec.beta_max
    base = codec.decompress(data, beta=0.0)
    mixed = codec.decompress(data, beta=beta_map)
    change = (mixed - base).abs()
    assert change[..., 160:].mean() > 10 * change[..., :96].mean()


def test_table_conditioner_accepts_only_its_betas() -> None:
    codec = make_tiny_codec(conditioner="table")
    x = torch.rand(1, 3, 32, 32)
    data = codec.compress(x)
    outputs = codec.decompress(data, beta=[0.0, 1.28, 5.12])
    assert (outputs[0] - outputs[2]).abs().max() > 0
    with pytest.raises(ValueError, match="only knows beta"):
        codec.decompress(data, beta=1.0)


def test_beta_outside_training_range_is_refused() -> None:
    codec = make_tiny_codec()
    data = codec.compress(torch.rand(1, 3, 32, 32))
    with pytest.raises(ValueError, match=r"beta must lie in \[0, 5.12\]"):
        codec.decompress(data, beta=6.0)
    with pytest.raises(ValueError, match="beta map"):
        codec.decompress(data, beta=torch.zeros(1, 1, 16, 16))


@pytest.mark.parametrize(
    "bad, message",
    [
        (torch.rand(1, 4, 32, 32), "RGB"),
        (torch.rand(32, 32), "RGB"),
        (torch.rand(1, 3, 32, 32) * 2, r"\[0, 1\]"),
        (torch.full((1, 3, 8, 8), float("nan")), "finite"),
        ((torch.rand(1, 3, 8, 8) * 255).to(torch.uint8), "float"),
    ],
)
def test_bad_images_are_refused(bad: torch.Tensor, message: str) -> None:
    with pytest.raises(ImageInputError, match=message):
        make_tiny_codec().compress(bad)


def test_pixel_limit_applies_to_compress() -> None:
    codec = make_tiny_codec()
    codec.max_pixels = 100
    with pytest.raises(ImageInputError, match="max_pixels"):
        codec.compress(torch.rand(1, 3, 16, 16))


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_save_and_load_round_trip(tmp_path, suffix: str) -> None:
    codec = make_tiny_codec("charm", seed=3)
    x = torch.rand(1, 3, 45, 33)
    data = codec.compress(x)
    path = tmp_path / f"codec{suffix}"
    codec.save(path)
    loaded = MultiRealismCodec.from_checkpoint(path)
    assert loaded.fingerprint == codec.fingerprint
    assert loaded.compress(x) == data
    torch.testing.assert_close(loaded.decompress(data, beta=2.0), codec.decompress(data, beta=2.0))


def test_fingerprint_tracks_weights() -> None:
    codec = make_tiny_codec()
    before = codec.fingerprint
    codec.train()
    with torch.no_grad():
        codec.generator.out.bias.add_(0.1)
    codec.eval()
    assert codec.fingerprint != before


def test_update_inside_inference_mode_leaves_usable_tables() -> None:
    codec = make_tiny_codec()
    with torch.inference_mode():
        codec.update(force=True)
        data = codec.compress(torch.rand(1, 3, 32, 32))
    assert codec.decompress(data, beta=1.0).shape == (1, 3, 32, 32)
    assert codec.compress(torch.rand(1, 3, 32, 32))
