"""Training: the LightningModule, the objective's parts and the LightningCLI entry point."""

from multirealism.training.beta_sampling import BetaSampler
from multirealism.training.checkpoint_io import AtomicCheckpointIO
from multirealism.training.discriminators import HiFiCDiscriminator, MultiScalePatchDiscriminator, TimmDiscriminator
from multirealism.training.losses import discriminator_loss, generator_adversarial_loss
from multirealism.training.module import MultiRealismModule
from multirealism.training.perceptual import PerceptualWeightsError, build_perceptual
from multirealism.training.quality import RateLadder
from multirealism.training.rate_schedule import FixedLambda, HiFiCLambdaSchedule, RateWeight
from multirealism.training.settings import DiscriminatorSettings, Initialization, Objective, Optimization

__all__ = [
    "AtomicCheckpointIO",
    "BetaSampler",
    "DiscriminatorSettings",
    "FixedLambda",
    "HiFiCDiscriminator",
    "HiFiCLambdaSchedule",
    "MultiRealismModule",
    "MultiScalePatchDiscriminator",
    "Objective",
    "Optimization",
    "Initialization",
    "PerceptualWeightsError",
    "RateLadder",
    "RateWeight",
    "TimmDiscriminator",
    "build_perceptual",
    "discriminator_loss",
    "generator_adversarial_loss",
]
