"""The training module's argument groups: what the loss is, how the discriminator and the optimisers
run, and where a run starts from. Each is a frozen dataclass, so a YAML config names its fields under
``model.objective``, ``model.discriminator``, ``model.optimization`` and ``model.init``."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Dict, Optional, Tuple

from multirealism.objective import RateDistortionObjective

if TYPE_CHECKING:
    from multirealism.training.quality import RateLadder


def _check_count(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")


@dataclass(frozen=True)
class Objective:
    """λ·rate + ``mse_weight``·MSE + β·(``perceptual_weight``·P + ``adversarial_weight``·L_adv).

    Defaults are the paper's (Agustsson et al. 2023, Sec. 4): k_M = 150 for images in [0, 1] (HiFiC's
    0.075·2^-5 on [0, 255]), C_P = 1/2.56 and C_adv = 0.001/2.56, so β = 2.56 weighs LPIPS by 1 and the GAN
    by 0.001. ``perceptual`` names P: ``"lpips-alex"`` (pretrained AlexNet; offline give
    ``lpips_backbone_path``), ``"stlpips-alex"`` / ``"stlpips-vgg"`` (shift-tolerant LPIPS, shipped offline),
    ``"lpips-random-test-only"`` or ``"none"``. ``perceptual_scales`` averages P over those integer downscales
    of both images (``(1,)``: full size only; see :mod:`multirealism.perceptual_scales`).
    """

    mse_weight: float = 150.0
    perceptual: str = "lpips-alex"
    perceptual_weight: float = 1.0 / 2.56
    perceptual_scales: Tuple[int, ...] = (1,)
    adversarial_weight: float = 0.001 / 2.56
    lpips_backbone_path: Optional[str] = None

    def __post_init__(self) -> None:
        for name in ("mse_weight", "perceptual_weight", "adversarial_weight"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"objective.{name} must be a finite number >= 0, got {value!r}")
        object.__setattr__(self, "perceptual_scales", tuple(self.perceptual_scales))

    def stored(self, ladder: "Optional[RateLadder]", has_perceptual: bool) -> Optional[RateDistortionObjective]:
        """What a codec trained on this objective and ``ladder`` is trained for, stored with its weights: None
        unless the ladder gives a fixed λ per level (HiFiC-style targets give no λ to optimise a latent for)."""
        lambdas = None if ladder is None else ladder.init_args["lambdas"]
        if not lambdas:
            return None
        perceptual = has_perceptual and self.perceptual_weight > 0
        return RateDistortionObjective(
            tuple(lambdas), self.mse_weight, self.perceptual if perceptual else None,
            self.perceptual_weight if perceptual else 0.0, ladder.init_args["realism_scales"],
            self.perceptual_scales if perceptual else (1,),
        )


@dataclass(frozen=True)
class DiscriminatorSettings:
    """The discriminator: registry ``name`` and ``args`` (its latent width and β_max come from the codec),
    its Adam learning rate and (β1, β2), and ``warmup_steps``, the run's first steps, which train it alone
    against the codec run without gradients (a fresh discriminator near chance gives the generator noise)."""

    name: str = "hific"
    args: Dict[str, Any] = field(default_factory=dict)
    lr: float = 1e-4
    betas: Tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 0

    def __post_init__(self) -> None:
        given = sorted({"latent_channels", "beta_max"} & set(self.args))
        if given:
            raise ValueError(f"discriminator args must not set {', '.join(given)}: they are taken from the codec")
        betas = tuple(float(b) for b in self.betas)
        if len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"discriminator betas must be two values in [0, 1), got {self.betas!r}")
        object.__setattr__(self, "betas", betas)
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"discriminator lr must be a positive number, got {self.lr!r}")
        _check_count("discriminator warmup_steps", self.warmup_steps)


@dataclass(frozen=True)
class Optimization:
    """Adam learning rates of the codec (``lr``; paper and HiFiC: 1e-4) and of the entropy bottleneck's
    quantiles (``aux_lr``; CompressAI: 1e-3); every rate but ``aux_lr`` is multiplied by ``lr_gamma`` at the
    ``lr_milestones`` steps; ``gradient_clip_val`` bounds the norm of the generator and discriminator updates."""

    lr: float = 1e-4
    aux_lr: float = 1e-3
    lr_milestones: Tuple[int, ...] = ()
    lr_gamma: float = 0.1
    gradient_clip_val: Optional[float] = 1.0

    def __post_init__(self) -> None:
        for name in ("lr", "aux_lr", "lr_gamma"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"optimization.{name} must be a positive number, got {value!r}")
        object.__setattr__(self, "lr_milestones", tuple(self.lr_milestones))


@dataclass(frozen=True)
class Initialization:
    """Where a run starts: ``checkpoint``'s codec weights (any file the codec reads, e.g. a warm-up's
    ``last.ckpt``), except ``new_parts`` (attribute paths such as ``generator.refiner``), which keep their
    fresh values; ``copy_parts`` maps a part the checkpoint lacks to the stored part it starts as a copy
    of (``{generator.realism: generator}``: a realism branch starting as the base synthesis); ``trainable``
    names the codec parts the generator step trains (None: all). The entropy bottleneck's quantiles train
    only while its density does, so a stage that freezes the bitstream keeps the coder's tables bit for bit."""

    checkpoint: Optional[str] = None
    trainable: Optional[Tuple[str, ...]] = None
    new_parts: Tuple[str, ...] = ()
    copy_parts: Dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.trainable is not None:
            if not self.trainable:
                raise ValueError("init.trainable must name at least one codec part (None trains them all)")
            object.__setattr__(self, "trainable", tuple(self.trainable))
        object.__setattr__(self, "new_parts", tuple(self.new_parts))
        object.__setattr__(self, "copy_parts", dict(self.copy_parts))
        if self.copy_parts and self.checkpoint is None:
            raise ValueError("init.copy_parts needs init.checkpoint, the file its parts are copied from")
