"""Regenerate ``fitted_tiny_{hyperprior,charm}.safetensors.gz``: tiny codecs fitted for rate and MSE.

The real-bytes rate test needs an entropy model whose prior matches its latents (a random one codes
far from its own likelihood estimate), so these weights come from a short, seeded rate-distortion
fit on scikit-image's ``astronaut``. Run: ``python tests/data/make_trained_tiny.py`` (minutes on CPU).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from skimage import data

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests/, for compact_codec

from compact_codec import round_parameters_to_half, save_compact  # noqa: E402

from multirealism import MultiRealismCodec  # noqa: E402
from multirealism.zoo import tiny_config  # noqa: E402


def fit(entropy_model: str, steps: int = 600, crop: int = 64, batch: int = 8, mse_weight: float = 1e4) -> MultiRealismCodec:
    """Adam on bpp + mse_weight·MSE over random crops; the quantiles follow the auxiliary loss."""
    torch.manual_seed(0)
    image = torch.from_numpy(np.asarray(data.astronaut())).permute(2, 0, 1).float() / 255
    codec = MultiRealismCodec.from_config(tiny_config(entropy_model)).train()
    main = [p for n, p in codec.named_parameters() if not n.endswith("quantiles")]
    aux = [p for n, p in codec.named_parameters() if n.endswith("quantiles")]
    opt, aux_opt = torch.optim.Adam(main, lr=2e-3), torch.optim.Adam(aux, lr=1e-2)
    _, h, w = image.shape
    for _ in range(steps):
        corners = torch.stack([torch.randint(0, h - crop, (batch,)), torch.randint(0, w - crop, (batch,))], 1)
        x = torch.stack([image[:, i : i + crop, j : j + crop] for i, j in corners.tolist()])
        out = codec(x)
        loss = out.bpp.mean() + mse_weight * ((out.x_hat - x) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        aux_loss = codec.entropy_model.aux_loss()
        aux_opt.zero_grad()
        aux_loss.backward()
        aux_opt.step()
    return round_parameters_to_half(codec)


if __name__ == "__main__":
    for name in ("hyperprior", "charm"):
        path = HERE / f"fitted_tiny_{name}.safetensors.gz"
        save_compact(fit(name), path)
        print("wrote", path, path.stat().st_size, "bytes")
