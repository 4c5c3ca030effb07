"""multirealism: learned image compression with a receiver-chosen realism weight β."""

from multirealism.codec import CodecOutput, MultiRealismCodec
from multirealism.errors import (
    BitstreamError,
    CheckpointError,
    ImageInputError,
    ModelMismatchError,
    MultiRealismError,
)
from multirealism.registry import discriminators, encoders, entropy_models, generators

__version__ = "0.1.0"

__all__ = [
    "BitstreamError",
    "CheckpointError",
    "CodecOutput",
    "ImageInputError",
    "ModelMismatchError",
    "MultiRealismCodec",
    "MultiRealismError",
    "discriminators",
    "encoders",
    "entropy_models",
    "generators",
]
