"""Conditional generator: ELIC's synthesis transform, wider, with β injected into every
residual bottleneck block (Agustsson et al. 2023)."""

from __future__ import annotations

from typing import Dict, Sequence, Tuple

from compressai.layers import AttentionBlock
from compressai.models.utils import deconv
from torch import Tensor, nn

from multirealism.components.base import ConditionalGenerator
from multirealism.components.conditioning import beta_as_map, build_conditioner
from multirealism.registry import generators


class ConditionedBottleneck(nn.Module):
    """Residual bottleneck whose three convolutions each get a 1x1 projection of the β embedding
    added to their output."""

    def __init__(self, channels: int, mid_channels: int, cond_channels: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            [
                nn.Conv2d(channels, mid_channels, 1),
                nn.Conv2d(mid_channels, mid_channels, 3, padding=1),
                nn.Conv2d(mid_channels, channels, 1),
            ]
        )
        self.projections = nn.ModuleList(
            [nn.Conv2d(cond_channels, c.out_channels, 1) for c in self.convs]
        )
        self.act = nn.ReLU()

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        out = x
        for i, (conv, proj) in enumerate(zip(self.convs, self.projections)):
            out = conv(out) + proj(cond)
            if i < len(self.convs) - 1:
                out = self.act(out)
        return x + out


@generators.register("elic_cond")
class ElicConditionalGenerator(ConditionalGenerator):
    """ELIC synthesis with conditioned bottleneck blocks.

    Paper scale: ``channels=256, mid_channels=128, latent_channels=320``, Fourier conditioning with
    ``num_frequencies=10, cond_channels=512, beta_max=5.12``. ``conditioner="table"`` uses one
    learned embedding per β in ``table_betas`` instead.
    """

    def __init__(
        self,
        latent_channels: int = 320,
        channels: int = 256,
        mid_channels: int = 128,
        blocks_per_stage: int = 3,
        attention: bool = True,
        conditioner: str = "fourier",
        cond_channels: int = 512,
        num_frequencies: int = 10,
        beta_max: float = 5.12,
        table_betas: Sequence[float] = (0.0, 1.28, 2.56, 5.12),
    ) -> None:
        super().__init__()
        self.latent_channels = latent_channels
        self.conditioner = build_conditioner(conditioner, cond_channels, beta_max, num_frequencies, table_betas)
        self.beta_max = self.conditioner.beta_max

        def stage() -> nn.ModuleList:
            return nn.ModuleList(
                ConditionedBottleneck(channels, mid_channels, cond_channels) for _ in range(blocks_per_stage)
            )

        def attn(ch: int) -> nn.Module:
            return AttentionBlock(ch) if attention else nn.Identity()

        # (pre-stage layers, conditioned stage) per resolution, coarse to fine
        self.entry = attn(latent_channels)
        self.pre = nn.ModuleList(
            [
                deconv(latent_channels, channels, kernel_size=5, stride=2),
                nn.Sequential(deconv(channels, channels, kernel_size=5, stride=2), attn(channels)),
                deconv(channels, channels, kernel_size=5, stride=2),
            ]
        )
        self.stages = nn.ModuleList([stage() for _ in range(3)])
        self.out = deconv(channels, 3, kernel_size=5, stride=2)

    def forward(self, y_hat: Tensor, beta: "float | Tensor") -> Tensor:
        beta_map = beta_as_map(beta, y_hat.shape[0], y_hat.device)
        cache: Dict[Tuple[int, int], Tensor] = {}
        x = self.entry(y_hat)
        for pre, stage in zip(self.pre, self.stages):
            x = pre(x)
            size = (x.shape[-2], x.shape[-1])
            if size not in cache:
                cache[size] = self.conditioner(beta_map, size)
            for block in stage:
                x = block(x, cache[size])
        return self.out(x)
