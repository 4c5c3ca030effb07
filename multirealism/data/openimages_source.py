"""Where OpenImages comes from: its split names and public image bucket.

Torch-free, so ``multirealism data openimages --help`` and its argument errors answer without loading
the downloader (:mod:`multirealism.data.openimages`), which imports webdataset and torch.
"""

from __future__ import annotations

from typing import Tuple

SPLITS: Tuple[str, ...] = ("train", "validation", "test")
DEFAULT_SOURCE_URL = "s3://open-images-dataset"
