"""β-conditioned generators (synthesis transforms): the paper's ELIC-style ``elic_cond``, the CPU-sized
``residual_cond``, ``residual_cond_branched`` (a frozen rate–distortion synthesis blended by β with a
realism synthesis) and ``residual_cond_rate_gated`` (``residual_cond`` with a rate-gated realism head)."""

from multirealism.components.generators.elic import ConditionedBottleneck, ElicConditionalGenerator
from multirealism.components.generators.noise import NoiseInjection
from multirealism.components.generators.rate_gate import RateGate
from multirealism.components.generators.realism_branch import RealismBranchGenerator
from multirealism.components.generators.realism_head import RateGatedRefinedGenerator, RealismRefiner
from multirealism.components.generators.residual import ResidualConditionalGenerator

__all__ = [
    "ConditionedBottleneck",
    "ElicConditionalGenerator",
    "NoiseInjection",
    "RateGate",
    "RateGatedRefinedGenerator",
    "RealismBranchGenerator",
    "RealismRefiner",
    "ResidualConditionalGenerator",
]
