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


@pytest.mark.parametrize("method", ["pchip", "cubic"])
@pytest.mark.parametrize("pair", range(len(CURVE_PAIRS)))
def test_agrees_with_the_bjontegaard_package(method, pair):
    bjontegaard = pytest.importorskip("bjontegaard")
    anchor_rate, anchor_psnr, test_rate, test_psnr = CURVE_PAIRS[pair]
    ours = bd_rate(anchor_rate, anchor_psnr, test_rate, test_psnr, method)
    a = np.argsort(anchor_psnr)
    t = np.argsort(test_psnr)  # the package expects monotone curves
    theirs = bjontegaard.bd_rate(np.asarray(anchor_rate)[a], np.asarray(anchor_psnr)[a], np.asarray(test_rate)[t],
                                 np.asarray(test_psnr)[t], method=method, require_matching_points=False,
                                 min_overlap=0)
    print(f"pair {pair} {method}: ours {ours:+.10f} %  bjontegaard {theirs:+.10f} %")
    assert math.isfinite(ours) and abs(ours) > 1
    assert ours == pytest.approx(theirs, abs=1e-9)
