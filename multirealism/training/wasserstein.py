"""Wasserstein distortion (Qiu, Wagner, Ballé & Theis 2023; Ballé et al., CVPR 2025) as a training loss.

Two images are compared by the *local statistics* of their features instead of the features themselves:
at every position, the mean and standard deviation of each channel over a window of about σ feature
pixels. With σ → 0 this is a feature-wise squared error (fidelity); with σ large it only asks that each
neighbourhood have the right texture statistics, so it stops penalising texture synthesised at the
wrong phase, which MSE and LPIPS-style distances punish and a realistic decoder must produce. It is
cheap (no discriminator) and has no adversarial instability, which suits a small CPU budget.

The features are the RGB image itself and the first ``layers`` stages of ST-LPIPS' VGG (its wheel ships
the weights, so nothing is downloaded), each unit-normalised over channels as LPIPS does. Statistics at
window 2^l come from average pooling with stride 2^(l-1) (half-overlapping windows); a fractional
``log2_sigma`` blends the two neighbouring window sizes.
"""

from __future__ import annotations

import math
from typing import List

import torch
from lpips import normalize_tensor
from torch import Tensor, nn
from torch.nn import functional as F

from multirealism.perceptual_names import PERCEPTUAL_LABELS

#: variance floor under the square root, so the gradient stays finite in flat regions
_VARIANCE_FLOOR = 1e-6


def _local_moments(features: Tensor, window: int) -> "tuple[Tensor, Tensor]":
    """Per-channel local mean and standard deviation over ``window``² patches (half-overlapping)."""
    if window <= 1:
        return features, torch.zeros_like(features)
    window = min(window, features.shape[-2], features.shape[-1])
    stride = max(1, window // 2)
    mean = F.avg_pool2d(features, window, stride)
    second = F.avg_pool2d(features * features, window, stride)
    std = (second - mean * mean).clamp_min(0).add(_VARIANCE_FLOOR).sqrt()
    return mean, std


def statistics_distance(a: Tensor, b: Tensor, log2_sigma: float) -> Tensor:
    """``(B, 1, h, w)``: squared distance of local means plus that of local standard deviations, summed over
    channels, at window 2^``log2_sigma`` (the two neighbouring powers of two, weighted linearly in log2 σ), brought
    back to the feature maps' size."""
    low = math.floor(log2_sigma)
    frac = log2_sigma - low
    size = a.shape[-2:]
    out = torch.zeros(a.shape[0], 1, *size, dtype=a.dtype, device=a.device)
    for level, weight in ((low, 1 - frac), (low + 1, frac)):
        if weight == 0:
            continue
        mean_a, std_a = _local_moments(a, 2 ** level)
        mean_b, std_b = _local_moments(b, 2 ** level)
        d = ((mean_a - mean_b) ** 2 + (std_a - std_b) ** 2).sum(1, keepdim=True)
        out = out + weight * F.interpolate(d, size=size, mode="nearest")
    return out


class WassersteinDistortion(nn.Module):
    """Frozen Wasserstein distortion for images in [0, 1]: per image ``(B, 1, 1, 1)`` or, with ``spatial``, a
    ``(B, 1, H, W)`` map; the interface of :class:`~multirealism.training.perceptual.Perceptual`.

    Args:
        log2_sigma: log2 of the statistics window in feature pixels (at every layer, so the window in image
            pixels doubles with each VGG stage's blur-pooling).
        layers: how many ST-LPIPS VGG stages follow the RGB image (0 to 5).
    """

    def __init__(self, log2_sigma: float = 3.0, layers: int = 3) -> None:
        super().__init__()
        from multirealism.training.perceptual import load_stlpips

        if not 0 <= layers <= 5:
            raise ValueError(f"layers must be 0 to 5 (VGG stages), got {layers}")
        if not (math.isfinite(log2_sigma) and log2_sigma >= 0):
            raise ValueError(f"log2_sigma must be a finite number >= 0, got {log2_sigma}")
        self.log2_sigma = float(log2_sigma)
        vgg = load_stlpips("vgg")
        self.scaling = vgg.scaling_layer
        self.stages = nn.ModuleList(getattr(vgg.net, f"slice{i}") for i in range(1, layers + 1))
        self.requires_grad_(False).eval()
        self.name = "wasserstein-vgg"
        self.label = PERCEPTUAL_LABELS[self.name]
        self.key = "wasserstein"

    def train(self, mode: bool = True) -> "WassersteinDistortion":
        return super().train(False)

    def features(self, x: Tensor) -> List[Tensor]:
        """The RGB image (in [-1, 1]) and each VGG stage's channel-normalised features (LPIPS' normalisation)."""
        h = self.scaling(2 * x - 1)
        maps = [2 * x - 1]
        for stage in self.stages:
            h = stage(h)
            maps.append(normalize_tensor(h))
        return maps

    def forward(self, x_hat: Tensor, x: Tensor, spatial: bool = False) -> Tensor:
        distances = [statistics_distance(a, b, self.log2_sigma)
                     for a, b in zip(self.features(x_hat.float()), self.features(x.float()))]
        if spatial:
            return torch.stack([F.interpolate(d, size=x.shape[-2:], mode="nearest") for d in distances]).mean(0)
        return torch.stack([d.mean((2, 3), keepdim=True) for d in distances]).mean(0)
