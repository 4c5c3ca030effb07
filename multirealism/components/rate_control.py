"""Rate control: one codec, many rates, chosen per image by a continuous quality ``q``.

A rate control rescales the latent before quantisation and undoes it after: ``y·g(q)`` is what the
entropy model codes, ``ŷ·g⁻¹(q)`` is what the generator sees. A larger gain means finer quantisation
and more bits. Because it only wraps the latent, it works with any entropy model (``hyperprior``,
``charm``) unchanged. ``q`` runs from 0 (lowest trained rate) to ``num_levels - 1``; fractional
values interpolate the per-level vectors log-linearly (Cui et al., CVPR 2021, Eq. 9).

Two mechanisms are registered:

- ``gain`` (default choice): per-channel gain and inverse-gain vectors per level (Cui et al. 2021).
  Chosen because per-channel gains let each rate spend bits on different channels, and the separate
  inverse gain lets the decoder correct the quantisation error; the scalar step below is its special
  case (one channel, tied inverse).
- ``qvrf``: one learned quantisation step Δ per level, ``y/Δ`` before and ``ŷ·Δ`` after
  (Tong et al. 2023, QVRF).
"""

from __future__ import annotations

import math
from numbers import Real
from typing import Union

import torch
from torch import Tensor, nn

from multirealism.errors import ParameterError
from multirealism.registry import rate_controls

Quality = Union[float, Tensor]


class RateControl(nn.Module):
    """Interface: per-level latent scaling selected by a quality ``q`` in ``[0, num_levels - 1]``."""

    num_levels: int

    def check_quality(self, quality: Quality, batch: int, device: torch.device) -> Tensor:
        """``quality`` as a float32 ``(batch,)`` tensor; a ValueError if it is outside the trained range."""
        q = torch.as_tensor(quality, dtype=torch.float32, device=device)
        if q.dim() == 0:
            q = q.expand(batch)
        if q.shape != (batch,):
            raise ParameterError(f"quality must be a number or one value per image ({batch}), got shape {tuple(q.shape)}")
        top = self.num_levels - 1
        if not bool(torch.isfinite(q).all()) or bool((q < 0).any()) or bool((q > top).any()):
            raise ParameterError(f"quality must lie in [0, {top}] (this codec's trained levels)")
        return q

    def scale(self, y: Tensor, quality: Quality) -> Tensor:  # pragma: no cover - interface
        """The latent the entropy model quantises and codes at ``quality``."""
        raise NotImplementedError

    def unscale(self, y_hat: Tensor, quality: Quality) -> Tensor:  # pragma: no cover - interface
        """The quantised latent mapped back to the generator's scale."""
        raise NotImplementedError

    def log_step(self, quality: Quality, batch: int, device: torch.device) -> Tensor:  # pragma: no cover
        """Per-image ``(batch,)`` mean over channels of the log quantisation step the generator sees."""
        raise NotImplementedError


def _interpolate(log_vectors: Tensor, q: Tensor) -> Tensor:
    """exp of the log-linear interpolation of ``(L, C)`` rows at qualities ``q``: ``(B, C, 1, 1)``."""
    low = q.floor().clamp(max=log_vectors.shape[0] - 1)
    high = (low + 1).clamp(max=log_vectors.shape[0] - 1)
    frac = (q - low).unsqueeze(1)
    logs = (1 - frac) * log_vectors[low.long()] + frac * log_vectors[high.long()]
    return logs.exp()[:, :, None, None]


class _LogScaling(RateControl):
    """Learned log-gains ``(num_levels, channels)``, lowest level ``min_gain``, highest 1 at start."""

    def __init__(self, num_levels: int, channels: int, min_gain: float) -> None:
        super().__init__()
        if num_levels < 2:
            raise ValueError(f"rate control needs at least 2 levels, got {num_levels} (omit it for one rate)")
        if not 0 < min_gain < 1:
            raise ValueError(f"min_gain must lie in (0, 1), got {min_gain}")
        self.num_levels = int(num_levels)
        start = torch.linspace(math.log(min_gain), 0.0, self.num_levels)
        self.log_gain = nn.Parameter(start[:, None].repeat(1, channels))

    def gain(self, quality: Quality, batch: int, device: torch.device) -> Tensor:
        return _interpolate(self.log_gain, self.check_quality(quality, batch, device))

    def inverse_gain(self, quality: Quality, batch: int, device: torch.device) -> Tensor:
        return self.gain(quality, batch, device).reciprocal()

    # float32 gains promote a reduced-precision latent (AMP) to float32 before it is quantised
    def scale(self, y: Tensor, quality: Quality) -> Tensor:
        return y * self.gain(quality, y.shape[0], y.device)

    def unscale(self, y_hat: Tensor, quality: Quality) -> Tensor:
        return y_hat * self.inverse_gain(quality, y_hat.shape[0], y_hat.device)

    def log_step(self, quality: Quality, batch: int, device: torch.device) -> Tensor:
        return self.inverse_gain(quality, batch, device).log().flatten(1).mean(dim=1)


@rate_controls.register("gain")
class GainUnits(_LogScaling):
    """Per-channel gain and (separately learned) inverse-gain vectors per level (Cui et al. 2021)."""

    def __init__(self, latent_channels: int = 320, num_levels: int = 4, min_gain: float = 0.25) -> None:
        super().__init__(num_levels, latent_channels, min_gain)
        self.latent_channels = int(latent_channels)
        self.log_inverse_gain = nn.Parameter(-self.log_gain.detach().clone())

    def inverse_gain(self, quality: Quality, batch: int, device: torch.device) -> Tensor:
        return _interpolate(self.log_inverse_gain, self.check_quality(quality, batch, device))


@rate_controls.register("qvrf")
class QuantizationStep(_LogScaling):
    """One learned quantisation step Δ = 1/gain per level, shared by all channels (Tong et al. 2023)."""

    def __init__(self, num_levels: int = 4, min_gain: float = 0.25) -> None:
        super().__init__(num_levels, 1, min_gain)


def resolve_quality(rate_control: "RateControl | None", quality: "Quality | None") -> Quality:
    """``quality`` checked for a codec with ``rate_control`` (None: the highest trained level).

    A codec without rate control has one level, so its only quality is 0.
    """
    if quality is not None and not torch.is_tensor(quality) and (isinstance(quality, bool) or not isinstance(quality, Real)):
        raise ParameterError(f"quality must be a number or a tensor, got {quality!r}")
    if rate_control is None:
        if quality is not None and bool((torch.as_tensor(quality) != 0).any()):
            raise ParameterError("this codec has one rate (no rate control): quality must be 0")
        return 0.0
    return float(rate_control.num_levels - 1) if quality is None else quality


def scale_latent(rate_control: "RateControl | None", y: Tensor, quality: Quality) -> Tensor:
    """``rate_control.scale`` or ``y`` unchanged when there is none."""
    return y if rate_control is None else rate_control.scale(y, quality)


def latent_log_step(rate_control: "RateControl | None", quality: Quality, batch: int, device: torch.device) -> Tensor:
    """How coarse the generator's latent is: ``rate_control.log_step`` (0 for a codec with one rate, whose
    quantisation step is 1). A rate-aware generator reads it, so one head can act differently per rate."""
    if rate_control is None:
        return torch.zeros(batch, device=device)
    return rate_control.log_step(quality, batch, device)


def require_log_step(log_step: "Tensor | None", batch: int, reader: str) -> Tensor:
    """``log_step`` if it is the ``(batch,)`` tensor a rate-reading ``reader`` needs, else a ValueError naming it."""
    if log_step is None or log_step.shape != (batch,):
        got = None if log_step is None else tuple(log_step.shape)
        raise ValueError(f"{reader} needs log_step of shape ({batch},), got {got}")
    return log_step


def unscale_latent(rate_control: "RateControl | None", y_hat: Tensor, quality: Quality) -> Tensor:
    """``rate_control.unscale`` or ``y_hat`` unchanged when there is none."""
    return y_hat if rate_control is None else rate_control.unscale(y_hat, quality)
