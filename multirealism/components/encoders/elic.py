"""ELIC analysis transform (He et al. 2022), built from CompressAI's layers."""

from __future__ import annotations

from typing import List

from compressai.layers import AttentionBlock
from compressai.models.sensetime import ResidualBottleneckBlock
from compressai.models.utils import conv
from torch import Tensor, nn

from multirealism.components.base import Encoder
from multirealism.registry import encoders


@encoders.register("elic")
class ElicEncoder(Encoder):
    """Four stride-2 5x5 convolutions with residual bottleneck stages and two attention blocks.

    Paper scale: ``channels=192, latent_channels=320`` (downsampling 16).
    """

    downsampling = 16

    def __init__(
        self, channels: int = 192, latent_channels: int = 320, blocks_per_stage: int = 3, attention: bool = True
    ) -> None:
        super().__init__()
        self.latent_channels = latent_channels

        def stage() -> List[nn.Module]:
            return [ResidualBottleneckBlock(channels, channels) for _ in range(blocks_per_stage)]

        def attn(ch: int) -> List[nn.Module]:
            return [AttentionBlock(ch)] if attention else []

        self.transform = nn.Sequential(
            conv(3, channels, kernel_size=5, stride=2),
            *stage(),
            conv(channels, channels, kernel_size=5, stride=2),
            *stage(),
            *attn(channels),
            conv(channels, channels, kernel_size=5, stride=2),
            *stage(),
            conv(channels, latent_channels, kernel_size=5, stride=2),
            *attn(latent_channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.transform(x)
