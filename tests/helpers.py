"""Helpers the tests import (``from helpers import ...``): seeded tiny codecs, the ``small``
architecture's config at test width, and natural test images."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Set

import numpy as np
import torch

from multirealism import MultiRealismCodec
from multirealism.zoo import create_codec

if TYPE_CHECKING:
    from multirealism.training import MultiRealismModule

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


def staged_module(config: Dict[str, Any], warmup: Path, **init_args: Any) -> "MultiRealismModule":
    """A training module for a later stage of a recipe: a codec of ``config`` (seeded) started from the
    ``warmup`` weights file with ``init_args`` (``new_parts``, ``copy_parts``, ``trainable``), a tiny
    perceptual network, a fixed λ and a fast learning rate."""
    from multirealism.training import FixedLambda, Initialization, MultiRealismModule, Objective, Optimization

    torch.manual_seed(1)
    codec = MultiRealismCodec.from_config(config)
    return MultiRealismModule(codec, objective=Objective(perceptual="lpips-random-test-only"),
                              rate_weight=FixedLambda(0.01), optimization=Optimization(lr=1e-2),
                              init=Initialization(str(warmup), **init_args))


def entries_moved_by_fit(module: "MultiRealismModule", x: torch.Tensor, steps: int = 3) -> Set[str]:
    """The names of the codec's state entries that ``steps`` training steps on the batch ``x`` change."""
    import lightning as L
    from torch.utils.data import DataLoader

    before = {k: v.clone() for k, v in module.codec.state_dict().items()}
    L.Trainer(accelerator="cpu", max_steps=steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
              enable_model_summary=False, limit_val_batches=0).fit(module, DataLoader(x, batch_size=len(x)))
    return {k for k, v in module.codec.state_dict().items() if not torch.equal(before[k], v)}
