"""multirealism: learned image compression with a receiver-chosen realism weight β.

Attributes are imported on first use (PEP 562), so ``import multirealism`` and the command line's
``--help`` stay fast and do not load torch.
"""

from __future__ import annotations

import warnings
from typing import Dict

from multirealism.lazy_exports import lazy_exports

__version__ = "0.1.0"

# compressai imports torch_geometric, which calls the deprecated torch.jit.script at import time; silence
# exactly that deprecation message from that torch module, nothing else.
warnings.filterwarnings(
    "ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning, module=r"torch\.jit\._script"
)

_EXPORTS: Dict[str, str] = {
    "CodecOutput": "multirealism.codec",
    "EncodedLatent": "multirealism.codec",
    "LatentRefinement": "multirealism.latent_refinement",
    "RateDistortionObjective": "multirealism.objective",
    "MultiRealismCodec": "multirealism.codec",
    "BitstreamError": "multirealism.errors",
    "CheckpointError": "multirealism.errors",
    "ImageInputError": "multirealism.errors",
    "ModelMismatchError": "multirealism.errors",
    "MultiRealismError": "multirealism.errors",
    "ModelOutputError": "multirealism.errors",
    "discriminators": "multirealism.registry",
    "encoders": "multirealism.registry",
    "entropy_models": "multirealism.registry",
    "generators": "multirealism.registry",
    "bitstream_format": "multirealism.bitstream_format",
    "create_codec": "multirealism.zoo",
    "find_pretrained": "multirealism.weights",
    "list_codecs": "multirealism.zoo",
    "list_pretrained": "multirealism.weights",
    "load_image": "multirealism.imageio",
    "refine": "multirealism.latent_refinement",
    "register_codec": "multirealism.zoo",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
