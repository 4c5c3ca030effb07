"""Full-reference image metrics as the compression literature reports them.

* PSNR is computed on RGB images rounded to 8 bits (what a decoder would write to disk), over all
  pixels and channels: ``10·log10(255² / MSE)``. An identical pair has MSE 0 and PSNR ``inf``
  (kept as ``inf`` in rows; JSON writes it as ``null``).
* MS-SSIM is torchmetrics' implementation on the same 8-bit images scaled to [0, 1]. Its standard
  5 scales need a short side of at least 176 px (11-px Gaussian window at 1/16 scale); smaller
  images use fewer scales (:func:`ms_ssim_scales`: 99-175 px → 4, 44-98 → 3, 22-43 → 2, 11-21 → 1)
  with the first weights of the standard set renormalised to sum to 1; below 11 px it is ``nan``.
* LPIPS (AlexNet, v0.1) is :mod:`multirealism.training.perceptual`'s network (the ``lpips`` package's
  linear heads on torchvision's ``alexnet-owt-7be5be79.pth`` backbone, read from a file given or found
  in torch's hub cache; evaluation never downloads it).
* ST-LPIPS (shift-tolerant LPIPS, alex or vgg) from the ``stlpips-pytorch`` wheel can replace it
  (:data:`EVAL_PERCEPTUAL`); it works offline but is a different metric, so its column is named
  ``st_lpips_alex``/``st_lpips_vgg`` and its label "ST-LPIPS (...)", never "LPIPS".
"""

from __future__ import annotations

import math
import os
from typing import Optional, Tuple

import torch
from torch import Tensor
from torchmetrics.functional.image import multiscale_structural_similarity_index_measure

from multirealism.errors import ImageInputError
from multirealism.perceptual_names import EVAL_PERCEPTUAL

MS_SSIM_WEIGHTS: Tuple[float, ...] = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
MS_SSIM_KERNEL = 11


def quantize_8bit(x: Tensor) -> Tensor:
    """Round images in [0, 1] to the 256 levels an 8-bit file holds (still float in [0, 1])."""
    return torch.round(x.clamp(0, 1) * 255) / 255


def _pair(x: Tensor, y: Tensor) -> Tuple[Tensor, Tensor]:
    if x.shape != y.shape:
        raise ImageInputError(f"image shapes differ: {tuple(x.shape)} vs {tuple(y.shape)}")
    if x.dim() == 3:
        x, y = x.unsqueeze(0), y.unsqueeze(0)
    if x.dim() != 4 or x.shape[1] != 3:
        raise ImageInputError(f"expected RGB images (3, H, W) or (B, 3, H, W), got {tuple(x.shape)}")
    return x.float(), y.float()


def psnr(x: Tensor, y: Tensor) -> float:
    """PSNR in dB between two RGB images in [0, 1] after 8-bit rounding; ``inf`` if identical."""
    x, y = _pair(x, y)
    mse = float(torch.mean((quantize_8bit(x) * 255 - quantize_8bit(y) * 255).double() ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def ms_ssim_scales(height: int, width: int, kernel_size: int = MS_SSIM_KERNEL) -> int:
    """Number of MS-SSIM scales (at most 5) for an image of this size: the most for which the
    coarsest scale still holds the Gaussian window (short side >= kernel · 2^(scales-1)) and which
    torchmetrics' own size check accepts."""
    side = min(height, width)
    for scales in range(len(MS_SSIM_WEIGHTS), 0, -1):
        fits_window = side >= kernel_size * 2 ** (scales - 1)
        torchmetrics_accepts = side >= 2**scales and side // max(1, scales - 1) ** 2 > kernel_size - 1
        if fits_window and torchmetrics_accepts:
            return scales
    return 0


def ms_ssim(x: Tensor, y: Tensor) -> float:
    """MS-SSIM of two RGB images in [0, 1] after 8-bit rounding (fewer scales for small images)."""
    x, y = _pair(x, y)
    scales = ms_ssim_scales(x.shape[-2], x.shape[-1])
    if scales == 0:
        return math.nan
    weights = MS_SSIM_WEIGHTS[:scales]
    betas = tuple(w / sum(weights) for w in weights)
    value = multiscale_structural_similarity_index_measure(
        quantize_8bit(x), quantize_8bit(y), data_range=1.0, kernel_size=MS_SSIM_KERNEL, betas=betas
    )
    return float(value)


def perceptual_column(network: str) -> str:
    """The network's column in rows/summary/tables: ``lpips`` only for true LPIPS (``lpips-alex``),
    otherwise the name in snake case with ST-LPIPS spelled out (``stlpips-vgg`` -> ``st_lpips_vgg``)."""
    return "lpips" if network == "lpips-alex" else network.replace("stlpips", "st_lpips").replace("-", "_")


class LPIPSMetric:
    """LPIPS-style distance on 8-bit rounded images, from the training package's perceptual network.

    ``network`` is one of :data:`EVAL_PERCEPTUAL`. For ``"lpips-alex"``, ``backbone`` is the
    torchvision AlexNet weights file (None: torch hub's cache); nothing is downloaded.
    ``random_backbone=True`` is for tests: :attr:`label` then says "not comparable". :attr:`column`
    is the name the metric's column gets in tables and files (``lpips`` only for true LPIPS).
    """

    def __init__(self, backbone: Optional[str] = None, random_backbone: bool = False,
                 network: str = "lpips-alex") -> None:
        from multirealism.training.perceptual import build_perceptual

        if network not in EVAL_PERCEPTUAL:
            raise ValueError(f"network must be one of {EVAL_PERCEPTUAL}, got {network!r}")
        if network != "lpips-alex" and (backbone is not None or random_backbone):
            raise ValueError(f"backbone/random_backbone apply to lpips-alex only, not {network!r}")
        name = "lpips-random-test-only" if random_backbone else network
        model = build_perceptual(name, backbone_path=backbone, allow_download=False)
        assert model is not None
        self.model = model
        self.column = perceptual_column(network)
        if random_backbone:
            self.label = "LPIPS (random test backbone — not comparable)"
        elif network == "lpips-alex":
            source = os.path.basename(backbone) if backbone else "AlexNet from torch hub cache"
            self.label = f"LPIPS (alex, v0.1; {source})"
        else:
            self.label = f"{model.label}: shift-tolerant LPIPS, stlpips-pytorch weights — not comparable with LPIPS"

    @torch.no_grad()
    def __call__(self, x: Tensor, y: Tensor) -> float:
        x, y = _pair(x, y)
        return float(self.model(quantize_8bit(y), quantize_8bit(x)).mean())
