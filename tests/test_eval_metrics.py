"""PSNR/MS-SSIM/LPIPS wrappers: closed forms, the identical-pair rule and the small-image rule."""

import math

import pytest
import torch

from multirealism.errors import ImageInputError
from multirealism.evaluation.metrics import LPIPSMetric, ms_ssim, ms_ssim_scales, psnr


def _levels(shape, low, high, seed):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(low, high + 1, shape, generator=generator)


def test_psnr_of_identical_pair_is_infinite():
    x = _levels((3, 32, 48), 0, 255, 0).float() / 255
    assert psnr(x, x.clone()) == math.inf


def test_psnr_of_noisy_pair_matches_closed_form():
    levels = _levels((3, 40, 56), 10, 245, 1)
    noise = _levels((3, 40, 56), -6, 6, 2)
    x, y = levels.float() / 255, (levels + noise).float() / 255
    mse = float(((y - x) ** 2).double().mean())
    assert psnr(y, x) == pytest.approx(10 * math.log10(1.0 / mse), abs=1e-6)


def test_psnr_rounds_to_8_bits_first():
    x = _levels((3, 16, 16), 0, 255, 3).float() / 255
    assert psnr(x + 0.4 / 255, x) == math.inf  # sub-level error vanishes after rounding


def test_shape_mismatch_is_refused():
    with pytest.raises(ImageInputError, match="shapes differ"):
        psnr(torch.zeros(3, 8, 8), torch.zeros(3, 8, 9))


SCALES_BY_SIDE = [(512, 5), (176, 5), (175, 4), (99, 4), (98, 3), (44, 3), (43, 2), (22, 2), (21, 1), (11, 1), (10, 0)]


@pytest.mark.parametrize("side, scales", SCALES_BY_SIDE)
def test_ms_ssim_scale_rule(side, scales):
    assert ms_ssim_scales(side, 1000) == scales


def test_ms_ssim_identical_is_one_and_small_images_still_score(astronaut):
    assert ms_ssim(astronaut, astronaut) == pytest.approx(1.0, abs=1e-5)
    small = astronaut[:, :64, :80]
    noisy = (small + 0.05 * torch.randn_like(small)).clamp(0, 1)
    assert 0.0 < ms_ssim(noisy, small) < 1.0
    assert math.isnan(ms_ssim(small[:, :8, :8], small[:, :8, :8]))


def test_lpips_random_backbone_is_labelled_and_zero_on_identical(astronaut):
    with pytest.warns(UserWarning, match="untrained"):
        metric = LPIPSMetric(random_backbone=True)
    assert "not comparable" in metric.label
    crop = astronaut[:, :64, :64]
    assert metric(crop, crop) == pytest.approx(0.0, abs=1e-6)
    assert metric((crop * 0.5), crop) > 0.0
