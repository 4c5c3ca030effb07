"""Shared fixtures: seeded tiny codecs and natural test images shipped by scikit-image."""

from __future__ import annotations

import warnings
from typing import Callable

import numpy as np
import pytest
import torch

from multirealism import MultiRealismCodec
from multirealism.presets import tiny_config

warnings.filterwarnings("ignore", message=".*torch.jit.script.*")


def make_tiny_codec(entropy_model: str = "hyperprior", seed: int = 0, **kwargs) -> MultiRealismCodec:
    """A deterministic tiny codec in eval mode with its coder tables built."""
    torch.manual_seed(seed)
    codec = MultiRealismCodec.from_config(tiny_config(entropy_model, **kwargs)).eval()
    codec.update()
    return codec


@pytest.fixture
def tiny_codec_factory() -> Callable[..., MultiRealismCodec]:
    return make_tiny_codec


def natural_image(name: str = "astronaut", size: int = 256) -> torch.Tensor:
    """A centre crop of a scikit-image sample image as a (3, size, size) float tensor in [0, 1]."""
    from skimage import data

    img = np.asarray(getattr(data, name)())
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    img = img[..., :3]
    h, w = img.shape[:2]
    top, left = (h - size) // 2, (w - size) // 2
    crop = img[top : top + size, left : left + size]
    return torch.from_numpy(np.ascontiguousarray(crop)).permute(2, 0, 1).float() / 255.0


@pytest.fixture
def astronaut() -> torch.Tensor:
    return natural_image("astronaut", 256)
