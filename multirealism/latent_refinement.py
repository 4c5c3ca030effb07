"""Encoder-side latent refinement: optimise one image's coded latent for the objective its codec was
trained with, before entropy coding (Campos et al. 2019, "Content adaptive optimization"; Yang et al.
2020, "Improving inference for neural image compression").

An encoder network is amortised: its latent is good on average, not the best for each image. A few
Adam steps on the latent itself, through the frozen hyper transforms and synthesis, lower
λ(q)·bpp + k_M·MSE for *this* image. Only the encoder changes: the bitstream format and the decoder
are the same, so a refined stream decodes with any copy of the model, at every β.

The objective is the β = 0 (distortion) one, with rates of the latent rounded exactly as the coder
rounds it (straight-through gradients), so each step's loss is the coded one; the best step is kept,
so refinement never returns a latent that scores worse than the encoder's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Tuple

import torch
from torch import Tensor

if TYPE_CHECKING:
    from multirealism.codec import MultiRealismCodec


@dataclass(frozen=True)
class RateDistortionObjective:
    """The training objective λ(q)·bpp + ``mse_weight``·MSE (images in [0, 1]), λ per rate level.

    ``lambdas[level]`` is the rate weight of quality ``level`` (level 0 = lowest rate); fractional
    qualities interpolate it log-linearly, as the rate control interpolates its gains.
    """

    lambdas: Tuple[float, ...]
    mse_weight: float = 150.0

    def __post_init__(self) -> None:
        values = tuple(float(v) for v in self.lambdas)
        if not values or not all(math.isfinite(v) and v > 0 for v in values):
            raise ValueError(f"lambdas must be positive finite numbers, got {self.lambdas!r}")
        if not (math.isfinite(self.mse_weight) and self.mse_weight > 0):
            raise ValueError(f"mse_weight must be a positive finite number, got {self.mse_weight!r}")
        object.__setattr__(self, "lambdas", values)

    def rate_weight(self, quality: Tensor) -> Tensor:
        """λ at each quality of the ``(B,)`` tensor ``quality``."""
        logs = torch.tensor(self.lambdas, dtype=torch.float64).log()
        if len(self.lambdas) == 1:
            return logs.exp().to(torch.float32).expand(quality.shape[0]).to(quality.device)
        q = quality.detach().to("cpu", torch.float64).clamp(0, len(self.lambdas) - 1)
        low = q.floor().long().clamp(max=len(self.lambdas) - 2)
        frac = q - low
        return ((1 - frac) * logs[low] + frac * logs[low + 1]).exp().to(torch.float32).to(quality.device)


@dataclass(frozen=True)
class LatentRefinement:
    """How hard to refine: ``steps`` Adam steps at learning rate ``lr`` (cosine-annealed to 0), in
    units of the quantisation bin. 0 steps is the plain encoder."""

    steps: int = 30
    lr: float = 0.02

    def __post_init__(self) -> None:
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 0:
            raise ValueError(f"refinement steps must be a non-negative integer, got {self.steps!r}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"refinement lr must be a positive finite number, got {self.lr!r}")


def refine_latent(
    codec: "MultiRealismCodec",
    x: Tensor,
    y: Tensor,
    quality: "float | Tensor",
    objective: RateDistortionObjective,
    refinement: LatentRefinement,
) -> Tensor:
    """The latent, among ``y`` (the encoder's rate-scaled latent of the padded images) and its
    refinement steps, with the lowest coded objective for each image of ``x`` (unpadded, in [0, 1]).

    The codec's weights are not touched (gradients are taken with respect to the latent only).
    """
    if refinement.steps == 0:
        return y
    from multirealism.components.conditioning import beta_as_map
    from multirealism.components.rate_control import unscale_latent

    batch, _, height, width = x.shape
    pixels = height * width
    with torch.inference_mode(False), torch.enable_grad():
        x = x.detach().clone().float()
        q = torch.as_tensor(quality, dtype=torch.float32, device=y.device).expand(batch).clone()
        rate_weight = objective.rate_weight(q).to(y.device)
        beta = beta_as_map(0.0, batch, y.device)
        latent = y.detach().float().contiguous(memory_format=torch.channels_last).requires_grad_(True)
        best_latent = latent.detach().clone()
        best_loss = torch.full((batch,), math.inf, device=y.device)
        optimizer = torch.optim.Adam([latent], lr=refinement.lr)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, refinement.steps)
        for step in range(refinement.steps + 1):
            entropy = codec.entropy_model.rounded_likelihoods(latent)
            bits = sum(-torch.log2(lik).flatten(1).sum(dim=1) for lik in entropy.likelihoods.values())
            y_hat = unscale_latent(codec.rate_control, entropy.y_hat, q)
            x_hat = codec.generator(y_hat, beta)[..., :height, :width].clamp(0, 1)  # as decompress clamps
            mse = (x_hat - x).pow(2).flatten(1).mean(dim=1)
            loss = rate_weight * bits / pixels + objective.mse_weight * mse
            better = loss.detach() < best_loss
            best_loss = torch.where(better, loss.detach(), best_loss)
            best_latent[better] = latent.detach()[better]
            if step == refinement.steps:
                break
            (grad,) = torch.autograd.grad(loss.sum(), [latent])
            latent.grad = grad
            optimizer.step()
            schedule.step()
    return best_latent.to(y.dtype).contiguous()  # the coder computes scales in the default layout

