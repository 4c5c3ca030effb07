"""The classical codecs by name, with their Pillow format and options and a check of whether this
Pillow build can run them: torch-free, so ``multirealism evaluate --help`` can list them.

:mod:`multirealism.evaluation.baselines` encodes and decodes with them.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Callable, Dict, Optional, Tuple

from PIL import features

DEFAULT_QUALITIES: Tuple[int, ...] = (10, 20, 30, 50, 70, 90)


def _pillow_feature(name: str) -> Callable[[], Optional[str]]:
    def check() -> Optional[str]:
        return None if features.check(name) else f"this Pillow build has no {name} support"

    return check


def _plugin(module: str, package: str, register: Optional[str] = None) -> Callable[[], Optional[str]]:
    def check() -> Optional[str]:
        try:
            loaded = importlib.import_module(module)
        except ImportError:
            return f"{package} is not installed (pip install {package})"
        if register:
            getattr(loaded, register)()
        return None

    return check


@dataclass(frozen=True)
class ClassicalCodec:
    """A Pillow format with its save options; ``check()`` returns why it is unusable, or None."""

    name: str
    pillow_format: str
    check: Callable[[], Optional[str]]
    options: Dict[str, object] = field(default_factory=dict)

    def unavailable_reason(self) -> Optional[str]:
        return self.check()


CODECS: Dict[str, ClassicalCodec] = {
    "jpeg": ClassicalCodec("jpeg", "JPEG", _pillow_feature("jpg")),
    "webp": ClassicalCodec("webp", "WEBP", _pillow_feature("webp")),
    "avif": ClassicalCodec("avif", "AVIF", _pillow_feature("avif"), {"speed": 6}),
    "jxl": ClassicalCodec("jxl", "JXL", _plugin("pillow_jxl", "pillow-jxl-plugin")),
    "heic": ClassicalCodec("heic", "HEIF", _plugin("pillow_heif", "pillow-heif", "register_heif_opener")),
}


def get_codec(name: str) -> ClassicalCodec:
    try:
        return CODECS[name]
    except KeyError:
        raise ValueError(f"unknown baseline codec {name!r}; choose from {sorted(CODECS)}") from None
