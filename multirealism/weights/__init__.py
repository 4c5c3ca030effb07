"""The models shipped in the package: ``models.json`` lists each one's file, SHA-256, the fingerprint its
bitstreams carry, its measured bpp range and a summary. Read without torch, so the command line can name
the shipped models in ``--help`` and ``info`` without loading it."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from multirealism.errors import CheckpointError

#: the folder of the shipped weight files and their list
SHIPPED_DIR = Path(__file__).resolve().parent


@functools.lru_cache(maxsize=1)
def shipped_models() -> Tuple[str, Dict[str, Dict[str, Any]]]:
    """``(default name, {name: entry})`` from ``models.json``; an entry has ``file``, ``sha256``,
    ``fingerprint`` (hex of the 8 bytes its bitstreams carry), ``bpp`` (its measured range) and ``summary``."""
    manifest = json.loads((SHIPPED_DIR / "models.json").read_text())
    return manifest["default"], manifest["models"]


def shipped_entry(name: Optional[str] = None) -> Tuple[str, Dict[str, Any]]:
    """``(name, entry)`` of shipped model ``name`` (None: the default); an unknown name is a
    :class:`CheckpointError` listing the shipped ones."""
    default, models = shipped_models()
    name = default if name is None else name
    if name not in models:
        raise CheckpointError(f"no shipped model named {name!r}; shipped: {', '.join(sorted(models))}")
    return name, models[name]


def list_pretrained() -> List[str]:
    """Names of the shipped models, for :meth:`MultiRealismCodec.pretrained` and ``--model``."""
    return sorted(shipped_models()[1])


def default_pretrained() -> str:
    """The shipped model the command line and :meth:`MultiRealismCodec.pretrained` use when none is named."""
    return shipped_models()[0]


def pretrained_info(name: str) -> Dict[str, Any]:
    """The entry of shipped model ``name``; an unknown name is a :class:`CheckpointError` listing the shipped ones."""
    return dict(shipped_entry(name)[1])


def find_pretrained(fingerprint: bytes) -> Optional[str]:
    """Name of the shipped model whose bitstreams carry ``fingerprint``, or None."""
    return next((name for name, entry in shipped_models()[1].items() if entry["fingerprint"] == fingerprint.hex()), None)
