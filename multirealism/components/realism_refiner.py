"""A β-gated refinement head on the decoded image, and the residual generator that carries it.

``x̂(β) = x̂₀ + (β / β_max) · r(x̂₀, h, β)``: at β = 0 the output is exactly the base generator's
(the low-distortion reconstruction), so a head trained on top of a rate-distortion warm-up gives
β > 0 its own realism path without moving β = 0. The head sees the base image and the generator's
features at half resolution, and takes the β embedding in a conditioned residual block.

``residual_cond_rate_refined`` also tells the head how coarse the latent is (the mean log quantisation
step of the rate level it was coded at), so one head can add more detail at low rates than at high ones;
a head blind to the rate, trained on many levels, settles on one strength for all of them.
``residual_cond_rate_gated`` keeps the head blind and scales its residual by a gain per rate instead.
"""

from __future__ import annotations

from typing import List, Optional, Sequence

import torch
from compressai.models.utils import deconv
from torch import Tensor, nn

from multirealism.components.conditioning import BetaConditioner, beta_as_map
from multirealism.components.generator import ConditionedBottleneck
from multirealism.components.rate_control import require_log_step
from multirealism.components.rate_gate import RateGate
from multirealism.components.residual_generator import ResidualConditionalGenerator
from multirealism.registry import generators


class RealismRefiner(nn.Module):
    """Residual ``r(x̂₀, h, β)`` added to the image with weight β / β_max; its last convolution starts at
    zero, so a fresh head leaves every β at the base image. With ``reads_rate`` an MLP of the latent's
    mean log quantisation step is added to the β embedding the head's block takes (``from_rate``).
    :meth:`deepen` appends conditioned blocks after the first (``extra.*``)."""

    def __init__(
        self, feature_channels: int, channels: int = 32, mid_channels: int = 16, cond_channels: int = 64,
        reads_rate: bool = False,
    ) -> None:
        super().__init__()
        if min(feature_channels, channels, mid_channels, cond_channels) < 1:
            raise ValueError("refiner channel counts must be positive")
        self.from_rate = None
        if reads_rate:  # its last layer starts at zero: a trained blind head starts a rate-aware one unchanged
            self.from_rate = nn.Sequential(nn.Conv2d(1, cond_channels, 1), nn.ReLU(), nn.Conv2d(cond_channels, cond_channels, 1))
            nn.init.zeros_(self.from_rate[2].weight)
            nn.init.zeros_(self.from_rate[2].bias)
        self.from_features = deconv(feature_channels, channels, kernel_size=3, stride=2)
        self.from_image = nn.Conv2d(3, channels, 3, padding=1)
        self.block = ConditionedBottleneck(channels, mid_channels, cond_channels)
        self.extra = nn.ModuleList()
        self.act = nn.ReLU()
        self.to_image = nn.Conv2d(channels, 3, 3, padding=1)
        nn.init.zeros_(self.to_image.weight)
        nn.init.zeros_(self.to_image.bias)

    def deepen(self, blocks: int, dilation: int = 1) -> None:
        """Append ``blocks`` conditioned blocks whose middle convolutions are dilated by ``dilation``. Each
        starts as the identity (its last convolution and projection at zero), so a trained head grows into a
        deeper one with the same output (``init_new: [generator.refiner.extra]``)."""
        if blocks < 1:
            raise ValueError(f"a head is deepened by at least one block, got {blocks}")
        channels, mid_channels = self.block.convs[0].in_channels, self.block.convs[0].out_channels
        cond_channels = self.block.projections[0].in_channels
        for _ in range(blocks):
            block = ConditionedBottleneck(channels, mid_channels, cond_channels, dilation)
            for layer in (block.convs[-1], block.projections[-1]):
                nn.init.zeros_(layer.weight)
                nn.init.zeros_(layer.bias)
            self.extra.append(block)

    def forward(
        self, image: Tensor, features: Tensor, beta_map: Tensor, conditioner: BetaConditioner,
        log_step: Optional[Tensor] = None, gain: Optional[Tensor] = None,
    ) -> Tensor:
        """``gain``, one value per image, scales the residual (a :class:`~multirealism.components.RateGate`'s)."""
        size = (image.shape[-2], image.shape[-1])
        h = self.act(self.from_image(image) + self.from_features(features))
        cond = conditioner(beta_map, size)
        if self.from_rate is not None:
            log_step = require_log_step(log_step, image.shape[0], "a rate-aware realism head")
            cond = cond + self.from_rate(log_step.to(image.dtype).view(-1, 1, 1, 1))
        h = self.block(h, cond)
        for block in self.extra:
            h = block(h, cond)
        gate = conditioner.resize(beta_map / conditioner.beta_max, size)
        if gain is not None:
            gate = gate * gain.to(image.dtype).view(-1, 1, 1, 1)
        return image + gate * self.to_image(self.act(h))


@generators.register("residual_cond_refined")
class RefinedResidualGenerator(ResidualConditionalGenerator):
    """``residual_cond`` with a :class:`RealismRefiner` on its output: the same parameter names plus
    ``refiner.*``, so a ``residual_cond`` checkpoint initialises it (``init_new: [generator.refiner]``)."""

    #: whether the head's own β embedding takes the rate (``refiner.from_rate``)
    head_reads_rate: bool = False

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
        self.refiner = RealismRefiner(
            channels, refiner_channels, refiner_mid_channels, cond_channels, reads_rate=self.head_reads_rate
        )

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
        """The head's output on the base image for one β map."""
        return self.refiner(image, features, beta_map, self.conditioner, log_step)

    def _base(self, y_hat: Tensor, beta_map: Tensor) -> "tuple[Tensor, Tensor]":
        """The base layers' image and the features the head reads."""
        base_map = beta_map if self.base_beta is None else torch.full_like(beta_map[..., :1, :1], self.base_beta)
        features = self.out[0](self.conditioned_features(y_hat, base_map))
        return self.out[1](features), features


@generators.register("residual_cond_rate_refined")
class RateAwareRefinedGenerator(RefinedResidualGenerator):
    """``residual_cond_refined`` whose head also reads the latent's mean log quantisation step
    (``refiner.from_rate.*``), so it can set its strength per rate level: the codec passes ``log_step``."""

    reads_rate = True
    head_reads_rate = True


@generators.register("residual_cond_rate_gated")
class RateGatedRefinedGenerator(RefinedResidualGenerator):
    """``residual_cond_refined`` whose head's residual is scaled by a :class:`RateGate` of the latent's mean
    log quantisation step (``rate_gate.*``): the head stays blind to the level and keeps its β path, the gate
    sets its strength per level. ``residual_cond_refined``'s parameter names plus ``rate_gate.*``, so a
    trained blind head starts it unchanged (``init_new: [generator.rate_gate]``)."""

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
            num_frequencies, beta_max, table_betas, refiner_channels, refiner_mid_channels, base_beta,
        )
        self.rate_gate = RateGate(gate_hidden)

    def _refine(self, image: Tensor, features: Tensor, beta_map: Tensor, log_step: Optional[Tensor]) -> Tensor:
        gain = self.rate_gate(log_step, image.shape[0])
        return self.refiner(image, features, beta_map, self.conditioner, gain=gain)


@generators.register("residual_cond_rate_gated_deep")
class DeepRateGatedRefinedGenerator(RateGatedRefinedGenerator):
    """``residual_cond_rate_gated`` whose head has ``refiner_extra_blocks`` more conditioned blocks
    (``refiner.extra.*``, middle convolutions dilated by ``refiner_dilation``). They start as the identity,
    so a trained gated head starts the deeper one unchanged (``init_new: [generator.refiner.extra]``).
    A registry entry of its own, so the shallower models' recorded configs (and fingerprints) stay as they are."""

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
        refiner_extra_blocks: int = 1,
        refiner_dilation: int = 1,
    ) -> None:
        super().__init__(
            latent_channels, channels, mid_channels, blocks_per_stage, conditioner, cond_channels,
            num_frequencies, beta_max, table_betas, refiner_channels, refiner_mid_channels, base_beta, gate_hidden,
        )
        self.refiner.deepen(refiner_extra_blocks, refiner_dilation)
