"""Ballé-style analysis transform: four stride-2 5x5 convolutions with GDN, cheap enough to train on CPU."""

from __future__ import annotations

from compressai.models.utils import conv
from torch import Tensor, nn

from multirealism.components.base import Encoder
from multirealism.components.gdn import MetaSafeGDN
from multirealism.registry import encoders


@encoders.register("gdn")
class GdnEncoder(Encoder):
    """``conv5x5/2 -> GDN`` three times, then ``conv5x5/2`` to the latent (Ballé et al. 2018).

    About a tenth of ELIC's cost at the same width: no residual stages or attention.
    """

    downsampling = 16

    def __init__(self, channels: int = 64, latent_channels: int = 96) -> None:
        super().__init__()
        if channels < 1 or latent_channels < 1:
            raise ValueError(f"channels and latent_channels must be positive, got {channels}, {latent_channels}")
        self.latent_channels = latent_channels
        self.transform = nn.Sequential(
            conv(3, channels, kernel_size=5, stride=2),
            MetaSafeGDN(channels),
            conv(channels, channels, kernel_size=5, stride=2),
            MetaSafeGDN(channels),
            conv(channels, channels, kernel_size=5, stride=2),
            MetaSafeGDN(channels),
            conv(channels, latent_channels, kernel_size=5, stride=2),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.transform(x)
