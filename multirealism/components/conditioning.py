"""β conditioners: turn the realism weight into a conditioning map at any resolution.

Both conditioners accept β as a float, a ``(B,)`` tensor or a ``(B, 1, H, W)`` map. Scalars become
``(B, 1, 1, 1)`` maps that broadcast, so a constant map and the matching scalar go through the same
arithmetic and give the same output.
"""

from __future__ import annotations

import math
from numbers import Real
from typing import Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from multirealism.errors import ParameterError


def check_beta_max(beta_max: float) -> float:
    """``beta_max`` as a float, refused unless finite and above 0 (before any range is built from it)."""
    value = float(beta_max)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"beta_max must be a finite number above 0, got {beta_max!r}")
    return value


def check_beta_range(beta: Tensor, beta_max: float) -> None:
    """The one β range check (finite, in [0, β_max]) with the one message every caller shows."""
    if not bool(torch.isfinite(beta).all()) or bool((beta < 0).any()) or bool((beta > beta_max + 1e-6).any()):
        raise ParameterError(f"beta must lie in [0, {beta_max}] (the generator's training range)")


def beta_as_map(beta: "float | Tensor", batch: int, device: torch.device) -> Tensor:
    """Normalise β to a float32 ``(B, 1, h, w)`` tensor (``h = w = 1`` for per-image values)."""
    if not torch.is_tensor(beta):
        if isinstance(beta, bool) or not isinstance(beta, Real):
            raise ParameterError(f"beta must be a number or a tensor, got {beta!r}")
        beta = torch.tensor(float(beta), device=device)
    beta = beta.to(device=device, dtype=torch.float32)
    if beta.dim() == 0:
        return beta.expand(batch).reshape(batch, 1, 1, 1)
    if beta.dim() == 1:
        if beta.numel() == 1:
            return beta.expand(batch).reshape(batch, 1, 1, 1)
        if beta.numel() != batch:
            raise ValueError(f"beta has {beta.numel()} values for a batch of {batch} images")
        return beta.reshape(batch, 1, 1, 1)
    if beta.dim() == 4 and beta.shape[1] == 1 and beta.shape[0] in (1, batch):
        return beta.expand(batch, -1, -1, -1)
    raise ValueError(
        f"beta must be a float, a (B,) tensor or a (B, 1, H, W) map; got shape {tuple(beta.shape)}"
    )


class BetaConditioner(nn.Module):
    """Maps a β map to a ``(B, out_channels, h, w)`` conditioning map at a requested size."""

    out_channels: int
    beta_max: float
    #: how a β map is resized to a block's resolution ("area" averages, "nearest" keeps values)
    resize_mode: str = "area"

    def embed(self, beta_map: Tensor) -> Tensor:
        raise NotImplementedError

    def resize(self, beta_map: Tensor, size: Tuple[int, int]) -> Tensor:
        """``beta_map`` at ``size`` in :attr:`resize_mode`; a constant ``(B, 1, 1, 1)`` map is left to broadcast."""
        if beta_map.shape[-2:] != (1, 1) and beta_map.shape[-2:] != size:
            beta_map = F.interpolate(beta_map, size=size, mode=self.resize_mode)
        return beta_map

    def forward(self, beta_map: Tensor, size: Tuple[int, int]) -> Tensor:
        return self.embed(self.resize(beta_map, size))


class FourierConditioner(BetaConditioner):
    """FourierCond of Agustsson et al.: β/β_max to t in [-1, 1], sin/cos(2^k t) for k < L, then an MLP.

    Frequencies are 2^k without a factor π: with π, t = -1 and t = 1 (β = 0 and β = β_max) would
    give identical features. The MLP is applied per pixel (as 1x1 convolutions) so spatial β maps
    work.
    """

    def __init__(self, beta_max: float = 5.12, num_frequencies: int = 10, hidden: int = 512) -> None:
        super().__init__()
        self.beta_max = check_beta_max(beta_max)
        self.out_channels = hidden
        self.register_buffer(
            "frequencies", 2.0 ** torch.arange(num_frequencies, dtype=torch.float32), persistent=False
        )
        self.mlp = nn.Sequential(
            nn.Conv2d(2 * num_frequencies, hidden, 1), nn.ReLU(inplace=True), nn.Conv2d(hidden, hidden, 1)
        )

    def embed(self, beta_map: Tensor) -> Tensor:
        t = 2.0 * beta_map / self.beta_max - 1.0
        phase = t * self.frequencies.view(1, -1, 1, 1)
        return self.mlp(torch.cat([phase.sin(), phase.cos()], dim=1))


class TableConditioner(BetaConditioner):
    """TableCond: one learned embedding per β in a fixed discrete set."""

    resize_mode = "nearest"

    def __init__(self, betas: Sequence[float] = (0.0, 1.28, 2.56, 5.12), hidden: int = 512) -> None:
        super().__init__()
        if len(betas) < 1:
            raise ValueError("TableConditioner needs at least one β value")
        self.register_buffer("betas", torch.tensor(sorted(float(b) for b in betas)), persistent=False)
        self.beta_max = check_beta_max(max(betas))
        self.out_channels = hidden
        self.table = nn.Embedding(len(betas), hidden)

    def embed(self, beta_map: Tensor) -> Tensor:
        distance = (beta_map.unsqueeze(-1) - self.betas).abs()
        nearest = distance.min(dim=-1)
        if bool((nearest.values > 1e-4).any()):
            raise ValueError(f"TableConditioner only knows beta in {self.betas.tolist()}")
        return self.table(nearest.indices.squeeze(1)).permute(0, 3, 1, 2)


def build_conditioner(
    kind: str, channels: int, beta_max: float, num_frequencies: int, table_betas: Sequence[float]
) -> BetaConditioner:
    """The generators' β conditioner: ``"fourier"`` (FourierCond, any β in [0, β_max]) or ``"table"``
    (TableCond, one learned vector per β in ``table_betas``)."""
    if kind == "fourier":
        return FourierConditioner(beta_max, num_frequencies, channels)
    if kind == "table":
        return TableConditioner(table_betas, channels)
    raise ValueError(f"conditioner must be 'fourier' or 'table', got {kind!r}")
