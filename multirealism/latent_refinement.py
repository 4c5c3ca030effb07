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
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from multirealism.perceptual_names import PERCEPTUAL_LABELS
from multirealism.perceptual_scales import MIN_POOLED_SIDE, check_scales, multiscale_distance

if TYPE_CHECKING:
    from multirealism.codec import MultiRealismCodec
    from multirealism.training.perceptual import Perceptual


@dataclass(frozen=True)
class RateDistortionObjective:
    """The training objective λ(q)·bpp + d_β, with d_β = ``mse_weight``·MSE + β·``perceptual_weight``·P
    (images in [0, 1]; P the ``perceptual`` distance the realism stage trained with, if any), λ per
    rate level.

    ``lambdas[level]`` is the rate weight of quality ``level`` (level 0 = lowest rate); fractional
    qualities interpolate it log-linearly, as the rate control interpolates its gains.
    ``realism_scales[level]`` (the training ladder's, if it had them) multiplies β in the perceptual term
    at that level, interpolated the same way. ``perceptual_scales`` are the downscales P is averaged over, as
    the training module's (``(1,)``: full size only).
    """

    lambdas: Tuple[float, ...]
    mse_weight: float = 150.0
    perceptual: Optional[str] = None
    perceptual_weight: float = 0.0
    realism_scales: Optional[Tuple[float, ...]] = None
    perceptual_scales: Tuple[int, ...] = (1,)

    def __post_init__(self) -> None:
        values = tuple(float(v) for v in self.lambdas)
        if not values or not all(math.isfinite(v) and v > 0 for v in values):
            raise ValueError(f"lambdas must be positive finite numbers, got {self.lambdas!r}")
        if not (math.isfinite(self.mse_weight) and self.mse_weight > 0):
            raise ValueError(f"mse_weight must be a positive finite number, got {self.mse_weight!r}")
        if not (math.isfinite(self.perceptual_weight) and self.perceptual_weight >= 0):
            raise ValueError(f"perceptual_weight must be a finite number >= 0, got {self.perceptual_weight!r}")
        if self.perceptual is not None and self.perceptual not in PERCEPTUAL_LABELS:
            raise ValueError(f"perceptual {self.perceptual!r} is not a known distance ({', '.join(PERCEPTUAL_LABELS)})")
        if (self.perceptual is None) != (self.perceptual_weight == 0):
            raise ValueError("perceptual and perceptual_weight go together: name the distance and give it a weight > 0")
        object.__setattr__(self, "lambdas", values)
        if self.realism_scales is not None:
            scales = tuple(float(v) for v in self.realism_scales)
            if len(scales) != len(values) or not all(math.isfinite(v) and v > 0 for v in scales):
                raise ValueError(f"realism_scales must be {len(values)} positive finite numbers, got {self.realism_scales!r}")
            object.__setattr__(self, "realism_scales", scales)
        object.__setattr__(self, "perceptual_scales",
                           check_scales(self.perceptual_scales, has_perceptual=self.perceptual is not None))

    def rate_weight(self, quality: Tensor) -> Tensor:
        """λ at each quality of the ``(B,)`` tensor ``quality``."""
        return _per_level(self.lambdas, quality)

    def realism_scale(self, quality: Tensor) -> Tensor:
        """The multiplier of β in the perceptual term at each quality of ``quality`` (1 without scales)."""
        if self.realism_scales is None:
            return torch.ones(quality.shape[0], device=quality.device)
        return _per_level(self.realism_scales, quality)


def _per_level(values: Tuple[float, ...], quality: Tensor) -> Tensor:
    """Per-level ``values`` at each quality of the ``(B,)`` tensor ``quality``, log-linear in between."""
    logs = torch.tensor(values, dtype=torch.float64).log()
    if len(values) == 1:
        return logs.exp().to(torch.float32).expand(quality.shape[0]).to(quality.device)
    q = quality.detach().to("cpu", torch.float64).clamp(0, len(values) - 1)
    low = q.floor().long().clamp(max=len(values) - 2)
    frac = q - low
    return ((1 - frac) * logs[low] + frac * logs[low + 1]).exp().to(torch.float32).to(quality.device)


def objective_from_hparams(
    hparams: Optional[Mapping[str, Any]], num_levels: Optional[int] = None
) -> Optional[RateDistortionObjective]:
    """The objective a training module's hyperparameters (a Lightning checkpoint's) name: its rate
    ladder's λs, ``mse_weight`` and, unless ``"none"``, ``perceptual`` with ``lpips_weight``. None when
    they name no fixed λ per level (a fixed-rate run, or λs adapted to target rates); a ValueError when
    they name one that is unusable (bad values, an unknown distance, or not one λ per each of the codec's
    ``num_levels``)."""
    if not hparams:
        return None
    ladder = hparams.get("rate_ladder")
    ladder_args = ladder.get("init_args", {}) if isinstance(ladder, Mapping) else {}
    lambdas = ladder_args.get("lambdas")
    if not lambdas:
        return None
    perceptual = hparams.get("perceptual")
    perceptual = None if perceptual in (None, "none") else str(perceptual)
    scales = ladder_args.get("realism_scales")
    try:
        objective = RateDistortionObjective(
            tuple(lambdas), mse_weight=float(hparams.get("mse_weight", 150.0)), perceptual=perceptual,
            perceptual_weight=float(hparams.get("lpips_weight", 1 / 2.56)) if perceptual else 0.0,
            realism_scales=tuple(scales) if scales else None,
            perceptual_scales=tuple(hparams.get("perceptual_scales") or (1,)) if perceptual else (1,),
        )
    except TypeError as err:
        raise ValueError(f"malformed hyperparameters: {err}") from None
    if num_levels is not None and len(objective.lambdas) != num_levels:
        raise ValueError(f"its rate ladder has {len(objective.lambdas)} λ values for a model of {num_levels} rate levels")
    return objective


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
                "Lightning checkpoints of a run with a rate ladder of fixed λs)")
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


def refine_latent(
    codec: "MultiRealismCodec",
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
    from multirealism.components.rate_control import unscale_latent

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

    def __init__(self, codec: "MultiRealismCodec", objective: RateDistortionObjective, realism: float,
                 q: Tensor) -> None:
        from multirealism.components.conditioning import beta_as_map

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
