"""Noise inputs for texture synthesis (StyleGAN's per-layer noise, Karras et al. 2019).

A decoder that must invent texture the bitstream does not carry needs a source of randomness, or it
averages its options into blur. Each injection adds one Gaussian noise map per image, scaled per channel;
the scales start at zero, so a generator gains noise inputs without changing what it decodes until they
train. Outside training the noise comes from a fixed seed, so one bitstream always decodes to one image.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn


class NoiseInjection(nn.Module):
    """``count`` injection points of ``channels`` channels: ``x + scale[index] · n``, ``n ~ N(0, 1)`` of
    shape ``(B, 1, H, W)``."""

    def __init__(self, channels: int, count: int, seed: int = 0) -> None:
        super().__init__()
        if channels < 1 or count < 1:
            raise ValueError(f"channels and count must be positive, got {channels}, {count}")
        self.scales = nn.Parameter(torch.zeros(count, channels))
        self.seed = seed

    def source(self, device: torch.device) -> Optional[torch.Generator]:
        """The generator one forward pass draws from: None (the global one) in training, else a fresh one
        at the fixed seed, so decoding is deterministic."""
        if self.training:
            return None
        generator = torch.Generator(device=device)
        generator.manual_seed(self.seed)
        return generator

    def forward(self, x: Tensor, index: int, source: Optional[torch.Generator]) -> Tensor:
        noise = torch.randn((x.shape[0], 1, x.shape[-2], x.shape[-1]), generator=source, device=x.device,
                            dtype=x.dtype)
        return x + self.scales[index].to(x.dtype).view(1, -1, 1, 1) * noise
