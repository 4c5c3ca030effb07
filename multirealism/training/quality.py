"""Training a rate-controlled codec: a quality level drawn per image and a rate weight λ per level.

One model learns every rate of its rate control (:mod:`multirealism.components.rate_control`): each
image of a batch gets a level ``q`` drawn uniformly from ``0 .. num_levels - 1`` and its rate is
weighted by that level's λ, from a ladder of fixed values or of HiFiC-style bpp targets.
"""

from __future__ import annotations

import math
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from multirealism.codec import MultiRealismCodec
from multirealism.training.rate_schedule import FixedLambda, HiFiCLambdaSchedule, RateWeight


class RateLadder:
    """λ per rate level (level 0 = lowest rate) and the per-image level draw.

    Give exactly one of ``lambdas`` (fixed λ per level, decreasing as the rate rises) or
    ``target_bpps`` (HiFiC's schedule per level: ``lambda_a`` above the level's target, ``lambda_b``
    below; ``lambda_a`` is one value for all levels or one per level).

    ``realism_scales`` (one positive value per level, default all 1) multiplies β where the loss weighs
    the perceptual and adversarial terms, so each rate may trade a different amount of distortion for
    realism: β = β_max at a low rate, whose reconstruction is blurrier, may ask for more detail than at a
    high one. The codec still receives the drawn β.
    """

    def __init__(
        self,
        lambdas: Optional[Sequence[float]] = None,
        target_bpps: Optional[Sequence[float]] = None,
        lambda_a: "float | Sequence[float]" = 1.0,
        lambda_b: float = 2.0**-6,
        realism_scales: Optional[Sequence[float]] = None,
    ) -> None:
        if (lambdas is None) == (target_bpps is None):
            raise ValueError("RateLadder needs exactly one of lambdas or target_bpps")
        # constructor arguments as plain data: LightningCLI re-parses them on `fit --ckpt_path`
        self.init_args = {
            "lambdas": None if lambdas is None else [float(v) for v in lambdas],
            "target_bpps": None if target_bpps is None else [float(t) for t in target_bpps],
            "lambda_a": float(lambda_a) if isinstance(lambda_a, (int, float)) else [float(a) for a in lambda_a],
            "lambda_b": float(lambda_b),
            "realism_scales": None if realism_scales is None else [float(v) for v in realism_scales],
        }
        if lambdas is not None:
            self.levels: List[RateWeight] = [FixedLambda(v) for v in lambdas]
        else:
            targets = [float(t) for t in target_bpps]  # type: ignore[union-attr]
            if targets != sorted(targets) or len(set(targets)) != len(targets):
                raise ValueError(f"target_bpps must strictly increase with the level, got {targets}")
            per_level = [lambda_a] * len(targets) if isinstance(lambda_a, (int, float)) else list(lambda_a)
            if len(per_level) != len(targets):
                raise ValueError(f"{len(per_level)} lambda_a values for {len(targets)} target_bpps")
            self.levels = [HiFiCLambdaSchedule(t, a, lambda_b) for t, a in zip(targets, per_level)]
        if len(self.levels) < 2:
            raise ValueError("a rate ladder needs at least 2 levels")
        scales = self.init_args["realism_scales"]
        if scales is not None:
            if len(scales) != len(self.levels):
                raise ValueError(f"{len(scales)} realism_scales for {len(self.levels)} rate levels")
            if not all(math.isfinite(v) and v > 0 for v in scales):
                raise ValueError(f"realism_scales must be positive and finite, got {scales}")
        self.realism_scales: Optional[Tensor] = None if scales is None else torch.tensor(scales)

    @property
    def num_levels(self) -> int:
        return len(self.levels)

    def config(self) -> dict:
        """Plain-data description, for checkpoints and logs."""
        return {"type": type(self).__name__, "levels": [level.config() for level in self.levels]}

    def class_path_config(self) -> dict:
        """``{class_path, init_args}``, the form the training module stores in its hyperparameters."""
        return {"class_path": f"{type(self).__module__}.{type(self).__qualname__}", "init_args": dict(self.init_args)}

    def sample(
        self, batch: int, device: "torch.device | str" = "cpu", generator: Optional[torch.Generator] = None
    ) -> Tensor:
        """One integer level per image, uniform over the ladder, as a float ``(batch,)`` tensor."""
        return torch.randint(0, self.num_levels, (batch,), device=device, generator=generator).float()

    def loss_beta(self, beta: Tensor, levels: Tensor) -> Tensor:
        """β as the loss weighs it for images at ``levels``: ``β·realism_scales[level]`` (β itself without
        scales). β is ``(B,)`` or a ``(B, 1, H, W)`` map."""
        if self.realism_scales is None:
            return beta
        scale = self.realism_scales.to(device=beta.device, dtype=beta.dtype)[levels.to(beta.device).long()]
        return beta * scale.view(-1, *([1] * (beta.dim() - 1)))

    def rate_loss(self, bpp: Tensor, levels: Tensor) -> Tuple[Tensor, Tensor]:
        """Mean over images of λ(level)·bpp, and the mean λ used (for logs).

        A HiFiC level compares the mean bpp of *its* images in the batch with its own target.
        Everything stays on ``bpp``'s device (masked means, ``torch.where``): no host synchronisation.
        """
        lambdas = torch.zeros_like(bpp)
        detached = bpp.detach()
        for level, weight in enumerate(self.levels):
            mask = levels.to(bpp.device) == level
            level_bpp = (detached * mask).sum() / mask.sum().clamp_min(1)  # unused where no image has this level
            value = torch.as_tensor(weight(level_bpp), dtype=bpp.dtype, device=bpp.device)
            lambdas = torch.where(mask, value, lambdas)
        return (lambdas * bpp).mean(), lambdas.mean().detach()


def level_metrics(
    codec: MultiRealismCodec,
    x: Tensor,
    stage: str,
    image_metrics: Callable[[Tensor, Tensor], Dict[str, Tensor]],
    betas: Sequence[float] = (0.0,),
) -> Dict[str, Tensor]:
    """Each trained level's estimated bpp and ``image_metrics`` (PSNR, the perceptual distance) at each β.

    At β = 0 the names are ``{stage}/bpp_q{level}``, ``{stage}/{metric}_q{level}``; at another β
    ``{stage}/{metric}_q{level}_beta{β}``. One encoding per level serves every β. Logging β_max beside 0
    shows at every rate how far β moves the perceptual distance, which a sweep at one level does not.
    """
    metrics: Dict[str, Tensor] = {}
    for level in range(codec.num_levels):
        outs = codec.forward_betas(x, list(betas), quality=float(level))
        metrics[f"{stage}/bpp_q{level}"] = outs[0].bpp.float().mean()
        for beta, out in zip(betas, outs):
            suffix = f"_q{level}" if beta == 0 else f"_q{level}_beta{beta:g}"
            metrics.update({f"{stage}/{k}{suffix}": v for k, v in image_metrics(out.x_hat, x).items()})
    return metrics
