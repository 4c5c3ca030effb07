"""Channel-autoregressive entropy model ("charm", Minnen & Singh 2020) with a hyperprior.

y is split into slices along channels. Each slice's mean and scale are predicted from the
hyper-decoder output and the already decoded slices (at most ``max_support_slices``), and latent
residual prediction (LRP) corrects each decoded slice's quantisation error. z is coded by
CompressAI's ``HyperLatentCodec``. The slice loop stays here rather than in CompressAI's
``ChannelGroupsLatentCodec``, whose per-group latent codecs each own a GaussianConditional (one
coder-table set per slice instead of one shared) and code through its ``build_indexes`` (scales
rounded up) instead of the base's nearest-index fast path.
"""

from __future__ import annotations

from typing import List, Sequence, Tuple

import torch
from compressai.entropy_models import GaussianConditional
from torch import Tensor, nn

from multirealism.components.base import EntropyOutput
from multirealism.components.entropy.hyperprior_base import (
    HyperpriorEntropyModel,
    float32_region,
    hyper_latent_codec,
)
from multirealism.registry import entropy_models


def _slice_transform(in_channels: int, hidden: Sequence[int], out_channels: int) -> nn.Sequential:
    layers: List[nn.Module] = []
    for width in hidden:
        layers += [nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(inplace=True)]
        in_channels = width
    layers.append(nn.Conv2d(in_channels, out_channels, 3, padding=1))
    return nn.Sequential(*layers)


@entropy_models.register("charm")
class ChannelAutoregressive(HyperpriorEntropyModel):
    """Paper scale: ``latent_channels=320, hyper_channels=192, num_slices=10, max_support_slices=5``,
    slice transforms of widths (224, 128) as in Minnen & Singh's reference."""

    def __init__(
        self,
        latent_channels: int = 320,
        hyper_channels: int = 192,
        num_slices: int = 10,
        max_support_slices: int = 5,
        transform_channels: Sequence[int] = (224, 128),
        lrp: bool = True,
        quantization: str = "ste",
        scale_bound: float = 0.11,
    ) -> None:
        super().__init__(latent_channels, quantization)
        if latent_channels % num_slices:
            raise ValueError(f"latent_channels={latent_channels} is not divisible by num_slices={num_slices}")
        self.num_slices = num_slices
        self.max_support_slices = max_support_slices
        self.slice_channels = latent_channels // num_slices
        self.hyper = hyper_latent_codec(latent_channels, hyper_channels)
        self.gaussian_conditional = GaussianConditional(None, scale_bound=scale_bound)
        hidden = list(transform_channels)

        def support(i: int) -> int:
            return latent_channels + self.slice_channels * min(i, max_support_slices)

        self.mean_transforms = nn.ModuleList(
            _slice_transform(support(i), hidden, self.slice_channels) for i in range(num_slices)
        )
        self.scale_transforms = nn.ModuleList(
            _slice_transform(support(i), hidden, self.slice_channels) for i in range(num_slices)
        )
        self.lrp_transforms = (
            nn.ModuleList(
                _slice_transform(support(i) + self.slice_channels, hidden, self.slice_channels)
                for i in range(num_slices)
            )
            if lrp
            else None
        )

    @property
    def num_streams(self) -> int:
        return 1 + self.num_slices

    def _slice_params(self, i: int, hyper_scales: Tensor, hyper_means: Tensor, decoded: List[Tensor]):
        previous = decoded[: self.max_support_slices] if self.max_support_slices >= 0 else decoded
        mean_support = torch.cat([hyper_means, *previous], dim=1)
        scale_support = torch.cat([hyper_scales, *previous], dim=1)
        mu = self.mean_transforms[i](mean_support)
        sigma = self.scale_transforms[i](scale_support)
        return mu, sigma, mean_support

    def _refine(self, i: int, mean_support: Tensor, y_hat_slice: Tensor) -> Tensor:
        if self.lrp_transforms is None:
            return y_hat_slice
        lrp = self.lrp_transforms[i](torch.cat([mean_support, y_hat_slice], dim=1))
        return y_hat_slice + 0.5 * torch.tanh(lrp)

    def _code_slices(self, y: Tensor, params: Tensor, code_slice) -> Tuple[Tensor, Tensor]:
        """ŷ and y's likelihoods, slice by slice: ``code_slice(y_slice, sigma, mu)`` gives a slice's
        quantised values (before LRP) and likelihoods."""
        hyper_scales, hyper_means = self.split_params(params)
        decoded: List[Tensor] = []
        likelihoods: List[Tensor] = []
        for i, y_slice in enumerate(y.chunk(self.num_slices, dim=1)):
            mu, sigma, support = self._slice_params(i, hyper_scales, hyper_means, decoded)
            y_hat_slice, slice_likelihoods = code_slice(y_slice, sigma, mu)
            likelihoods.append(slice_likelihoods)
            decoded.append(self._refine(i, support, y_hat_slice))
        return torch.cat(decoded, dim=1), torch.cat(likelihoods, dim=1)

    def _train_slice(self, y_slice: Tensor, sigma: Tensor, mu: Tensor) -> Tuple[Tensor, Tensor]:
        _, slice_likelihoods = self.gaussian_conditional(y_slice, sigma, mu)  # before the draw of a noise ŷ
        return self.quantize_for_decoder(y_slice, mu), slice_likelihoods

    def forward(self, y: Tensor) -> EntropyOutput:
        with float32_region(y):
            y = y.float()
            hyper_out = self.hyper(y)
            y_hat, y_likelihoods = self._code_slices(y, hyper_out["params"], self._train_slice)
        return EntropyOutput(y_hat, {"y": y_likelihoods, **hyper_out["likelihoods"]})

    def rounded_likelihoods(self, y: Tensor) -> EntropyOutput:
        with float32_region(y):
            y = y.float()
            params, z_likelihoods = self.rounded_hyper_likelihoods(y)
            y_hat, y_likelihoods = self._code_slices(y, params, self.rounded_gaussian)
        return EntropyOutput(y_hat, {"y": y_likelihoods, "z": z_likelihoods})

    def compress(self, y: Tensor) -> Tuple[List[List[bytes]], Tuple[int, int]]:
        hyper_out = self.hyper.compress(y)
        hyper_scales, hyper_means = self.split_params(hyper_out["params"])
        streams: List[List[bytes]] = list(hyper_out["strings"])
        decoded: List[Tensor] = []
        for i, y_slice in enumerate(y.chunk(self.num_slices, dim=1)):
            mu, sigma, support = self._slice_params(i, hyper_scales, hyper_means, decoded)
            streams.append(self.compress_gaussian(y_slice, sigma, mu))
            decoded.append(self._refine(i, support, torch.round(y_slice - mu) + mu))
        z_shape = hyper_out["shape"]
        return streams, (int(z_shape[0]), int(z_shape[1]))

    def decompress(self, strings: List[List[bytes]], shape: Tuple[int, int]) -> Tensor:
        params = self.hyper.decompress([strings[0]], shape)["params"]
        hyper_scales, hyper_means = self.split_params(params)
        decoded: List[Tensor] = []
        for i in range(self.num_slices):
            mu, sigma, support = self._slice_params(i, hyper_scales, hyper_means, decoded)
            y_hat_slice = self.decompress_gaussian(strings[1 + i], sigma, mu)
            decoded.append(self._refine(i, support, y_hat_slice))
        return torch.cat(decoded, dim=1)
