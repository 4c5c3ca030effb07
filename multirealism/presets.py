"""Named codec configurations: the paper's scale and a tiny one for CPU tests and the quickstart."""

from __future__ import annotations

from typing import Any, Dict


def paper_config(entropy_model: str = "charm") -> Dict[str, Any]:
    """Agustsson et al. 2023 scale: ELIC encoder 192/320, generator 256/128, hyperprior 192."""
    entropy_args: Dict[str, Any] = {"latent_channels": 320, "hyper_channels": 192}
    if entropy_model == "charm":
        entropy_args.update(num_slices=10, max_support_slices=5)
    return {
        "encoder": {"name": "elic", "args": {"channels": 192, "latent_channels": 320}},
        "entropy_model": {"name": entropy_model, "args": entropy_args},
        "generator": {
            "name": "elic_cond",
            "args": {"latent_channels": 320, "channels": 256, "mid_channels": 128, "beta_max": 5.12},
        },
    }


def tiny_config(entropy_model: str = "hyperprior", conditioner: str = "fourier") -> Dict[str, Any]:
    """A few tens of thousands of parameters: for tests, CI and the 2-core quickstart."""
    entropy_args: Dict[str, Any] = {"latent_channels": 16, "hyper_channels": 8}
    if entropy_model == "charm":
        entropy_args.update(num_slices=4, max_support_slices=2, transform_channels=[16])
    return {
        "encoder": {
            "name": "elic",
            "args": {"channels": 16, "latent_channels": 16, "blocks_per_stage": 1, "attention": False},
        },
        "entropy_model": {"name": entropy_model, "args": entropy_args},
        "generator": {
            "name": "elic_cond",
            "args": {
                "latent_channels": 16,
                "channels": 16,
                "mid_channels": 8,
                "blocks_per_stage": 1,
                "attention": False,
                "conditioner": conditioner,
                "cond_channels": 16,
                "num_frequencies": 4,
                "beta_max": 5.12,
            },
        },
    }
