"""Base of the hyperprior entropy models: hyper transforms, the factorised prior on z, quantisation
modes and the fast Gaussian coding path for y.

Both entropy models in this package code ``z`` with CompressAI's ``HyperLatentCodec`` (h_a, an
EntropyBottleneck, h_s) and ``y`` with a GaussianConditional; they differ only in how ``y``'s
scales and means are predicted from the hyper-decoder output (always split scales first, then means).
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, List, Optional, Tuple

import torch
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from compressai.latent_codecs import HyperLatentCodec
from compressai.models.utils import conv, deconv
from compressai.ops import quantize_ste
from compressai.models.google import get_scale_table
from torch import Tensor, nn

from multirealism.components.base import EntropyModel
from multirealism.errors import require_finite

QUANTIZATION_MODES = ("ste", "noise")


@contextlib.contextmanager
def float32_region(x: Tensor) -> Iterator[None]:
    """Disable autocast so likelihoods and rates are computed in float32 under mixed precision."""
    with torch.autocast(device_type=x.device.type, enabled=False):
        yield


def hyper_analysis(latent_channels: int, hyper_channels: int) -> nn.Sequential:
    """ELIC's h_a: 3x3 conv, then two stride-2 5x5 convs (z is y downsampled by 4)."""
    return nn.Sequential(
        conv(latent_channels, hyper_channels, kernel_size=3, stride=1),
        nn.ReLU(inplace=True),
        conv(hyper_channels, hyper_channels, kernel_size=5, stride=2),
        nn.ReLU(inplace=True),
        conv(hyper_channels, hyper_channels, kernel_size=5, stride=2),
    )


def hyper_synthesis(hyper_channels: int, out_channels: int) -> nn.Sequential:
    """ELIC's h_s: two stride-2 5x5 deconvs, then a 3x3 to ``out_channels``."""
    mid = hyper_channels * 3 // 2
    return nn.Sequential(
        deconv(hyper_channels, hyper_channels, kernel_size=5, stride=2),
        nn.ReLU(inplace=True),
        deconv(hyper_channels, mid, kernel_size=5, stride=2),
        nn.ReLU(inplace=True),
        deconv(mid, out_channels, kernel_size=3, stride=1),
    )


def hyper_latent_codec(latent_channels: int, hyper_channels: int) -> HyperLatentCodec:
    """z's codec: ELIC's h_a, a factorised prior on z, and h_s to ``2 * latent_channels``
    parameters (y's scales, then its means)."""
    h_a = hyper_analysis(latent_channels, hyper_channels)
    h_a.register_forward_hook(_require_finite_z)
    return HyperLatentCodec(
        entropy_bottleneck=EntropyBottleneck(hyper_channels),
        h_a=h_a,
        h_s=hyper_synthesis(hyper_channels, 2 * latent_channels),
    )


def _require_finite_z(module: nn.Module, inputs: Tuple[Tensor, ...], z: Tensor) -> None:
    """Outside training, refuse a non-finite z before it reaches the rANS coder (which would hang on it)."""
    if not module.training and not torch.is_grad_enabled():
        require_finite(z, "the hyper-latent z")


def check_quantization(quantization: str) -> str:
    if quantization not in QUANTIZATION_MODES:
        raise ValueError(f"quantization must be one of {QUANTIZATION_MODES}, got {quantization!r}")
    return quantization


class HyperpriorEntropyModel(EntropyModel):
    """Base of the hyperprior family. Subclasses own ``hyper`` (a :class:`HyperLatentCodec`) and
    a ``gaussian_conditional`` for y, and predict y's parameters from ``hyper``'s output."""

    latent_multiple = 4
    hyper: HyperLatentCodec
    gaussian_conditional: GaussianConditional

    def __init__(self, latent_channels: int, quantization: str) -> None:
        super().__init__()
        self.latent_channels = latent_channels
        self.quantization = check_quantization(quantization)
        self._coder_tables: Optional[Tuple[Any, ...]] = None

    @property
    def entropy_bottleneck(self) -> EntropyBottleneck:
        return self.hyper.entropy_bottleneck

    def quantize_for_decoder(self, y: Tensor, means: Tensor) -> Tensor:
        """ŷ fed to the synthesis: rounded around the mean in eval; in training STE or noise."""
        if not self.training:
            return torch.round(y - means) + means
        if self.quantization == "ste":
            return quantize_ste(y - means) + means
        return y + torch.empty_like(y).uniform_(-0.5, 0.5)

    @staticmethod
    def split_params(params: Tensor) -> Tuple[Tensor, Tensor]:
        """Scales, then means: the one channel order of every hyper-decoder output here."""
        scales, means = params.chunk(2, dim=1)
        return scales, means

    # -------------------------------------------------------------- Gaussian coding of y (fast path)
    # Same symbols, tables and rANS calls as GaussianConditional.compress/decompress, with
    # nearest-entry scale indexes (see scale_indexes) and without two per-call costs that dominate
    # at paper scale: build_indexes' Python loop over the scale table and re-listing the CDF table.

    def scale_indexes(self, scales: Tensor) -> Tensor:
        """Index of the table scale nearest to each (lower-bounded) scale in log space.

        CompressAI's ``build_indexes`` rounds every scale *up* to the next of its 64 log-spaced
        table entries; that biased choice costs about 1.7% of the y rate on a trained model.
        Rounding to the nearest entry (geometric midpoints as boundaries) is unbiased and costs
        under 0.01%, with the same tables.
        """
        table = self.gaussian_conditional.scale_table
        midpoints = (table[:-1] * table[1:]).sqrt()
        return torch.bucketize(self.gaussian_conditional.lower_bound_scale(scales), midpoints).int()

    def _tables(self) -> Tuple[list, list, list]:
        """The coder's CDF, length and offset tables as Python lists, rebuilt only when a table
        tensor is replaced (``update``, ``.to``) or changed in place (``load_state_dict``)."""
        gc = self.gaussian_conditional
        tensors = (gc.quantized_cdf, gc.cdf_length, gc.offset)
        cached = self._coder_tables
        if cached is None or any(t is not c or t._version != v for t, (c, v) in zip(tensors, cached[0])):
            if any(t.numel() == 0 for t in tensors):
                raise ValueError("Entropy coder tables are not built: call update() first")
            lists = (tensors[0].tolist(), tensors[1].reshape(-1).int().tolist(), tensors[2].reshape(-1).int().tolist())
            cached = (tuple((t, t._version) for t in tensors), lists)
            self._coder_tables = cached
        return cached[1]

    def compress_gaussian(self, y: Tensor, scales: Tensor, means: Tensor) -> List[bytes]:
        """One string per image: y rounded around ``means``, coded under N(0, scales)."""
        gc = self.gaussian_conditional
        for tensor, what in ((y, "the latent y"), (scales, "the predicted scales"), (means, "the predicted means")):
            require_finite(tensor, what)  # non-finite symbols or indexes would hang the rANS coder
        symbols = gc.quantize(y, "symbols", means)
        indexes = self.scale_indexes(scales)
        cdf, lengths, offsets = self._tables()
        return [
            gc.entropy_coder.encode_with_indexes(
                symbols[i].reshape(-1).tolist(), indexes[i].reshape(-1).tolist(), cdf, lengths, offsets
            )
            for i in range(symbols.shape[0])
        ]

    def decompress_gaussian(self, strings: List[bytes], scales: Tensor, means: Tensor) -> Tensor:
        """Inverse of :meth:`compress_gaussian`: ŷ = decoded symbols + ``means``."""
        gc = self.gaussian_conditional
        if len(strings) != scales.shape[0]:
            raise ValueError(f"{len(strings)} strings for a batch of {scales.shape[0]} images")
        indexes = self.scale_indexes(scales)
        cdf, lengths, offsets = self._tables()
        symbols = [
            gc.entropy_coder.decode_with_indexes(s, indexes[i].reshape(-1).tolist(), cdf, lengths, offsets)
            for i, s in enumerate(strings)
        ]
        values = torch.tensor(symbols, dtype=torch.int32).to(means.device).reshape(indexes.shape)
        return values.to(means.dtype) + means

    def stream_symbol_counts(self, latent_shape: Tuple[int, int]) -> List[int]:
        """z's symbols, then y's split evenly over the remaining streams (one, or one per slice)."""
        zh, zw = latent_shape
        y_streams = self.num_streams - 1
        y_symbols = self.latent_channels * zh * zw * self.latent_multiple**2
        return [self.entropy_bottleneck.channels * zh * zw] + [y_symbols // y_streams] * y_streams

    def update(self, force: bool = False) -> bool:
        updated = self.entropy_bottleneck.update(force=force)
        updated |= self.gaussian_conditional.update_scale_table(get_scale_table(), force=force)
        return updated

    def aux_loss(self) -> Tensor:
        return self.entropy_bottleneck.loss()

    def rounded_hyper_likelihoods(self, y: Tensor) -> Tuple[Tensor, Tensor]:
        """ẑ of ``y`` rounded around z's medians as the coder rounds it, with a straight-through
        gradient, and ẑ's likelihoods (lower-bounded as in training): ``(params, z_likelihoods)``."""
        eb = self.entropy_bottleneck
        z = self.hyper.h_a(y)
        medians = eb._get_medians().reshape(1, -1, 1, 1)
        z_hat = quantize_ste(z - medians) + medians
        values = z_hat.permute(1, 0, 2, 3).reshape(z_hat.shape[1], 1, -1)
        likelihood, _, _ = eb._likelihood(values)
        likelihood = eb.likelihood_lower_bound(likelihood).reshape(z_hat.shape[1], z_hat.shape[0], *z_hat.shape[2:])
        return self.hyper.h_s(z_hat), likelihood.permute(1, 0, 2, 3)

    def rounded_gaussian(self, y: Tensor, scales: Tensor, means: Tensor) -> Tuple[Tensor, Tensor]:
        """``y`` rounded around ``means`` as the coder rounds it (straight-through gradient) and its
        likelihoods under the Gaussian (lower-bounded as in training)."""
        gc = self.gaussian_conditional
        y_hat = quantize_ste(y - means) + means
        likelihood = gc._likelihood(y_hat, scales, means)
        return y_hat, gc.likelihood_lower_bound(likelihood) if gc.use_likelihood_bound else likelihood
