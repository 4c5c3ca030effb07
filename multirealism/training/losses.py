"""Loss terms of the multi-realism objective (Agustsson et al. 2023, Eq. 3):

    λ·rate + k_M·MSE + β·(C_P·LPIPS + C_adv·L_adv)

with HiFiC's non-saturating GAN loss. β may differ per image (``(B,)``) or per region
(``(B, 1, H, W)``); β-weighted terms are computed as maps and weighted where they apply.
"""

from __future__ import annotations

from typing import List, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor

Logits = Union[Tensor, Sequence[Tensor]]


def _as_list(logits: Logits) -> List[Tensor]:
    return [logits] if torch.is_tensor(logits) else list(logits)


def beta_weighted_mean(values: Tensor, beta: Tensor) -> Tensor:
    """Mean over the batch of ``β·values``; ``values`` is ``(B, 1, h, w)``, β is ``(B,)`` or a map
    that is area-resized to ``values``' resolution."""
    if beta.dim() == 1:
        weight = beta.view(-1, 1, 1, 1)
    elif beta.shape[-2:] == values.shape[-2:]:
        weight = beta
    else:
        weight = F.adaptive_avg_pool2d(beta, values.shape[-2:])
    return (weight.to(values.dtype) * values).mean()


def generator_adversarial_map(fake_logits: Logits) -> List[Tensor]:
    """Non-saturating generator loss per logit, −log σ(D(x̂)) = softplus(−D(x̂)), one map per scale."""
    return [F.softplus(-logit.float()) for logit in _as_list(fake_logits)]


def generator_adversarial_loss(fake_logits: Logits, beta: Tensor) -> Tensor:
    """β-weighted non-saturating generator loss, averaged over discriminator scales."""
    maps = generator_adversarial_map(fake_logits)
    return sum(beta_weighted_mean(m, beta) for m in maps) / len(maps)


def discriminator_loss(real_logits: Logits, fake_logits: Logits) -> Tensor:
    """Standard GAN discriminator loss −log σ(D(x)) − log(1 − σ(D(x̂))), averaged over scales."""
    real, fake = _as_list(real_logits), _as_list(fake_logits)
    terms = [F.softplus(-r.float()).mean() + F.softplus(f.float()).mean() for r, f in zip(real, fake)]
    return sum(terms) / len(terms)


def discriminator_accuracy(real_logits: Logits, fake_logits: Logits) -> Tensor:
    """Share of patch logits on the right side of zero (real > 0, fake < 0; a zero counts half), real
    and fake weighted alike, averaged over scales: 0.5 is chance, so a discriminator that is not
    learning shows."""
    real, fake = _as_list(real_logits), _as_list(fake_logits)
    terms = [0.5 * (_share_positive(r) + _share_positive(-f)) for r, f in zip(real, fake)]
    return sum(terms) / len(terms)


def _share_positive(logits: Tensor) -> Tensor:
    sign = torch.sign(logits.detach().float())
    return (0.5 + 0.5 * sign).mean()


def mse_per_image(x_hat: Tensor, x: Tensor) -> Tensor:
    """Mean squared error per image, in float32."""
    return (x_hat.float() - x.float()).pow(2).flatten(1).mean(dim=1)
