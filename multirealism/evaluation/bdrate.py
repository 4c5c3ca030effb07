"""Bjøntegaard delta rate (VCEG-M33): average rate difference at equal quality, in percent.

log10(rate) is fitted as a function of PSNR for both curves — a cubic polynomial (Bjøntegaard's
original) or a monotone piecewise-cubic Hermite interpolant (``pchip``, the variant used by recent
codec comparisons, more stable with few or irregular points) — and the difference of the two
integrals over the overlapping PSNR range gives the mean log-rate difference ``d``;
BD-rate = (10^d - 1) · 100. Negative means the test codec needs fewer bits than the anchor.
"""

from __future__ import annotations

import math
from typing import Sequence, Tuple

import numpy as np
from scipy.interpolate import PchipInterpolator

METHODS = ("pchip", "cubic")


def _curve(rate: Sequence[float], quality: Sequence[float]) -> Tuple[np.ndarray, np.ndarray]:
    r = np.asarray(rate, dtype=np.float64)
    q = np.asarray(quality, dtype=np.float64)
    if r.shape != q.shape or r.ndim != 1:
        raise ValueError("rate and quality must be 1-d sequences of equal length")
    if np.any(~np.isfinite(r)) or np.any(~np.isfinite(q)) or np.any(r <= 0):
        raise ValueError("rates must be positive and finite, qualities finite")
    order = np.argsort(q)
    q, log_r = q[order], np.log10(r[order])
    if np.any(np.diff(q) <= 0):
        raise ValueError("quality values must be distinct")
    return q, log_r


def _integral(q: np.ndarray, log_r: np.ndarray, low: float, high: float, method: str) -> float:
    if method == "pchip":
        return float(PchipInterpolator(q, log_r).integrate(low, high))
    poly = np.polyint(np.polyfit(q, log_r, 3))
    return float(np.polyval(poly, high) - np.polyval(poly, low))


def bd_rate(
    anchor_rate: Sequence[float],
    anchor_psnr: Sequence[float],
    test_rate: Sequence[float],
    test_psnr: Sequence[float],
    method: str = "pchip",
) -> float:
    """BD-rate of ``test`` against ``anchor`` in percent; ``nan`` when the PSNR ranges do not overlap.

    Needs at least 2 points per curve for ``pchip`` and 4 for ``cubic``.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    qa, ra = _curve(anchor_rate, anchor_psnr)
    qt, rt = _curve(test_rate, test_psnr)
    needed = 2 if method == "pchip" else 4
    if min(len(qa), len(qt)) < needed:
        raise ValueError(f"BD-rate ({method}) needs at least {needed} points per curve")
    low, high = max(qa[0], qt[0]), min(qa[-1], qt[-1])
    if high <= low:
        return math.nan
    diff = (_integral(qt, rt, low, high, method) - _integral(qa, ra, low, high, method)) / (high - low)
    return (10.0**diff - 1.0) * 100.0
