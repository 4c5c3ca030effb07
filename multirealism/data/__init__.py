"""Data for multi-realism training: embedded samples, local folders and webdataset shards (local, S3, HTTPS).

Attributes are imported on first use (PEP 562), so ``multirealism data --help`` does not load torch.
"""

from __future__ import annotations

from typing import Dict

from multirealism.lazy_exports import lazy_exports

_EXPORTS: Dict[str, str] = {
    "DataSourceError": "multirealism.data.errors",
    "MultiRealismDataModule": "multirealism.data.datamodule",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
