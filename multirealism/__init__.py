"""multirealism: learned image compression with a receiver-chosen realism weight β.

Attributes are imported on first use (PEP 562), so ``import multirealism`` and the command line's
``--help`` stay fast and do not load torch.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any, Dict, List

__version__ = "0.1.0"

# compressai imports torch_geometric, which calls the deprecated torch.jit.script at import time; silence
# exactly that deprecation message from that torch module, nothing else.
warnings.filterwarnings(
    "ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning, module=r"torch\.jit\._script"
)

_EXPORTS: Dict[str, str] = {
    "CodecOutput": "multirealism.codec",
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
    "container": "multirealism.container",
    "create_codec": "multirealism.presets",
    "list_codecs": "multirealism.presets",
    "register_codec": "multirealism.presets",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'multirealism' has no attribute {name!r}")
    value = importlib.import_module(module)
    if name != module.rsplit(".", 1)[-1]:
        value = getattr(value, name)
    globals()[name] = value
    return value


def __dir__() -> List[str]:
    return sorted(set(globals()) | set(__all__))
