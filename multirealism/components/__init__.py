"""Built-in codec components; importing this package registers them (discriminators are training
components: :mod:`multirealism.training.discriminators`)."""

from multirealism.components.base import ConditionalGenerator, Discriminator, Encoder, EntropyModel
from multirealism.components.encoders import ElicEncoder, GdnEncoder
from multirealism.components.entropy import ChannelAutoregressive, MeanScaleHyperprior
from multirealism.components.generators import (
    ElicConditionalGenerator,
    NoiseInjection,
    NoisyRealismBranchGenerator,
    NoisyResidualGenerator,
    RateGate,
    RateGatedRefinedGenerator,
    RealismBranchGenerator,
    RealismRefiner,
    ResidualConditionalGenerator,
)
from multirealism.components.rate_control import GainUnits, QuantizationStep, RateControl

__all__ = [
    "ChannelAutoregressive",
    "ConditionalGenerator",
    "Discriminator",
    "ElicConditionalGenerator",
    "ElicEncoder",
    "Encoder",
    "EntropyModel",
    "GainUnits",
    "GdnEncoder",
    "MeanScaleHyperprior",
    "NoiseInjection",
    "NoisyRealismBranchGenerator",
    "NoisyResidualGenerator",
    "QuantizationStep",
    "RateControl",
    "RealismRefiner",
    "RateGatedRefinedGenerator",
    "RealismBranchGenerator",
    "RateGate",
    "ResidualConditionalGenerator",
]
