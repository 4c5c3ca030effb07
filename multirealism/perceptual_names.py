"""The perceptual distances by name, torch-free so ``multirealism evaluate --help`` can list them.

:data:`PERCEPTUAL_LABELS` is the one table: each network's name and its label for people.
:mod:`multirealism.training.perceptual` builds the networks; :mod:`multirealism.evaluation.metrics`
measures with them.
"""

from __future__ import annotations

from typing import Dict, Tuple

PERCEPTUAL_LABELS: Dict[str, str] = {
    "lpips-alex": "LPIPS (alex)",
    "stlpips-alex": "ST-LPIPS (alex)",
    "stlpips-vgg": "ST-LPIPS (vgg)",
    "wasserstein-vgg": "Wasserstein distortion (ST-LPIPS vgg features)",
    "lpips-random-test-only": "LPIPS (random test backbone)",
}
#: what ``perceptual=`` accepts in training: every network, or "none" for no perceptual term
PERCEPTUAL_CHOICES: Tuple[str, ...] = (*PERCEPTUAL_LABELS, "none")
#: the LPIPS-style metrics (not the random test-only backbone, not the Wasserstein training loss), offered by
#: ``multirealism evaluate --perceptual``
EVAL_PERCEPTUAL: Tuple[str, ...] = tuple(
    name for name in PERCEPTUAL_LABELS if not name.endswith("test-only") and not name.startswith("wasserstein")
)
