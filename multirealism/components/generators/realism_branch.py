"""A rate–distortion synthesis and a realism synthesis of the same shape, blended by β.

``x̂(β) = x̂₀ + (β / β_max) · (r(ŷ, β) − x̂₀)``: ``x̂₀`` is the base layers' reconstruction at β = 0 (the
rate–distortion warm-up, kept frozen), ``r`` a whole β-conditioned synthesis transform trained adversarially.
β = 0 is the base reconstruction bit for bit, so the realism stage cannot cost the low-distortion end any
PSNR; β_max is the realism synthesis alone. Unlike a head on the decoded image, ``r`` synthesises from the
latent at every resolution, which is where texture has to come from.
"""

from __future__ import annotations

from typing import List, Sequence, Type

from torch import Tensor

from multirealism.components.conditioning import beta_as_map
from multirealism.components.generators.residual import NoisyResidualGenerator, ResidualConditionalGenerator
from multirealism.registry import generators


@generators.register("residual_cond_branched")
class RealismBranchGenerator(ResidualConditionalGenerator):
    """``residual_cond`` (the base, always at β = 0) plus ``realism``, a second ``residual_cond`` of the same
    widths. The base keeps ``residual_cond``'s parameter names, so a warm-up checkpoint initialises it; the
    realism stage starts the branch as a copy of the base (``init.copy_parts: {generator.realism:
    generator}``), where every β decodes to the base image, and trains only ``generator.realism``.
    Decoding at β > 0 runs both syntheses."""

    #: the class of the realism synthesis
    realism_synthesis: Type[ResidualConditionalGenerator] = ResidualConditionalGenerator

    def __init__(
        self,
        latent_channels: int = 96,
        channels: int = 64,
        mid_channels: int = 32,
        blocks_per_stage: int = 2,
        conditioner: str = "fourier",
        cond_channels: int = 64,
        num_frequencies: int = 10,
        beta_max: float = 5.12,
        table_betas: Sequence[float] = (0.0, 1.28, 2.56, 5.12),
    ) -> None:
        args = (latent_channels, channels, mid_channels, blocks_per_stage, conditioner, cond_channels,
                num_frequencies, beta_max, table_betas)
        super().__init__(*args)
        self.realism = self.realism_synthesis(*args)

    def forward(self, y_hat: Tensor, beta: "float | Tensor") -> Tensor:
        return self.forward_betas(y_hat, [beta])[0]

    def forward_betas(self, y_hat: Tensor, betas: Sequence["float | Tensor"]) -> List[Tensor]:
        """The base image is synthesised once and blended with the realism branch's output per β."""
        maps = [beta_as_map(beta, y_hat.shape[0], y_hat.device) for beta in betas]
        if not maps:
            return []
        base = super().forward(y_hat, 0.0)
        outputs = []
        for beta_map in maps:
            if not bool((beta_map != 0).any()):
                outputs.append(base)  # β = 0 everywhere: the base reconstruction, without running the branch
                continue
            weight = self.conditioner.resize(beta_map / self.beta_max, (base.shape[-2], base.shape[-1]))
            outputs.append(base + weight * (self.realism(y_hat, beta_map) - base))
        return outputs


@generators.register("residual_cond_branched_noisy")
class NoisyRealismBranchGenerator(RealismBranchGenerator):
    """``residual_cond_branched`` whose realism synthesis has noise inputs (``realism.noise``; the base never
    has any). Started from a plain branch's weights with ``init.new_parts: [generator.realism.noise]``, it
    decodes the same images until the noise scales train."""

    realism_synthesis = NoisyResidualGenerator

    def __init__(
        self,
        latent_channels: int = 96,
        channels: int = 64,
        mid_channels: int = 32,
        blocks_per_stage: int = 2,
        conditioner: str = "fourier",
        cond_channels: int = 64,
        num_frequencies: int = 10,
        beta_max: float = 5.12,
        table_betas: Sequence[float] = (0.0, 1.28, 2.56, 5.12),
    ) -> None:
        super().__init__(latent_channels, channels, mid_channels, blocks_per_stage, conditioner, cond_channels,
                         num_frequencies, beta_max, table_betas)
