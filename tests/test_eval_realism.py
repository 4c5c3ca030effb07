"""Realism on small sets: KID/FID against torchmetrics, the bootstrap over images, the classifier
two-sample test on constructed cases (identical, blurred, noised), all on the seeded random extractor."""

import math

import pytest
import torch
import torch.nn.functional as F
from helpers import natural_image
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import poly_kernel as torchmetrics_poly_kernel

from multirealism.evaluation.patches import extract_patches
from multirealism.evaluation.realism import RandomTestExtractor, RealismMeter
from multirealism.evaluation.realism_stats import bootstrap_kid, c2st_accuracy, fid, kid

PATCH = 64


class _Identity(torch.nn.Module):
    num_features = 8

    def forward(self, x):
        return x


def _features(seed, n=30, shift=0.0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, 8, generator=generator, dtype=torch.float64) + shift


def test_kid_is_torchmetrics_kernel_with_the_paired_cross_term():
    real, fake = _features(0), _features(1, shift=0.3)
    m = real.shape[0]
    k_xx, k_yy, k_xy = (torchmetrics_poly_kernel(a, b) for a, b in ((real, real), (fake, fake), (real, fake)))
    within = (k_xx.sum() - k_xx.diag().sum() + k_yy.sum() - k_yy.diag().sum()) / (m * (m - 1))
    # torchmetrics' form (maximum_mean_discrepancy): cross term over all i, j
    unpaired = within - 2 * k_xy.sum() / m**2
    paired = within - 2 * (k_xy.sum() - k_xy.diag().sum()) / (m * (m - 1))
    assert kid(real, fake) == pytest.approx(float(paired), rel=1e-12)
    assert kid(real, fake) != pytest.approx(float(unpaired), rel=1e-6)
    assert kid(real, real) == pytest.approx(0.0, abs=1e-12)


def test_fid_matches_torchmetrics():
    real, fake = _features(2, n=20), _features(3, n=25, shift=0.5)
    metric = FrechetInceptionDistance(feature=_Identity()).set_dtype(torch.float64)
    metric.update(real, real=True)
    metric.update(fake, real=False)
    assert fid(real, fake) == pytest.approx(float(metric.compute()), rel=1e-6)


def _photos(count):
    """``count`` different 128 px crops of scikit-image's photographs (the 'images' of a small set)."""
    crops = []
    for name in ("astronaut", "coffee", "chelsea", "rocket"):
        big = natural_image(name, 256)
        crops += [big[:, r : r + 128, c : c + 128] for r in (0, 128) for c in (0, 128)]
    return crops[:count]


def _blur(x):
    return F.avg_pool2d(x.unsqueeze(0), 5, stride=1, padding=2, count_include_pad=False)[0]


def _noise(x):
    generator = torch.Generator().manual_seed(0)
    return (x + 0.15 * torch.randn(x.shape, generator=generator)).clamp(0, 1)


@pytest.fixture(scope="module")
def scores():
    meter = RealismMeter(RandomTestExtractor(), bootstrap=300)
    for index, photo in enumerate(_photos(12)):
        name = f"photo{index}"
        meter.add_reference(name, extract_patches(photo, PATCH))
        meter.add_settings(name, [(kind, extract_patches(change(photo), PATCH)) for kind, change in
                                  (("same", lambda x: x), ("blur", _blur), ("noise", _noise))])
    return meter.scores({"blur": "same", "noise": "same"})


def test_identical_sets_score_zero_and_chance(scores):
    same = scores["same"]
    assert same["patches"] == 12 * 5 and same["images"] == 12
    assert same["kid"] == pytest.approx(0.0, abs=1e-12)
    assert same["kid_lo"] == pytest.approx(0.0, abs=1e-12) and same["kid_hi"] == pytest.approx(0.0, abs=1e-12)
    assert same["c2st"] == pytest.approx(0.5)
    assert same["fid"] == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("kind", ["blur", "noise"])
def test_blurred_and_noised_sets_score_higher(scores, kind):
    changed = scores[kind]
    assert changed["kid"] > 0 and changed["kid_lo"] > 0  # the whole interval above identical sets' 0
    assert changed["kid_diff"] == pytest.approx(changed["kid"])  # against identical sets, whose KID is 0
    assert changed["kid_diff_lo"] > 0
    assert changed["c2st"] > 0.6  # chance is 0.5 ± 0.05 on these 120 held-out patches
    assert changed["fid"] > scores["same"]["fid"]


def test_bootstrap_interval_holds_the_estimate_and_narrows_with_more_images():
    extractor = RandomTestExtractor()
    widths = []
    for count in (4, 16):
        photos = _photos(count)
        real = [extractor(extract_patches(p, PATCH)).double() for p in photos]
        fake = [extractor(extract_patches(_blur(p), PATCH)).double() for p in photos]
        result = bootstrap_kid(real, {"blur": fake}, draws=400)["blur"]
        assert result["kid_lo"] <= result["kid"] <= result["kid_hi"]
        assert result["kid"] == pytest.approx(kid(torch.cat(real), torch.cat(fake)))
        widths.append(result["kid_hi"] - result["kid_lo"])
    assert widths[1] < widths[0]


def test_bootstrap_refuses_unpaired_sets_and_c2st_needs_two_images():
    real = [_features(0, n=4), _features(1, n=4)]
    with pytest.raises(ValueError, match="patch counts"):
        bootstrap_kid(real, {"x": [_features(2, n=4), _features(3, n=3)]})
    assert math.isnan(c2st_accuracy(real[:1], real[:1]))
