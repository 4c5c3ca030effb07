"""Encoder-side latent refinement: optimise one image's coded latent for the objective its codec was
trained with, before entropy coding (Campos et al. 2019, "Content adaptive optimization"; Yang et al.
2020, "Improving inference for neural image compression").

An encoder network is amortised: its latent is good on average, not the best for each image. A few
Adam steps on the latent itself, through the frozen hyper transforms and synthesis, lower
λ(q)·bpp + k_M·MSE for *this* image. Only the encoder changes: the bitstream format and the decoder
are the same, so a refined stream decodes with any copy of the model, at every β.

The objective is the training one, with rates of the latent rounded exactly as the coder rounds it
(straight-through gradients), so each step's loss is the coded one; the best step is kept, so
refinement never returns a latent that scores worse than the encoder's. The sender does not know the
β its receiver will pick: ``LatentRefinement.realism`` weighs the distortion at β = 0 against the
training distortion at β_max (MSE plus β_max·C_P·perceptual), so one latent serves both ends.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from multirealism import memory_budget
from multirealism.codec import EncodedLatent, MultiRealismCodec
from multirealism.components.conditioning import beta_as_map
from multirealism.components.rate_control import unscale_latent
from multirealism.objective import RateDistortionObjective
from multirealism.perceptual_scales import MIN_POOLED_SIDE, multiscale_distance

if TYPE_CHECKING:
    from multirealism.training.perceptual import Perceptual


@dataclass(frozen=True)
class LatentRefinement:
    """How hard to refine: ``steps`` Adam steps at learning rate ``lr`` (cosine-annealed to 0), in
    units of the quantisation bin. 0 steps is the plain encoder.

    ``realism`` is the share of the distortion taken at β_max: the loss is
    λ·bpp + (1 − realism)·d_0 + realism·d_β_max. 0 refines for the β = 0 reconstruction alone;
    above 0 it needs the objective's perceptual distance (and the ``stlpips`` extra for ST-LPIPS).
    """

    steps: int = 30
    lr: float = 0.02
    realism: float = 0.0
    #: called after each step with (steps done, steps in all), e.g. to show progress
    progress: Optional[Callable[[int, int], None]] = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 0:
            raise ValueError(f"refinement steps must be a non-negative integer, got {self.steps!r}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"refinement lr must be a positive finite number, got {self.lr!r}")
        if not (math.isfinite(self.realism) and 0 <= self.realism <= 1):
            raise ValueError(f"refinement realism must lie in [0, 1], got {self.realism!r}")


def refinement_problem(objective: Optional[RateDistortionObjective], refinement: LatentRefinement) -> Optional[str]:
    """Why ``refinement`` cannot run with ``objective`` (a sentence naming the fix), or None if it can."""
    if refinement.steps == 0:
        return None
    if objective is None:
        return ("latent refinement needs the codec's training objective: set codec.objective = "
                "RateDistortionObjective(lambdas=..., mse_weight=...) (shipped models carry theirs, and so do "
                "checkpoints of a run with a rate ladder of fixed λs)")
    if refinement.realism > 0 and objective.perceptual is None:
        return ("refinement with realism > 0 needs the perceptual distance the model trained with: "
                "give its objective perceptual=... and perceptual_weight=...")
    return None


def refinement_from_args(steps: int, realism: float) -> "Tuple[Optional[LatentRefinement], Optional[str]]":
    """The command line's ``--refine STEPS --refine-realism W`` as a refinement (None for 0 steps), or
    why they are wrong (an error line naming the option)."""
    if steps < 0:
        return None, f"--refine {steps}: steps must be 0 or more"
    if realism != 0 and steps == 0:
        return None, "--refine-realism needs --refine STEPS (it weighs what the refinement optimises)"
    try:
        refinement = LatentRefinement(steps, realism=realism)
    except ValueError as err:
        return None, f"--refine-realism: {err}"
    return (refinement if steps else None), None


@functools.lru_cache(maxsize=2)
def _frozen_perceptual(name: str) -> "Perceptual":
    """The perceptual network ``name``, built once per process, in eval mode with no trainable weight."""
    from multirealism.training.perceptual import build_perceptual

    network = build_perceptual(name, allow_download=False)
    if network is None:
        raise ValueError(f"perceptual {name!r} is no distance; refinement with realism > 0 needs one")
    network.eval().requires_grad_(False)
    return network


@torch.no_grad()
def refine(codec: MultiRealismCodec, x: Tensor, quality: Optional[float], refinement: LatentRefinement) -> EncodedLatent:
    """The latent ``codec.encode(x, quality)`` gives, optimised per image for ``codec.objective`` (the objective
    stored with its weights); pass it to ``codec.compress_latent``. A codec without the objective that
    ``refinement`` needs is a ValueError naming what to set."""
    latent = codec.encode(x, quality)
    if refinement.steps == 0:
        return latent
    images = (x.unsqueeze(0) if x.dim() == 3 else x).to(latent.y.device, torch.float32)
    pixels = latent.y.shape[0] * latent.y.shape[-2] * latent.y.shape[-1] * codec.encoder.downsampling**2
    memory_budget.check_memory(pixels, memory_budget.REFINE_BYTES_PER_PIXEL,
                               f"refining {images.shape[0]} image(s) of {latent.width}x{latent.height}", images.device)
    y = refine_latent(codec, images, latent.y, latent.quality, codec.objective, refinement)
    return EncodedLatent(y, latent.height, latent.width, latent.quality)


def refine_or_encode(
    codec: MultiRealismCodec, x: Tensor, quality: Optional[float], refinement: Optional[LatentRefinement]
) -> EncodedLatent:
    """:func:`refine` with ``refinement``, or the plain ``codec.encode`` without one."""
    return codec.encode(x, quality) if refinement is None else refine(codec, x, quality, refinement)


def refine_latent(
    codec: MultiRealismCodec,
    x: Tensor,
    y: Tensor,
    quality: "float | Tensor",
    objective: Optional[RateDistortionObjective],
    refinement: LatentRefinement,
) -> Tensor:
    """The latent, among ``y`` (the encoder's rate-scaled latent of the padded images) and its
    refinement steps, with the lowest coded objective for each image of ``x`` (unpadded, in [0, 1]).

    The codec's weights are not touched (gradients are taken with respect to the latent only). An
    ``objective`` that cannot drive ``refinement`` is a ValueError saying what to set.
    """
    problem = refinement_problem(objective, refinement)
    if problem is not None:
        raise ValueError(problem)
    if refinement.steps == 0 or objective is None:  # objective is None only with 0 steps
        return y
    batch, _, height, width = x.shape
    pixels = height * width
    with torch.inference_mode(False), torch.enable_grad():
        x = x.detach().clone().float()
        q = torch.as_tensor(quality, dtype=torch.float32, device=y.device).expand(batch).clone()
        # built here: a perceptual network made under inference mode would hold tensors autograd refuses
        ends = _DistortionAtEnds(codec, objective, refinement.realism, q)
        rate_weight = objective.rate_weight(q).to(y.device)
        latent = y.detach().float().contiguous(memory_format=torch.channels_last).requires_grad_(True)
        best_latent = latent.detach().clone()
        best_loss = torch.full((batch,), math.inf, device=y.device)
        optimizer = torch.optim.Adam([latent], lr=refinement.lr)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, refinement.steps)
        for step in range(refinement.steps + 1):
            entropy = codec.entropy_model.rounded_likelihoods(latent)
            bits = sum(-torch.log2(lik).flatten(1).sum(dim=1) for lik in entropy.likelihoods.values())
            y_hat = unscale_latent(codec.rate_control, entropy.y_hat, q)
            loss = rate_weight * bits / pixels + ends.distortion(y_hat, x)
            better = loss.detach() < best_loss
            best_loss = torch.where(better, loss.detach(), best_loss)
            best_latent[better] = latent.detach()[better]
            if step == refinement.steps:
                break
            (grad,) = torch.autograd.grad(loss.sum(), [latent])
            latent.grad = grad
            optimizer.step()
            schedule.step()
            if refinement.progress is not None:
                refinement.progress(step + 1, refinement.steps)
    return best_latent.to(y.dtype).contiguous()  # the coder computes scales in the default layout


class _DistortionAtEnds:
    """(1 − w)·d_0 + w·d_β_max of the decoded images, per image (w = ``realism``) at qualities ``q``
    (which set the objective's per-level realism scale); only the ends with weight are decoded, in one
    synthesis pass."""

    def __init__(self, codec: MultiRealismCodec, objective: RateDistortionObjective, realism: float,
                 q: Tensor) -> None:
        device = q.device
        self.codec, self.objective = codec, objective
        self.quality = q
        self.realism_scale = objective.realism_scale(q).to(device)
        ends = [(0.0, 1.0 - realism), (float(codec.generator.beta_max), realism)]
        self.ends = [(beta, weight) for beta, weight in ends if weight > 0]
        self.maps = [beta_as_map(beta, 1, device) for beta, _ in self.ends]
        self.perceptual = None
        if realism > 0 and objective.perceptual is not None:  # refinement_problem ensured the name
            self.perceptual = _frozen_perceptual(objective.perceptual).to(device)

    def distortion(self, y_hat: Tensor, x: Tensor) -> Tensor:
        batch, _, height, width = x.shape
        maps = [beta_map.expand(batch, -1, -1, -1) for beta_map in self.maps]
        total = torch.zeros(batch, device=x.device)
        for (beta, weight), image in zip(self.ends, self.codec.synthesize(y_hat, maps, self.quality)):
            x_hat = image[..., :height, :width].clamp(0, 1)  # as decompress clamps
            d = self.objective.mse_weight * (x_hat - x).pow(2).flatten(1).mean(dim=1)
            if beta > 0 and self.perceptual is not None:
                distance = multiscale_distance(self.perceptual, *_readable(x_hat, x), self._scales(height, width))
                d = d + beta * self.realism_scale * self.objective.perceptual_weight * distance.flatten()
            total = total + weight * d
        return total

    def _scales(self, height: int, width: int) -> Tuple[int, ...]:
        """The objective's scales whose pooled copies the network can read, (1,) when none can."""
        shortest = min(height, width)
        return tuple(f for f in self.objective.perceptual_scales if f == 1 or shortest // f >= MIN_POOLED_SIDE) or (1,)


def _readable(x_hat: Tensor, x: Tensor) -> Tuple[Tensor, Tensor]:
    """Both images edge-padded to at least :data:`MIN_POOLED_SIDE` on each side: the perceptual networks
    cannot read smaller inputs (a 1x1 or 2x3 image would fail inside their reflection padding)."""
    height, width = x.shape[-2:]
    pad = (0, max(0, MIN_POOLED_SIDE - width), 0, max(0, MIN_POOLED_SIDE - height))
    if not any(pad):
        return x_hat, x
    return F.pad(x_hat, pad, mode="replicate"), F.pad(x, pad, mode="replicate")
