"""Discriminators that judge a reconstruction given the quantised latent and the realism weight β.

``hific`` follows HiFiC (Mentzer et al. 2020, appendix A.1): the latent ŷ goes through a 1x1
convolution to 12 channels, is upsampled (nearest) to the image size and concatenated with the
image; four spectral-normalised 4x4 stride-2 convolutions (64, 128, 256, 512) with LeakyReLU(0.2)
and a final 1x1 convolution give a map of patch logits at 1/16 of the image resolution. As in
Agustsson et al. 2023 it is also conditioned on β, here through a Fourier embedding of β
concatenated as extra channels (a β map gives each region its own condition).

``patchgan_ms`` is a multi-scale PatchGAN (pix2pixHD style): the same conditioned input at full,
half and quarter resolution, one spectral-normalised PatchGAN per scale; it returns one logit map
per scale.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, List, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from multirealism.components.base import Discriminator
from multirealism.components.conditioning import FourierConditioner, beta_as_map
from multirealism.registry import discriminators
from multirealism.training.settings import DiscriminatorSettings

if TYPE_CHECKING:
    from multirealism.codec import MultiRealismCodec


class ConditionalInput(nn.Module):
    """Builds the discriminator input: image, ŷ projected and upsampled to the image size, β embedding."""

    def __init__(self, latent_channels: int, latent_projection: int, beta_max: float, beta_channels: int) -> None:
        super().__init__()
        self.latent_proj = nn.Conv2d(latent_channels, latent_projection, 1)
        self.beta_embed = FourierConditioner(beta_max, num_frequencies=4, hidden=beta_channels)
        self.out_channels = 3 + latent_projection + beta_channels

    def forward(self, x: Tensor, y_hat: Tensor, beta: "float | Tensor") -> Tensor:
        size = (x.shape[-2], x.shape[-1])
        latent = F.interpolate(F.leaky_relu(self.latent_proj(y_hat), 0.2), size=size, mode="nearest")
        # β stays float32 whatever the image dtype: real (fp32) and fake (bf16 under autocast) images
        # must be judged under the same condition.
        cond = self.beta_embed(beta_as_map(beta, x.shape[0], x.device).float(), size)
        cond = cond.expand(-1, -1, *size) if cond.shape[-2:] != size else cond
        return torch.cat([x, latent.to(x.dtype), cond.to(x.dtype)], dim=1)


def patch_layers(in_channels: int, widths: Sequence[int]) -> nn.Sequential:
    """Spectral-normalised 4x4 stride-2 convolutions with LeakyReLU, then a 1x1 logit layer."""
    layers: List[nn.Module] = []
    for width in widths:
        layers += [spectral_norm(nn.Conv2d(in_channels, width, 4, stride=2, padding=1)), nn.LeakyReLU(0.2)]
        in_channels = width
    layers.append(spectral_norm(nn.Conv2d(in_channels, 1, 1)))
    return nn.Sequential(*layers)


@discriminators.register("hific")
class HiFiCDiscriminator(Discriminator):
    """HiFiC's conditional patch discriminator with an added β condition; returns ``(B, 1, H/16, W/16)`` logits."""

    def __init__(
        self,
        latent_channels: int = 320,
        channels: Sequence[int] = (64, 128, 256, 512),
        latent_projection: int = 12,
        beta_max: float = 5.12,
        beta_channels: int = 8,
    ) -> None:
        super().__init__()
        self.condition = ConditionalInput(latent_channels, latent_projection, beta_max, beta_channels)
        self.body = patch_layers(self.condition.out_channels, list(channels))

    def forward(self, x: Tensor, y_hat: Tensor, beta: "float | Tensor") -> Tensor:
        return self.body(self.condition(x, y_hat, beta))


@discriminators.register("patchgan_ms")
class MultiScalePatchDiscriminator(Discriminator):
    """PatchGANs at ``num_scales`` resolutions (average-pooled by 2 each); returns a list of logit maps."""

    def __init__(
        self,
        latent_channels: int = 320,
        channels: Sequence[int] = (64, 128, 256),
        num_scales: int = 3,
        latent_projection: int = 12,
        beta_max: float = 5.12,
        beta_channels: int = 8,
    ) -> None:
        super().__init__()
        if num_scales < 1:
            raise ValueError(f"num_scales must be at least 1, got {num_scales}")
        self.condition = ConditionalInput(latent_channels, latent_projection, beta_max, beta_channels)
        self.heads = nn.ModuleList(
            patch_layers(self.condition.out_channels, list(channels)) for _ in range(num_scales)
        )

    def forward(self, x: Tensor, y_hat: Tensor, beta: "float | Tensor") -> List[Tensor]:  # type: ignore[override]
        h = self.condition(x, y_hat, beta)
        logits = []
        for i, head in enumerate(self.heads):
            if i:
                h = F.avg_pool2d(h, 2, ceil_mode=True)
            logits.append(head(h))
        return logits


@discriminators.register("timm")
class TimmDiscriminator(Discriminator):
    """Any timm convolutional backbone as a conditional patch discriminator.

    The conditioned input (image, projected ŷ, β embedding) feeds ``timm.create_model(backbone,
    features_only=True, in_chans=...)``; a spectral-normalised 1x1 convolution turns the deepest
    feature map into patch logits. ``pretrained`` weights would come from timm's hub download, so
    it stays off by default (and the first layer is re-initialised anyway for the extra channels).
    """

    def __init__(
        self,
        backbone: str = "resnet18",
        latent_channels: int = 320,
        latent_projection: int = 12,
        beta_max: float = 5.12,
        beta_channels: int = 8,
        pretrained: bool = False,
        out_index: int = -1,
    ) -> None:
        super().__init__()
        import timm

        self.condition = ConditionalInput(latent_channels, latent_projection, beta_max, beta_channels)
        self.backbone = timm.create_model(
            backbone, pretrained=pretrained, features_only=True, in_chans=self.condition.out_channels
        )
        self.out_index = out_index
        channels = self.backbone.feature_info.channels()[out_index]
        self.logits = spectral_norm(nn.Conv2d(channels, 1, 1))

    def forward(self, x: Tensor, y_hat: Tensor, beta: "float | Tensor") -> Tensor:
        features = self.backbone(self.condition(x, y_hat, beta))
        return self.logits(features[self.out_index])


def build_discriminator(settings: DiscriminatorSettings, codec: "MultiRealismCodec") -> nn.Module:
    """Build a discriminator registry entry for ``codec``: its latent width and β_max come from the codec."""
    return discriminators.build(
        settings.name, latent_channels=codec.generator.latent_channels, beta_max=codec.beta_max, **settings.args
    )
