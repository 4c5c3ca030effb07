"""Local image folders (recursive jpg/png/webp), e.g. a training set or Kodak / CLIC 2020 for evaluation.

The folder is scanned once in the main process reading only image headers: files that are not images
(corrupt) or whose shorter side is below ``min_size`` (tiny) are skipped and counted, never fatal. Files
that pass the header check but fail to decode later are skipped and counted in the worker.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from multirealism.data.errors import DataSourceError
from multirealism.data.sharding import ImageSource
from multirealism.data.transforms import decode_image

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp"})


@dataclass
class FolderScan:
    """Usable files in a fixed (sorted) order and how many were skipped, by reason."""

    root: Path
    files: List[Path]
    skipped: Counter = field(default_factory=Counter)


def scan_folder(root: str, min_size: int) -> FolderScan:
    """Find usable images under ``root`` recursively, skipping and counting corrupt and tiny files."""
    base = Path(root).expanduser()
    if not base.is_dir():
        raise DataSourceError(f"image folder not found: {root!r}")
    scan = FolderScan(root=base, files=[])
    for path in sorted(p for p in base.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()):
        try:
            with Image.open(path) as image:
                width, height = image.size
        except Exception:  # any decoder failure means "not a usable image"
            scan.skipped["corrupt"] += 1
            continue
        if min(width, height) < min_size:
            scan.skipped["tiny"] += 1
            continue
        scan.files.append(path)
    if scan.skipped:
        logger.warning(
            "%s: skipped %d of %d image files (%s)",
            base,
            sum(scan.skipped.values()),
            len(scan.files) + sum(scan.skipped.values()),
            ", ".join(f"{count} {reason}" for reason, count in sorted(scan.skipped.items())),
        )
    if not scan.files:
        raise DataSourceError(f"no usable images (jpg/png/webp, shorter side >= {min_size}) under {root!r}")
    return scan


class FolderSource(ImageSource):
    """Image files decoded in the worker that reads them.

    ``cache=True`` keeps every decoded image in the memory of the process that decoded it, so each file
    is decoded once per loader worker (once per run with persistent workers) instead of on every read;
    memory is about width x height x 3 bytes per image and worker.
    """

    def __init__(self, files: Sequence[Path], cache: bool = False) -> None:
        self.units = list(files)
        self.cache = cache
        self._decoded: Dict[Path, Image.Image] = {}

    def _decode(self, path: Path) -> Image.Image:
        if not self.cache:
            return decode_image(path)
        if path not in self._decoded:
            self._decoded[path] = decode_image(path)
        return self._decoded[path]

    def read(self, units: Sequence[Path], rng: np.random.Generator) -> Iterator[Tuple[str, Optional[Image.Image]]]:
        for path in units:
            try:
                image = self._decode(path)
            except Exception as err:  # truncated or otherwise undecodable: counted by the caller
                logger.warning("skipping undecodable image %s: %s", path, err)
                image = None
            yield str(path), image
