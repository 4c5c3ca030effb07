"""The objective a codec was trained for, stored with its weights.

``RateDistortionObjective`` maps a quality (rate level) to the rate weight λ and the realism scale of the
training loss λ(q)·bpp + k_M·MSE + β·s(q)·C_P·P. Training writes it into every checkpoint and export
(``MultiRealismModule`` builds it from its rate ladder and loss weights), loading puts it on
``codec.objective``, and latent refinement and the command line read it there: the mapping is written once.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Dict, Mapping, Optional, Tuple

import torch
from torch import Tensor

from multirealism.perceptual_names import PERCEPTUAL_LABELS
from multirealism.perceptual_scales import check_scales


@dataclass(frozen=True)
class RateDistortionObjective:
    """λ(q)·bpp + d_β with d_β = ``mse_weight``·MSE + β·s(q)·``perceptual_weight``·P (images in [0, 1]; P the
    ``perceptual`` distance the realism stage trained with, if any).

    ``lambdas[level]`` is the rate weight of quality ``level`` (level 0 = lowest rate) and
    ``realism_scales[level]`` (if the training ladder had them) the multiplier s of β at that level; fractional
    qualities interpolate both log-linearly, as the rate control interpolates its gains. ``perceptual_scales``
    are the downscales P is averaged over (``(1,)``: full size only).
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
                           check_scales(tuple(self.perceptual_scales), has_perceptual=self.perceptual is not None))

    @property
    def num_levels(self) -> int:
        return len(self.lambdas)

    def rate_weight(self, quality: Tensor) -> Tensor:
        """λ at each quality of the ``(B,)`` tensor ``quality``."""
        return _per_level(self.lambdas, quality)

    def realism_scale(self, quality: Tensor) -> Tensor:
        """The multiplier of β in the perceptual term at each quality of ``quality`` (1 without scales)."""
        if self.realism_scales is None:
            return torch.ones(quality.shape[0], device=quality.device)
        return _per_level(self.realism_scales, quality)

    def to_dict(self) -> Dict[str, Any]:
        """Plain data, as stored in checkpoints and in ``.safetensors`` metadata."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RateDistortionObjective":
        """The inverse of :meth:`to_dict`; a ValueError names what is wrong."""
        if not isinstance(data, Mapping):
            raise ValueError(f"an objective is a mapping, got {type(data).__name__}")
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown objective field(s): {', '.join(unknown)}")
        try:
            values = dict(data)
            for key in ("lambdas", "realism_scales", "perceptual_scales"):
                if values.get(key) is not None:
                    values[key] = tuple(values[key])
            return cls(**values)
        except TypeError as err:
            raise ValueError(f"malformed objective: {err}") from None


def _per_level(values: Tuple[float, ...], quality: Tensor) -> Tensor:
    """Per-level ``values`` at each quality of the ``(B,)`` tensor ``quality``, log-linear in between."""
    logs = torch.tensor(values, dtype=torch.float64).log()
    if len(values) == 1:
        return logs.exp().to(torch.float32).expand(quality.shape[0]).to(quality.device)
    q = quality.detach().to("cpu", torch.float64).clamp(0, len(values) - 1)
    low = q.floor().long().clamp(max=len(values) - 2)
    frac = q - low
    return ((1 - frac) * logs[low] + frac * logs[low + 1]).exp().to(torch.float32).to(quality.device)
