"""Helpers the tests import (``from helpers import ...``): seeded tiny codecs, the ``small``
architecture's config at test width, and natural test images."""

from __future__ import annotations

from typing import Any, Dict

import numpy as np
import torch

from multirealism import MultiRealismCodec
from multirealism.zoo import create_codec

SMALL_GENERATOR_ARGS: Dict[str, Any] = {"latent_channels": 16, "channels": 12, "mid_channels": 8,
                                        "blocks_per_stage": 1, "cond_channels": 8, "num_frequencies": 4}


def make_tiny_codec(entropy_model: str = "hyperprior", seed: int = 0, **kwargs) -> MultiRealismCodec:
    """A deterministic tiny codec (preset ``tiny``) in eval mode with its coder tables built;
    ``conditioner="table"`` picks TableCond."""
    torch.manual_seed(seed)
    codec = create_codec("tiny", entropy_model=entropy_model, **kwargs).eval()
    codec.update()
    return codec


def small_codec_config(generator: str = "residual_cond", **generator_args: Any) -> Dict[str, Any]:
    """A codec config of the ``small`` architecture at test width (a few thousand parameters):
    GDN encoder, hyperprior, and ``generator`` (a residual_cond variant) with ``generator_args`` added."""
    return {
        "encoder": {"name": "gdn", "args": {"channels": 12, "latent_channels": 16}},
        "entropy_model": {"name": "hyperprior", "args": {"latent_channels": 16, "hyper_channels": 8}},
        "generator": {"name": generator, "args": {**SMALL_GENERATOR_ARGS, **generator_args}},
    }


def small_rate_codec_config(generator: str, num_levels: int = 3, **generator_args: Any) -> Dict[str, Any]:
    """:func:`small_codec_config` with gain units for ``num_levels`` rates (what a rate-reading head needs)."""
    config = small_codec_config(generator, **generator_args)
    config["rate_control"] = {"name": "gain", "args": {"latent_channels": 16, "num_levels": num_levels, "min_gain": 0.2}}
    return config


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
