"""Weight λ of the rate term.

HiFiC (Mentzer et al. 2020, Sec. 4.1) controls the bitrate with two weights: λ_a while the batch's
estimated bitrate is above a target r_t, and a much smaller λ_b = 2^-6 below it, so models land
near the target whatever the distortion and realism terms do. The alternative is a fixed λ.
"""

from __future__ import annotations

from typing import Union

import torch
from torch import Tensor


class RateWeight:
    """Maps the batch's estimated bits per pixel to the rate weight λ."""

    def __call__(self, bpp: Tensor) -> Union[float, Tensor]:
        raise NotImplementedError

    def config(self) -> dict:
        """Plain-data description, for checkpoints and logs."""
        return {"type": type(self).__name__, **vars(self)}


class FixedLambda(RateWeight):
    """λ constant: trades rate against distortion without a target (the classic R-D Lagrangian)."""

    def __init__(self, lmbda: float = 1.0) -> None:
        if lmbda < 0:
            raise ValueError(f"lmbda must be non-negative, got {lmbda}")
        self.lmbda = float(lmbda)

    def __call__(self, bpp: Tensor) -> float:
        return self.lmbda


class HiFiCLambdaSchedule(RateWeight):
    """λ = λ_a if mean bpp > ``target_bpp`` else λ_b (HiFiC; λ_b = 2^-6 there).

    HiFiC pairs target 0.14/0.30/0.45 bpp with λ_a = 2^1/2^0/2^-1 under the same distortion
    scale as here (k_M = 0.075·2^-5 on [0, 255] ≈ 150 on [0, 1]); defaults are its 0.30 bpp model.
    """

    def __init__(self, target_bpp: float = 0.3, lambda_a: float = 1.0, lambda_b: float = 2.0**-6) -> None:
        if target_bpp <= 0 or lambda_a < 0 or lambda_b < 0:
            raise ValueError("target_bpp must be positive and the λ values non-negative")
        self.target_bpp = float(target_bpp)
        self.lambda_a = float(lambda_a)
        self.lambda_b = float(lambda_b)

    def __call__(self, bpp: Tensor) -> Tensor:
        """λ as a 0-d tensor on ``bpp``'s device: no host synchronisation in the training step."""
        above = bpp.detach().float().mean() > self.target_bpp
        return torch.where(above, self.lambda_a, self.lambda_b)
