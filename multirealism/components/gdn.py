"""GDN that can be built on the ``meta`` device, where checkpoint loading checks shapes before allocating."""

from __future__ import annotations

import torch
from compressai.layers import GDN
from torch import nn


class MetaSafeGDN(GDN):
    """compressai's ``GDN(in_channels, inverse)`` with the same parameters, buffers and initial values,
    buildable under ``torch.device("meta")``: compressai makes the parametrizers' ``pedestal`` with the
    legacy ``torch.Tensor`` constructor, which ignores the default device, so its initialisation would
    mix CPU and meta tensors."""

    def __init__(self, in_channels: int, inverse: bool = False) -> None:
        with torch.device("cpu"):
            super().__init__(1, inverse=inverse)  # one channel: the parametrizers, where compressai can build them
        device = torch.empty(0).device  # the caller's default device
        for reparam in (self.beta_reparam, self.gamma_reparam):
            reparam.to(device)
        self.beta = nn.Parameter(self.beta_reparam.init(torch.ones(in_channels)))
        self.gamma = nn.Parameter(self.gamma_reparam.init(0.1 * torch.eye(in_channels)))
