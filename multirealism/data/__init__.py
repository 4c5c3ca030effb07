"""Data for multi-realism training: embedded samples, local folders and webdataset shards (local, S3, HTTPS).

Attributes are imported on first use (PEP 562), so ``multirealism data --help`` does not load torch.
"""

from __future__ import annotations

import importlib
from typing import Any, Dict, List

_EXPORTS: Dict[str, str] = {
    "DataSourceError": "multirealism.data.errors",
    "MultiRealismDataModule": "multirealism.data.datamodule",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'multirealism.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> List[str]:
    return sorted(set(globals()) | set(__all__))
