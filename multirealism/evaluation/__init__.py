"""Evaluation: real-bitstream rate, PSNR/MS-SSIM/LPIPS, HiFiC-patch FID/KID, classical baselines,
BD-rate, tables and figures. ``multirealism evaluate`` is :mod:`multirealism.evaluation.cli`;
:func:`~multirealism.evaluation.sweep.run_sweep` is the reusable core."""

from multirealism.evaluation.bdrate import bd_rate
from multirealism.evaluation.metrics import LPIPSMetric, ms_ssim, psnr
from multirealism.evaluation.patches import extract_patches, patch_count
from multirealism.evaluation.realism import RealismMeter, build_extractor
from multirealism.evaluation.sweep import run_sweep

__all__ = [
    "LPIPSMetric",
    "RealismMeter",
    "bd_rate",
    "build_extractor",
    "extract_patches",
    "ms_ssim",
    "patch_count",
    "psnr",
    "run_sweep",
]
