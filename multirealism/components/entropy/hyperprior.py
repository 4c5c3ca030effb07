"""Mean-scale hyperprior (Minnen et al. 2018) with ELIC's hyper transforms."""

from __future__ import annotations

from typing import List, Tuple

from torch import Tensor

from multirealism.components.base import EntropyOutput
from multirealism.components.entropy.hyper import HyperpriorEntropyModel, float32_region, hyper_synthesis
from multirealism.registry import entropy_models


@entropy_models.register("hyperprior")
class MeanScaleHyperprior(HyperpriorEntropyModel):
    """z coded with a factorised prior; y with a Gaussian whose mean and scale come from ẑ.

    Paper scale: ``latent_channels=320, hyper_channels=192`` (hyper-decoder output 640).
    """

    def __init__(
        self,
        latent_channels: int = 320,
        hyper_channels: int = 192,
        quantization: str = "ste",
        scale_bound: float = 0.11,
    ) -> None:
        super().__init__(latent_channels, hyper_channels, quantization, scale_bound)
        self.h_s = hyper_synthesis(hyper_channels, 2 * latent_channels)

    @property
    def num_streams(self) -> int:
        return 2

    def _params(self, z_hat: Tensor) -> Tuple[Tensor, Tensor]:
        scales, means = self.h_s(z_hat).chunk(2, dim=1)
        return scales, means

    def forward(self, y: Tensor) -> EntropyOutput:
        with float32_region(y):
            y = y.float()
            z_hat, z_likelihoods = self.encode_hyper(y)
            scales, means = self._params(z_hat)
            _, y_likelihoods = self.gaussian_conditional(y, scales, means)
            y_hat = self.quantize_for_decoder(y, means)
        return EntropyOutput(y_hat, {"y": y_likelihoods, "z": z_likelihoods})

    def compress(self, y: Tensor) -> Tuple[List[List[bytes]], Tuple[int, int]]:
        z_strings, z_hat = self.compress_hyper(y)
        scales, means = self._params(z_hat)
        y_strings = self.compress_gaussian(y, scales, means)
        return [z_strings, y_strings], (int(z_hat.shape[-2]), int(z_hat.shape[-1]))

    def decompress(self, strings: List[List[bytes]], shape: Tuple[int, int]) -> Tensor:
        z_hat = self.entropy_bottleneck.decompress(strings[0], shape)
        scales, means = self._params(z_hat)
        return self.decompress_gaussian(strings[1], scales, means)
