"""A β-gated realism head on the decoded image, and the residual generator that carries it.

``x̂(β) = x̂₀ + g(q) · (β / β_max) · r(x̂₀, h, β)``: at β = 0 the output is exactly the base generator's
(the low-distortion reconstruction), so a head trained on top of a rate-distortion warm-up gives β > 0 its
own realism path without moving β = 0. The head sees the base image and the generator's features at half
resolution and takes the β embedding in a conditioned residual block; a :class:`RateGate` ``g`` sets its
strength per rate level from how coarse the latent is.
"""

from __future__ import annotations

from typing import List, Optional, Sequence

import torch
from compressai.models.utils import deconv
from torch import Tensor, nn

from multirealism.components.conditioning import BetaConditioner, beta_as_map
from multirealism.components.generators.elic import ConditionedBottleneck
from multirealism.components.generators.rate_gate import RateGate
from multirealism.components.generators.residual import ResidualConditionalGenerator
from multirealism.registry import generators


class RealismRefiner(nn.Module):
    """Residual ``r(x̂₀, h, β)`` added to the image with weight β / β_max (times ``gain``); its last
    convolution starts at zero, so a fresh head leaves every β at the base image."""

    def __init__(self, feature_channels: int, channels: int = 32, mid_channels: int = 16, cond_channels: int = 64) -> None:
        super().__init__()
        if min(feature_channels, channels, mid_channels, cond_channels) < 1:
            raise ValueError("refiner channel counts must be positive")
        self.from_features = deconv(feature_channels, channels, kernel_size=3, stride=2)
        self.from_image = nn.Conv2d(3, channels, 3, padding=1)
        self.block = ConditionedBottleneck(channels, mid_channels, cond_channels)
        self.act = nn.ReLU()
        self.to_image = nn.Conv2d(channels, 3, 3, padding=1)
        nn.init.zeros_(self.to_image.weight)
        nn.init.zeros_(self.to_image.bias)

    def forward(
        self, image: Tensor, features: Tensor, beta_map: Tensor, conditioner: BetaConditioner,
        gain: Optional[Tensor] = None,
    ) -> Tensor:
        """``gain``, one value per image, scales the residual (a :class:`RateGate`'s)."""
        size = (image.shape[-2], image.shape[-1])
        h = self.act(self.from_image(image) + self.from_features(features))
        h = self.block(h, conditioner(beta_map, size))
        gate = conditioner.resize(beta_map / conditioner.beta_max, size)
        if gain is not None:
            gate = gate * gain.to(image.dtype).view(-1, 1, 1, 1)
        return image + gate * self.to_image(self.act(h))


@generators.register("residual_cond_rate_gated")
class RateGatedRefinedGenerator(ResidualConditionalGenerator):
    """``residual_cond`` with a :class:`RealismRefiner` on its output whose residual a :class:`RateGate` of the
    latent's mean log quantisation step scales: ``residual_cond``'s parameter names plus ``refiner.*`` and
    ``rate_gate.*``, so a ``residual_cond`` checkpoint initialises it (``init_new: [generator.refiner,
    generator.rate_gate]``). The codec passes ``log_step`` (``reads_rate``)."""

    reads_rate = True

    def __init__(
        self,
        latent_channels: int = 96,
        channels: int = 64,
        mid_channels: int = 32,
        blocks_per_stage: int = 2,
        conditioner: str = "fourier",
        cond_channels: int = 64,
        num_frequencies: int = 10,
        beta_max: float = 5.12,
        table_betas: Sequence[float] = (0.0, 1.28, 2.56, 5.12),
        refiner_channels: int = 32,
        refiner_mid_channels: int = 16,
        base_beta: Optional[float] = None,
        gate_hidden: int = 16,
    ) -> None:
        super().__init__(
            latent_channels, channels, mid_channels, blocks_per_stage, conditioner, cond_channels,
            num_frequencies, beta_max, table_betas,
        )
        if base_beta is not None and not 0.0 <= base_beta <= self.beta_max:
            raise ValueError(f"base_beta must lie in [0, {self.beta_max}], got {base_beta}")
        #: the β the base layers see (None: the decoder's β); 0 keeps them at the reconstruction a
        #: β = 0 warm-up trained, whose untrained β path would otherwise add error at β > 0
        self.base_beta = base_beta
        self.refiner = RealismRefiner(channels, refiner_channels, refiner_mid_channels, cond_channels)
        self.rate_gate = RateGate(gate_hidden)

    def forward(self, y_hat: Tensor, beta: "float | Tensor", log_step: Optional[Tensor] = None) -> Tensor:
        beta_map = beta_as_map(beta, y_hat.shape[0], y_hat.device)
        image, features = self._base(y_hat, beta_map)
        return self._refine(image, features, beta_map, log_step)

    def forward_betas(
        self, y_hat: Tensor, betas: Sequence["float | Tensor"], log_step: Optional[Tensor] = None
    ) -> List[Tensor]:
        """With ``base_beta`` set the base image does not depend on β: synthesised once, refined per β."""
        if self.base_beta is None or not betas:
            return [self(y_hat, beta, log_step) for beta in betas]
        maps = [beta_as_map(beta, y_hat.shape[0], y_hat.device) for beta in betas]
        image, features = self._base(y_hat, maps[0])
        return [self._refine(image, features, beta_map, log_step) for beta_map in maps]

    def _refine(self, image: Tensor, features: Tensor, beta_map: Tensor, log_step: Optional[Tensor]) -> Tensor:
        """The head's output on the base image for one β map, scaled by the gate at this rate."""
        gain = self.rate_gate(log_step, image.shape[0])
        return self.refiner(image, features, beta_map, self.conditioner, gain=gain)

    def _base(self, y_hat: Tensor, beta_map: Tensor) -> "tuple[Tensor, Tensor]":
        """The base layers' image and the features the head reads."""
        base_map = beta_map if self.base_beta is None else torch.full_like(beta_map[..., :1, :1], self.base_beta)
        features = self.out[0](self.conditioned_features(y_hat, base_map))
        return self.out[1](features), features
