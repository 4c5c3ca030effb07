"""Wasserstein distortion: zero on identical images, blind to a texture's phase at large σ, not to blur."""

import pytest
import torch
from helpers import natural_image
from torch.nn import functional as F

from multirealism.training.perceptual import build_perceptual
from multirealism.training.wasserstein import WassersteinDistortion, statistics_distance

pytest.importorskip("stlpips_pytorch")


@pytest.fixture(scope="module")
def distortion():
    return build_perceptual("wasserstein-vgg")


def _texture(seed: int, size: int = 64) -> torch.Tensor:
    """A sample of one stationary texture: smoothed Gaussian noise around mid-grey, (1, 3, size, size)."""
    noise = torch.randn(1, 3, size + 4, size + 4, generator=torch.Generator().manual_seed(seed))
    return (0.5 + 0.25 * F.avg_pool2d(noise, 3, 1)[..., :size, :size]).clamp(0, 1)


def test_built_by_name_frozen_and_labelled(distortion):
    assert isinstance(distortion, WassersteinDistortion)
    assert distortion.key == "wasserstein" and distortion.label.startswith("Wasserstein distortion")
    assert not any(p.requires_grad for p in distortion.parameters())


def test_zero_on_identical_images(distortion):
    image = natural_image("coffee", 64).unsqueeze(0)
    assert float(distortion(image, image)) == pytest.approx(0.0, abs=1e-7)


def test_another_sample_of_a_texture_is_close_at_large_sigma_and_far_pointwise():
    a, b = _texture(0), _texture(1)
    flat = torch.full_like(a, 0.5)  # the texture's mean: what a blurring decoder gives
    for sigma, other_closer in ((0.0, False), (3.0, True)):
        to_other = float(statistics_distance(a, b, sigma).mean())
        to_flat = float(statistics_distance(a, flat, sigma).mean())
        assert (to_other < to_flat) == other_closer, (sigma, to_other, to_flat)
    # at σ = 8 px a second sample is several times closer than the blur (4.4x here; pointwise it is farther)
    assert float(statistics_distance(a, b, 3.0).mean()) * 3 < float(statistics_distance(a, flat, 3.0).mean())


def test_fractional_sigma_lies_between_its_neighbours():
    a, b = _texture(2), _texture(3)
    low, mid, high = (float(statistics_distance(a, b, s).mean()) for s in (2.0, 2.5, 3.0))
    assert min(low, high) <= mid <= max(low, high)


def test_blur_costs_more_than_a_new_sample_of_the_texture(distortion):
    a, b = _texture(4), _texture(5)
    blurred = F.avg_pool2d(F.pad(a, (2, 2, 2, 2), mode="reflect"), 5, 1)
    assert float(distortion(b, a)) < float(distortion(blurred, a))


def test_gradients_reach_the_input_and_spatial_map_has_image_size(distortion):
    image = natural_image("astronaut", 48).unsqueeze(0)
    x_hat = (image + 0.1 * torch.randn_like(image)).clamp(0, 1).requires_grad_(True)
    distortion(x_hat, image).sum().backward()
    assert x_hat.grad is not None and torch.isfinite(x_hat.grad).all() and x_hat.grad.abs().sum() > 0
    spatial = distortion(x_hat.detach(), image, spatial=True)
    assert spatial.shape == (1, 1, 48, 48) and (spatial >= 0).all()


def test_refuses_bad_settings():
    with pytest.raises(ValueError, match="layers must be 0 to 5"):
        WassersteinDistortion(layers=6)
    with pytest.raises(ValueError, match="log2_sigma must be a finite number >= 0"):
        WassersteinDistortion(log2_sigma=-1.0)
