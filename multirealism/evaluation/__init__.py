"""Evaluation: real-bitstream rate, PSNR/MS-SSIM/LPIPS, HiFiC-patch FID/KID, classical baselines,
BD-rate, tables and figures. ``multirealism evaluate`` is :mod:`multirealism.cli.evaluate_command`;
:func:`~multirealism.evaluation.sweep.run_sweep` is the reusable core.

Attributes are imported on first use (PEP 562), so ``multirealism evaluate --help`` does not load torch.
"""

from __future__ import annotations

from typing import Dict

from multirealism.lazy_exports import lazy_exports

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


__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
