"""β-conditioned generators (synthesis transforms): the paper's ELIC-style ``elic_cond``, the CPU-sized
``residual_cond`` (``residual_cond_noisy`` with noise inputs), ``residual_cond_branched`` (a frozen
rate–distortion synthesis blended by β with a realism synthesis; ``residual_cond_branched_noisy``: the
realism synthesis has noise inputs) and ``residual_cond_rate_gated`` (``residual_cond`` with a rate-gated
realism head)."""

from multirealism.components.generators.elic import ConditionedBottleneck, ElicConditionalGenerator
from multirealism.components.generators.noise import NoiseInjection
from multirealism.components.generators.rate_gate import RateGate
from multirealism.components.generators.realism_branch import NoisyRealismBranchGenerator, RealismBranchGenerator
from multirealism.components.generators.realism_head import RateGatedRefinedGenerator, RealismRefiner
from multirealism.components.generators.residual import NoisyResidualGenerator, ResidualConditionalGenerator

__all__ = [
    "ConditionedBottleneck",
    "ElicConditionalGenerator",
    "NoiseInjection",
    "NoisyRealismBranchGenerator",
    "NoisyResidualGenerator",
    "RateGate",
    "RateGatedRefinedGenerator",
    "RealismBranchGenerator",
    "RealismRefiner",
    "ResidualConditionalGenerator",
]
