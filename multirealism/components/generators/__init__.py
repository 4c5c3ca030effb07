"""β-conditioned generators (synthesis transforms): the paper's ELIC-style ``elic_cond``, the CPU-sized
``residual_cond``, and ``residual_cond_rate_gated`` (``residual_cond`` with a rate-gated realism head, the
shipped ``small`` model's)."""

from multirealism.components.generators.elic import ConditionedBottleneck, ElicConditionalGenerator
from multirealism.components.generators.rate_gate import RateGate
from multirealism.components.generators.realism_head import RateGatedRefinedGenerator, RealismRefiner
from multirealism.components.generators.residual import ResidualConditionalGenerator

__all__ = [
    "ConditionedBottleneck",
    "ElicConditionalGenerator",
    "RateGate",
    "RateGatedRefinedGenerator",
    "RealismRefiner",
    "ResidualConditionalGenerator",
]
