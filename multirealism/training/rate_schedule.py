"""Weight λ of the rate term.

HiFiC (Mentzer et al. 2020, Sec. 4.1) controls the bitrate with two weights: λ_a while the batch's
estimated bitrate is above a target r_t, and a much smaller λ_b = 2^-6 below it, so models land
near the target whatever the distortion and realism terms do. The alternative is a fixed λ.
"""

from __future__ import annotations

import torch
from torch import Tensor


def init_spec(obj: object) -> dict:
    """``{"class_path", "init_args"}`` of a plain-argument object: the form LightningCLI re-parses when it
    resumes from a checkpoint's hyperparameters (``fit --ckpt_path``)."""
    cls = type(obj)
    return {"class_path": f"{cls.__module__}.{cls.__qualname__}", "init_args": dict(vars(obj))}


class RateWeight:
    """Maps the batch's estimated bits per pixel to the rate weight λ (a tensor on the bpp's device)."""

    def __call__(self, bpp: Tensor) -> Tensor:
        raise NotImplementedError

    def config(self) -> dict:
        """Plain-data description, for checkpoints and logs (``class_path``/``init_args``)."""
        return init_spec(self)


class FixedLambda(RateWeight):
    """λ constant: trades rate against distortion without a target (the classic R-D Lagrangian)."""

    def __init__(self, lmbda: float = 1.0) -> None:
        if lmbda < 0:
            raise ValueError(f"lmbda must be non-negative, got {lmbda}")
        self.lmbda = float(lmbda)

    def __call__(self, bpp: Tensor) -> Tensor:
        return torch.full_like(bpp.detach(), self.lmbda)


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
        """Chosen on the device (no host sync in the training step)."""
        bpp = bpp.detach().mean()
        return torch.where(bpp > self.target_bpp, self.lambda_a, self.lambda_b).to(bpp.dtype)
