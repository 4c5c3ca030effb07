"""Evaluation: real-bitstream rate, PSNR/MS-SSIM/LPIPS, HiFiC-patch FID/KID, classical baselines,
BD-rate, tables and figures. ``multirealism evaluate`` is :mod:`multirealism.evaluation.cli`;
:func:`~multirealism.evaluation.sweep.run_sweep` is the reusable core.

Attributes are imported on first use (PEP 562), so ``multirealism evaluate --help`` does not load torch.
"""

from __future__ import annotations

import importlib
from typing import Any, Dict, List

_EXPORTS: Dict[str, str] = {
    "LPIPSMetric": "multirealism.evaluation.metrics",
    "RealismMeter": "multirealism.evaluation.realism",
    "bd_rate": "multirealism.evaluation.bdrate",
    "build_extractor": "multirealism.evaluation.realism",
    "extract_patches": "multirealism.evaluation.patches",
    "ms_ssim": "multirealism.evaluation.metrics",
    "patch_count": "multirealism.evaluation.patches",
    "psnr": "multirealism.evaluation.metrics",
    "run_sweep": "multirealism.evaluation.sweep",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'multirealism.evaluation' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> List[str]:
    return sorted(set(globals()) | set(__all__))
