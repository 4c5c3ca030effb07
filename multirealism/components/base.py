"""Interfaces of the four codec components. Registry entries subclass these."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

import torch
from torch import Tensor, nn


class Encoder(nn.Module):
    """Analysis transform: image ``(B, 3, H, W)`` in [0, 1] to latent ``(B, C, H/s, W/s)``."""

    latent_channels: int
    downsampling: int


@dataclass
class EntropyOutput:
    """What an entropy model returns in ``forward``: the quantised latent and the likelihoods."""

    y_hat: Tensor
    likelihoods: Dict[str, Tensor]


class EntropyModel(nn.Module):
    """Codes a latent ``y`` to strings and back; estimates its likelihoods for training.

    ``compress`` returns one list of byte strings per coded stream (e.g. ``[z_strings, y_strings]``,
    each with one entry per image) plus the side shape needed to decode.
    """

    latent_channels: int
    #: spatial factor by which the latent's size must be divisible (hyper-latent downsampling)
    latent_multiple: int

    def compress(self, y: Tensor) -> Tuple[List[List[bytes]], Tuple[int, int]]:
        raise NotImplementedError

    def decompress(self, strings: List[List[bytes]], shape: Tuple[int, int]) -> Tensor:
        raise NotImplementedError

    def update(self, force: bool = False) -> bool:
        """Build the CDF tables used by the range coder (after training or loading weights)."""
        raise NotImplementedError

    def aux_loss(self) -> Tensor:
        """Auxiliary loss of the learned factorised prior (CompressAI convention)."""
        return torch.zeros(())

    def rounded_likelihoods(self, y: Tensor) -> EntropyOutput:
        """ŷ and likelihoods of ``y`` rounded exactly as :meth:`compress` rounds it, with
        straight-through gradients: the objective of encoder-side latent refinement."""
        raise NotImplementedError(f"{type(self).__name__} does not support latent refinement")

    @property
    def num_streams(self) -> int:
        """How many string lists ``compress`` returns."""
        raise NotImplementedError

    def stream_symbol_counts(self, latent_shape: Tuple[int, int]) -> List[int]:
        """Symbols coded per image in each stream, for a hyper-latent of ``latent_shape`` (bounds
        how far the rANS decoder may read)."""
        raise NotImplementedError


class ConditionalGenerator(nn.Module):
    """Synthesis transform conditioned on the realism weight β.

    ``beta`` is a float, a ``(B,)`` tensor (one value per image) or a ``(B, 1, H, W)`` map at image
    resolution that gives each region its own realism.
    """

    beta_max: float
    latent_channels: int
    #: True for generators that also take ``log_step``, the ``(B,)`` mean log quantisation step of
    #: ``y_hat`` (:func:`~multirealism.components.rate_control.latent_log_step`), as a keyword of
    #: ``forward`` and ``forward_betas``; the codec passes it only to them
    reads_rate: bool = False

    def forward(self, y_hat: Tensor, beta: "float | Tensor") -> Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def forward_betas(self, y_hat: Tensor, betas: Sequence["float | Tensor"]) -> List[Tensor]:
        """One image per β in ``betas`` from the same ``y_hat`` (what a receiver's β sweep decodes);
        generators whose work is partly β-independent override it to do that part once."""
        return [self(y_hat, beta) for beta in betas]


class Discriminator(nn.Module):
    """Scores realism of ``x`` given the quantised latent and β; returns logits."""

    def forward(self, x: Tensor, y_hat: Tensor, beta: "float | Tensor") -> Tensor:  # pragma: no cover
        raise NotImplementedError
