"""Bjøntegaard delta rate (VCEG-M33): average rate difference at equal quality, in percent.

The integration is the ``bjontegaard`` package's (FAU-LMS): log10(rate) as a function of PSNR,
fitted by a cubic polynomial (Bjøntegaard's original) or a monotone piecewise-cubic Hermite
interpolant (``pchip``, more stable with few or irregular points), integrated over the overlapping
PSNR range; BD-rate = (10^d - 1) · 100 for the mean log-rate difference ``d``. Negative means the
test codec needs fewer bits than the anchor. This module checks the input (the package assumes
sorted, valid curves) and returns ``nan`` rather than warning when the PSNR ranges do not overlap.
"""

from __future__ import annotations

import math
from typing import Sequence, Tuple

import bjontegaard
import numpy as np

METHODS = ("pchip", "cubic")


def _curve(rate: Sequence[float], quality: Sequence[float]) -> Tuple[np.ndarray, np.ndarray]:
    r = np.asarray(rate, dtype=np.float64)
    q = np.asarray(quality, dtype=np.float64)
    if r.shape != q.shape or r.ndim != 1:
        raise ValueError("rate and quality must be 1-d sequences of equal length")
    if np.any(~np.isfinite(r)) or np.any(~np.isfinite(q)) or np.any(r <= 0):
        raise ValueError("rates must be positive and finite, qualities finite")
    order = np.argsort(q)
    q, r = q[order], r[order]
    if np.any(np.diff(q) <= 0):
        raise ValueError("quality values must be distinct")
    return q, r


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
    if min(qa[-1], qt[-1]) <= max(qa[0], qt[0]):
        return math.nan
    return float(bjontegaard.bd_rate(ra, qa, rt, qt, method=method, require_matching_points=False, min_overlap=0))
