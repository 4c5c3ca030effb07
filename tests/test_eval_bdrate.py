"""Bjøntegaard delta rate on synthetic curves with known answers."""

import math

import numpy as np
import pytest

from multirealism.evaluation.bdrate import bd_rate

RATE = [0.1, 0.2, 0.4, 0.8, 1.6]
PSNR = [26.0, 28.5, 31.0, 33.2, 35.0]


@pytest.mark.parametrize("method", ["pchip", "cubic"])
def test_against_itself_is_zero(method):
    assert bd_rate(RATE, PSNR, RATE, PSNR, method) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("method", ["pchip", "cubic"])
def test_half_the_rate_is_minus_fifty_percent(method):
    half = list(np.asarray(RATE) / 2)
    assert bd_rate(RATE, PSNR, half, PSNR, method) == pytest.approx(-50.0, abs=1e-6)
    assert bd_rate(half, PSNR, RATE, PSNR, method) == pytest.approx(100.0, abs=1e-6)


def test_disjoint_quality_ranges_give_nan_and_bad_input_is_refused():
    assert math.isnan(bd_rate(RATE, PSNR, RATE, [p + 20 for p in PSNR]))
    with pytest.raises(ValueError, match="at least 4"):
        bd_rate(RATE[:3], PSNR[:3], RATE[:3], PSNR[:3], "cubic")
    with pytest.raises(ValueError, match="positive"):
        bd_rate([0.0, 1.0], [20.0, 30.0], RATE, PSNR)


# Curve pairs (anchor rate, anchor PSNR, test rate, test PSNR): points in any order, unequal counts,
# partial PSNR overlap, a test curve that crosses the anchor.
CURVE_PAIRS = [
    (RATE, PSNR, [0.08, 0.17, 0.35, 0.7, 1.5], [26.3, 28.9, 31.4, 33.9, 35.6]),
    (RATE, PSNR, [0.3, 0.12, 0.6, 1.1], [30.1, 27.0, 32.6, 34.4]),
    ([0.25, 0.5, 1.0, 2.0], [29.0, 31.0, 33.5, 36.0], [0.1, 0.3, 0.9, 1.4, 3.0], [25.0, 29.5, 32.0, 34.0, 37.5]),
    ([0.05, 0.1, 0.2, 0.4, 0.8, 1.6], [24.0, 26.5, 29.0, 31.0, 32.5, 33.4],
     [0.06, 0.11, 0.19, 0.35, 0.9], [25.0, 27.0, 29.2, 31.8, 34.0]),
]


def _reference(anchor_rate, anchor_psnr, test_rate, test_psnr, method):
    """VCEG-M33 written out with scipy/numpy: what the bjontegaard package must reproduce."""
    from scipy.interpolate import PchipInterpolator

    def integral(rate, psnr, low, high):
        order = np.argsort(psnr)
        q, log_r = np.asarray(psnr)[order], np.log10(np.asarray(rate)[order])
        if method == "pchip":
            return PchipInterpolator(q, log_r).integrate(low, high)
        poly = np.polyint(np.polyfit(q, log_r, 3))
        return np.polyval(poly, high) - np.polyval(poly, low)

    low, high = max(min(anchor_psnr), min(test_psnr)), min(max(anchor_psnr), max(test_psnr))
    diff = (integral(test_rate, test_psnr, low, high) - integral(anchor_rate, anchor_psnr, low, high)) / (high - low)
    return (10.0**diff - 1.0) * 100.0


@pytest.mark.parametrize("method", ["pchip", "cubic"])
@pytest.mark.parametrize("pair", range(len(CURVE_PAIRS)))
def test_matches_the_written_out_definition(method, pair):
    ours = bd_rate(*CURVE_PAIRS[pair], method)
    assert math.isfinite(ours) and abs(ours) > 1
    assert ours == pytest.approx(_reference(*CURVE_PAIRS[pair], method), abs=1e-9)


def test_linear_log_rate_curves_have_the_closed_form_answer():
    # log10 r = 0.1 q - 3 (anchor) and 0.12 q - 3.7 (test) on [30, 40]: mean difference 0.02 * 35 - 0.7 = 0
    q = np.linspace(30, 40, 6)
    anchor, test = 10 ** (0.1 * q - 3), 10 ** (0.12 * q - 3.7)
    assert bd_rate(anchor, q, test, q, "pchip") == pytest.approx(0.0, abs=1e-9)
    assert bd_rate(anchor, q, test * 10**0.05, q, "cubic") == pytest.approx((10**0.05 - 1) * 100, abs=1e-9)
