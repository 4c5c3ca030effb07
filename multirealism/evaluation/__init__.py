"""Evaluation: real-bitstream rate, PSNR/MS-SSIM/LPIPS, HiFiC-patch FID/KID, classical baselines,
BD-rate, tables and figures. ``multirealism evaluate`` is :mod:`multirealism.evaluation.cli`;
:func:`evaluate_codec` is the reusable per-image core."""

from multirealism.evaluation.bdrate import bd_rate
from multirealism.evaluation.metrics import LPIPSMetric, ms_ssim, psnr
from multirealism.evaluation.patches import extract_patches, patch_count
from multirealism.evaluation.realism import RealismMeter, build_extractor
from multirealism.evaluation.sweep import evaluate_codec, run_sweep

__all__ = [
    "LPIPSMetric",
    "RealismMeter",
    "bd_rate",
    "build_extractor",
    "evaluate_codec",
    "extract_patches",
    "ms_ssim",
    "patch_count",
    "psnr",
    "run_sweep",
]
