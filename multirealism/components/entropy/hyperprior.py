"""Mean-scale hyperprior (Minnen et al. 2018) with ELIC's hyper transforms, assembled from
CompressAI's latent codecs (``HyperpriorLatentCodec`` over ``HyperLatentCodec`` and
``GaussianConditionalLatentCodec``); compress/decompress use the base's fast Gaussian path."""

from __future__ import annotations

from typing import List, Tuple

from compressai.entropy_models import GaussianConditional
from compressai.latent_codecs import GaussianConditionalLatentCodec, HyperLatentCodec, HyperpriorLatentCodec
from torch import Tensor

from multirealism.components.base import EntropyOutput
from multirealism.components.entropy.hyperprior_base import (
    HyperpriorEntropyModel,
    check_quantization,
    float32_region,
    hyper_latent_codec,
)
from multirealism.registry import entropy_models


@entropy_models.register("hyperprior")
class MeanScaleHyperprior(HyperpriorEntropyModel):
    """z coded with a factorised prior; y with a Gaussian whose scale and mean come from ẑ.

    Paper scale: ``latent_channels=320, hyper_channels=192`` (hyper-decoder output 640).
    """

    def __init__(
        self,
        latent_channels: int = 320,
        hyper_channels: int = 192,
        quantization: str = "ste",
        scale_bound: float = 0.11,
    ) -> None:
        super().__init__(latent_channels, quantization)
        y_codec = GaussianConditionalLatentCodec(
            gaussian_conditional=GaussianConditional(None, scale_bound=scale_bound),
            quantizer=check_quantization(quantization),
            chunks=("scales", "means"),
        )
        self.latent_codec = HyperpriorLatentCodec(
            latent_codec={"y": y_codec, "hyper": hyper_latent_codec(latent_channels, hyper_channels)}
        )

    @property
    def hyper(self) -> HyperLatentCodec:  # type: ignore[override]
        return self.latent_codec.hyper

    @property
    def gaussian_conditional(self) -> GaussianConditional:  # type: ignore[override]
        return self.latent_codec.y.gaussian_conditional

    @property
    def num_streams(self) -> int:
        return 2

    def forward(self, y: Tensor) -> EntropyOutput:
        with float32_region(y):
            out = self.latent_codec(y.float())
        return EntropyOutput(out["y_hat"], out["likelihoods"])

    def rounded_likelihoods(self, y: Tensor) -> EntropyOutput:
        with float32_region(y):
            params, z_likelihoods = self.rounded_hyper_likelihoods(y.float())
            scales, means = self.split_params(params)
            y_hat, y_likelihoods = self.rounded_gaussian(y.float(), scales, means)
        return EntropyOutput(y_hat, {"y": y_likelihoods, "z": z_likelihoods})

    def compress(self, y: Tensor) -> Tuple[List[List[bytes]], Tuple[int, int]]:
        hyper_out = self.hyper.compress(y)
        scales, means = self.split_params(hyper_out["params"])
        y_strings = self.compress_gaussian(y, scales, means)
        z_shape = hyper_out["shape"]
        return [*hyper_out["strings"], y_strings], (int(z_shape[0]), int(z_shape[1]))

    def decompress(self, strings: List[List[bytes]], shape: Tuple[int, int]) -> Tensor:
        params = self.hyper.decompress([strings[0]], shape)["params"]
        scales, means = self.split_params(params)
        return self.decompress_gaussian(strings[1], scales, means)
