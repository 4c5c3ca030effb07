"""Built-in codec components; importing this package registers them (discriminators are training
components: :mod:`multirealism.training.discriminators`)."""

from multirealism.components.base import ConditionalGenerator, Discriminator, Encoder, EntropyModel
from multirealism.components.encoder import ElicEncoder
from multirealism.components.entropy import ChannelAutoregressive, MeanScaleHyperprior
from multirealism.components.gdn_encoder import GdnEncoder
from multirealism.components.generator import ElicConditionalGenerator
from multirealism.components.rate_control import GainUnits, QuantizationStep, RateControl
from multirealism.components.rate_gate import RateGate
from multirealism.components.realism_refiner import RateGatedRefinedGenerator, RealismRefiner
from multirealism.components.residual_generator import ResidualConditionalGenerator

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
    "QuantizationStep",
    "RateControl",
    "RealismRefiner",
    "RateGatedRefinedGenerator",
    "RateGate",
    "ResidualConditionalGenerator",
]
