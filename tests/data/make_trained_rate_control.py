"""Regenerate ``fitted_tiny_rate_control.safetensors.gz``: a tiny hyperprior codec with gain units.

The rate-control tests need a codec whose levels really code at different rates and whose prior
matches its latents at every level, so the weights come from a short, seeded fit. It starts from
the committed fixed-rate ``fitted_tiny_hyperprior`` (encoder, entropy model, generator) and trains
all of it plus the gain units on scikit-image's ``astronaut``: each crop gets a level drawn
uniformly and the loss is ``λ(level)·bpp + MSE_WEIGHT·MSE`` with the ladder ``LAMBDAS``.
Run: ``python tests/data/make_trained_rate_control.py`` (a few minutes on one CPU thread).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from skimage import data

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests/, for compact_codec
sys.path.insert(0, str(HERE.parents[1]))  # the repository, so its multirealism is the one imported

from compact_codec import load_compact, round_parameters_to_half, save_compact  # noqa: E402

from multirealism import MultiRealismCodec  # noqa: E402
from multirealism.zoo import tiny_config  # noqa: E402
from multirealism.training.quality import RateLadder  # noqa: E402

LAMBDAS = (16.0, 4.0, 1.0)  # rate weight per level, level 0 = lowest rate
MSE_WEIGHT = 1e4  # as make_trained_tiny.py (λ = 1 there: the top level starts where it ended)
OUTPUT = HERE / "fitted_tiny_rate_control.safetensors.gz"


def fit(steps: int = 1000, crop: int = 64, batch: int = 8) -> MultiRealismCodec:
    """Adam on the ladder's rate + MSE over random crops; the quantiles follow the auxiliary loss."""
    torch.manual_seed(0)
    image = torch.from_numpy(np.asarray(data.astronaut())).permute(2, 0, 1).float() / 255
    config = {
        **tiny_config("hyperprior"),
        "rate_control": {"name": "gain", "args": {"latent_channels": 16, "num_levels": len(LAMBDAS), "min_gain": 0.125}},
    }
    codec = MultiRealismCodec.from_config(config)
    start = load_compact(HERE / "fitted_tiny_hyperprior.safetensors.gz")
    missing, unexpected = codec.load_state_dict(start.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("rate_control.") for k in missing), (missing, unexpected)
    codec.train()
    ladder = RateLadder(lambdas=list(LAMBDAS))
    main = [p for n, p in codec.named_parameters() if not n.endswith("quantiles")]
    aux = [p for n, p in codec.named_parameters() if n.endswith("quantiles")]
    opt, aux_opt = torch.optim.Adam(main, lr=1e-3), torch.optim.Adam(aux, lr=1e-2)
    _, h, w = image.shape
    for step in range(steps):
        corners = torch.stack([torch.randint(0, h - crop, (batch,)), torch.randint(0, w - crop, (batch,))], 1)
        x = torch.stack([image[:, i : i + crop, j : j + crop] for i, j in corners.tolist()])
        levels = ladder.sample(batch)
        out = codec(x, quality=levels)
        rate, _ = ladder.rate_loss(out.bpp, levels)
        loss = rate + MSE_WEIGHT * ((out.x_hat - x) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        aux_loss = codec.entropy_model.aux_loss()
        aux_opt.zero_grad()
        aux_loss.backward()
        aux_opt.step()
        if step % 100 == 0:
            print(f"step {step}: loss {loss.item():.3f}", flush=True)
    return round_parameters_to_half(codec)


if __name__ == "__main__":
    save_compact(fit(), OUTPUT)
    print("wrote", OUTPUT, OUTPUT.stat().st_size, "bytes")
