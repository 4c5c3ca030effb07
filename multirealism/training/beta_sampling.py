"""How the realism weight β is drawn for each training image.

Agustsson et al. 2023 draw β uniformly in [0, β_max] per image so that one generator learns the
whole realism range. Options here: a share of images at β = 0 (pure rate-distortion decoding gets
more weight), a share with spatial β maps (piecewise constant on a coarse grid, teaching the
generator to vary realism across an image), a share at β = β_max (with ``zero_fraction`` it can
train for the two ends alone: the objective the refining encoder optimises), and a fixed β for
single-realism baselines.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor


class BetaSampler:
    """Draws β per image: a ``(B,)`` tensor, or a ``(B, 1, H, W)`` map when any image gets a spatial map.

    Args:
        beta_max: upper end of the uniform range (paper: 5.12); None: the codec's, set by
            :class:`~multirealism.training.MultiRealismModule` so configs say it once.
        zero_fraction: share of images whose β is exactly 0.
        max_fraction: share of images whose β is exactly ``beta_max``; ``zero_fraction`` +
            ``max_fraction`` must not exceed 1 (both 0.5: the two ends only, half each).
        spatial_fraction: share of images given a spatial map (a ``grid`` x ``grid`` array of
            uniform values, upsampled nearest); the others then get constant maps.
        grid: cells per side of a spatial map.
        fixed: if set, every image gets this β (HiFiC-like fixed-realism or MSE-only baselines).
    """

    def __init__(
        self,
        beta_max: Optional[float] = None,
        zero_fraction: float = 0.0,
        max_fraction: float = 0.0,
        spatial_fraction: float = 0.0,
        grid: int = 4,
        fixed: Optional[float] = None,
    ) -> None:
        shares = (("zero_fraction", zero_fraction), ("max_fraction", max_fraction), ("spatial_fraction", spatial_fraction))
        for name, share in shares:
            if not 0.0 <= share <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {share}")
        if zero_fraction + max_fraction > 1.0:
            raise ValueError(f"zero_fraction + max_fraction must not exceed 1, got {zero_fraction} + {max_fraction}")
        if grid < 1:
            raise ValueError(f"grid must be at least 1, got {grid}")
        self.zero_fraction = float(zero_fraction)
        self.max_fraction = float(max_fraction)
        self.spatial_fraction = float(spatial_fraction)
        self.grid = int(grid)
        self.fixed = None if fixed is None else float(fixed)
        self.beta_max: Optional[float] = None
        if beta_max is not None:
            self.set_beta_max(beta_max)

    def set_beta_max(self, beta_max: float) -> None:
        """Set the range's upper end (the module passes the codec's β_max when none was given)."""
        if beta_max < 0 or (self.fixed is not None and not 0 <= self.fixed <= beta_max):
            raise ValueError(f"need 0 <= fixed <= beta_max, got fixed={self.fixed}, beta_max={beta_max}")
        self.beta_max = float(beta_max)

    def config(self) -> dict:
        """Plain-data description, for checkpoints and logs."""
        return dict(vars(self))

    def __call__(
        self,
        batch: int,
        height: int,
        width: int,
        device: "torch.device | str" = "cpu",
        generator: Optional[torch.Generator] = None,
    ) -> Tensor:
        """β for ``batch`` images of ``height`` x ``width``; ``generator`` (on ``device``) gives the random stream."""
        if self.beta_max is None:
            raise ValueError("BetaSampler has no beta_max: give one, or let MultiRealismModule take the codec's")
        if self.fixed is not None:
            return torch.full((batch,), self.fixed, device=device)
        draw = dict(device=device, generator=generator)
        beta = torch.rand(batch, **draw) * self.beta_max
        kind = torch.rand(batch, **draw)  # picks each image's kind: 0, β_max or uniform
        beta = torch.where(kind < self.zero_fraction + self.max_fraction, torch.full_like(beta, self.beta_max), beta)
        beta = torch.where(kind < self.zero_fraction, torch.zeros_like(beta), beta)
        if self.spatial_fraction == 0.0:  # no host sync on the common path
            return beta
        spatial = torch.rand(batch, **draw) < self.spatial_fraction
        cells = torch.rand(batch, 1, self.grid, self.grid, **draw) * self.beta_max
        maps = F.interpolate(cells, size=(height, width), mode="nearest")
        constant = beta.view(batch, 1, 1, 1).expand(-1, -1, height, width)
        return torch.where(spatial.view(batch, 1, 1, 1), maps, constant).contiguous()
