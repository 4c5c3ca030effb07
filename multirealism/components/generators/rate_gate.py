"""A positive gain per rate level on the realism head's residual.

A head trained on many rate levels while blind to them settles on one strength for all; giving the head
itself the level (``residual_cond_rate_refined``) let it reach more realism at the low rates but also changed
*what* it adds, and its outputs stopped falling at every step of β. This gate changes only *how much*: it
scales the trained head's residual by ``exp(f(s))``, ``s`` the latent's mean log quantisation step, so within
a level the β path keeps the trained head's shape.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from multirealism.components.rate_control import require_log_step


class RateGate(nn.Module):
    """``exp(f(s))`` for the ``(B,)`` mean log quantisation steps ``s``, ``f`` a one-hidden-layer MLP whose
    last layer starts at zero: a fresh gate is 1 at every rate, so a trained head starts a gated one unchanged.
    A smooth function of ``s`` rather than a table, so fractional qualities get a gain between their levels'."""

    def __init__(self, hidden: int = 16) -> None:
        super().__init__()
        if hidden < 1:
            raise ValueError(f"hidden must be positive, got {hidden}")
        self.net = nn.Sequential(nn.Linear(1, hidden), nn.Tanh(), nn.Linear(hidden, 1))
        nn.init.zeros_(self.net[2].weight)
        nn.init.zeros_(self.net[2].bias)

    def forward(self, log_step: "Tensor | None", batch: int) -> Tensor:
        log_step = require_log_step(log_step, batch, "a rate-gated realism head")
        dtype = self.net[0].weight.dtype
        return torch.exp(self.net(log_step.to(dtype).view(-1, 1))).view(-1)
