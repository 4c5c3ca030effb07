"""Names of the FID/KID feature extractors, torch-free so ``multirealism evaluate --help`` can list them.

:func:`multirealism.evaluation.realism.build_extractor` builds them.
"""

from __future__ import annotations

from typing import Tuple

EXTRACTORS: Tuple[str, ...] = ("fid-helper", "inception-torchmetrics")
