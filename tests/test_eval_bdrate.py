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
