"""Entropy models: mean-scale hyperprior and channel-autoregressive (charm)."""

from multirealism.components.entropy.charm import ChannelAutoregressive
from multirealism.components.entropy.hyperprior import MeanScaleHyperprior

__all__ = ["ChannelAutoregressive", "MeanScaleHyperprior"]
