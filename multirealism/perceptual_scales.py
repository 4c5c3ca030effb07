"""The perceptual term at several scales: ``P`` averaged over f×f average-pooled copies of both images.

Training (``MultiRealismModule(perceptual_scales=...)``) and latent refinement (an objective's
``perceptual_scales``) share it, so a refined latent optimises the distance its model trained on.
"""

from __future__ import annotations

from typing import Sequence, Tuple

import torch
from torch import Tensor, nn
from torch.nn import functional as F


def check_scales(scales: Sequence[int], has_perceptual: bool = True) -> Tuple[int, ...]:
    """``scales`` as a tuple of distinct positive integers (downscale factors), or ValueError; scales other
    than ``(1,)`` are refused when there is no perceptual distance to take at them (``has_perceptual``)."""
    values = tuple(scales)
    if not values or any(isinstance(f, bool) or not isinstance(f, int) or f < 1 for f in values) \
            or len(set(values)) != len(values):
        raise ValueError(f"perceptual_scales must be distinct positive integers, got {scales!r}")
    if values != (1,) and not has_perceptual:
        raise ValueError(f"perceptual_scales {list(values)} needs a perceptual distance, and none is set")
    return values


#: the shortest side a pooled copy may have: the networks cannot read smaller inputs (measured: ST-LPIPS-alex
#: needs 24 px, ST-LPIPS-vgg 20, the test network 32)
MIN_POOLED_SIDE = 32


def multiscale_distance(perceptual: nn.Module, x_hat: Tensor, x: Tensor, scales: Sequence[int] = (1,),
                        spatial: bool = False) -> Tensor:
    """The mean of ``perceptual``'s distance over ``scales``: at factor f both images are f×f average-pooled
    first, so the distance also weighs structure coarser than the network's first layers see. Per image
    ``(B, 1, 1, 1)``, or with ``spatial`` a full-size ``(B, 1, H, W)`` map (coarse maps brought back by nearest
    neighbour). A coarse scale whose pooled copy would be shorter than :data:`MIN_POOLED_SIDE` is left out
    (a small image's term then averages fewer scales; 128-px training crops keep factors up to 4)."""
    shortest = min(x.shape[-2:])
    usable = [f for f in scales if f == 1 or shortest // f >= MIN_POOLED_SIDE] or [min(scales)]
    maps = []
    for factor in usable:
        coarse_hat, coarse = (x_hat, x) if factor == 1 else (F.avg_pool2d(x_hat, factor), F.avg_pool2d(x, factor))
        distance = perceptual(coarse_hat, coarse, spatial=spatial)
        if spatial and factor != 1:
            distance = F.interpolate(distance, size=x.shape[-2:], mode="nearest")
        maps.append(distance)
    return maps[0] if len(maps) == 1 else torch.stack(maps).mean(0)
