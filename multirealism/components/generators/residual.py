"""A CPU-sized conditional generator: Ballé-style synthesis (deconvolutions with inverse GDN) with
β-conditioned residual blocks at the two lowest resolutions, where texture is synthesised cheaply."""

from __future__ import annotations

from typing import Optional, Sequence

from compressai.models.utils import deconv
from torch import Tensor, nn

from multirealism.components.base import ConditionalGenerator
from multirealism.components.conditioning import beta_as_map, build_conditioner
from multirealism.components.gdn import MetaSafeGDN
from multirealism.components.generators.elic import ConditionedBottleneck
from multirealism.components.generators.noise import NoiseInjection
from multirealism.registry import generators


@generators.register("residual_cond")
class ResidualConditionalGenerator(ConditionalGenerator):
    """``deconv5x5/2 -> IGDN -> blocks`` at 1/8 and 1/4 of the image size, then two plain
    upsampling steps to full resolution.

    Each block is the paper's conditioned residual bottleneck (FourierCond, or TableCond with
    ``conditioner="table"``, projected by 1x1 convolutions and added after each convolution).
    """

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
    ) -> None:
        super().__init__()
        if min(latent_channels, channels, mid_channels, cond_channels) < 1 or blocks_per_stage < 1:
            raise ValueError("channel counts and blocks_per_stage must be positive")
        self.latent_channels = latent_channels
        self.conditioner = build_conditioner(conditioner, cond_channels, beta_max, num_frequencies, table_betas)
        self.beta_max = self.conditioner.beta_max

        def up(cin: int) -> nn.Sequential:
            return nn.Sequential(deconv(cin, channels, kernel_size=5, stride=2), MetaSafeGDN(channels, inverse=True))

        # conditioned stages at 1/8 and 1/4 resolution
        self.pre = nn.ModuleList([up(latent_channels), up(channels)])
        self.stages = nn.ModuleList(
            nn.ModuleList(ConditionedBottleneck(channels, mid_channels, cond_channels) for _ in range(blocks_per_stage))
            for _ in range(2)
        )
        self.out = nn.Sequential(up(channels), deconv(channels, 3, kernel_size=5, stride=2))
        self.noise: Optional[NoiseInjection] = None  # noise inputs after each block: NoisyResidualGenerator

    def forward(self, y_hat: Tensor, beta: "float | Tensor") -> Tensor:
        beta_map = beta_as_map(beta, y_hat.shape[0], y_hat.device)
        return self.out(self.conditioned_features(y_hat, beta_map))

    def conditioned_features(self, y_hat: Tensor, beta_map: Tensor) -> Tensor:
        """The output of the conditioned stages, at 1/4 of the image size."""
        x = y_hat
        source = self.noise.source(x.device) if self.noise is not None else None
        injection = 0
        for pre, stage in zip(self.pre, self.stages):
            x = pre(x)
            cond = self.conditioner(beta_map, (x.shape[-2], x.shape[-1]))
            for block in stage:
                x = block(x, cond)
                if self.noise is not None:
                    x = self.noise(x, injection, source)
                    injection += 1
        return x


@generators.register("residual_cond_noisy")
class NoisyResidualGenerator(ResidualConditionalGenerator):
    """``residual_cond`` with a noise input after each conditioned block (:class:`NoiseInjection`, scales
    zero at first, so it starts as the plain generator with the same weights)."""

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
    ) -> None:
        super().__init__(latent_channels, channels, mid_channels, blocks_per_stage, conditioner, cond_channels,
                         num_frequencies, beta_max, table_betas)
        self.noise = NoiseInjection(channels, 2 * blocks_per_stage)
