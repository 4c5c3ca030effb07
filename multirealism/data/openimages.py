"""Prepare OpenImages as webdataset shards: ``multirealism data openimages``.

Reads the official image-ID list (a CSV with an ``ImageID`` column; ``Subset`` and ``Rotation`` are used
when present), downloads ``<source>/<split>/<ImageID>.jpg`` from the public CVDF bucket with unsigned
requests, keeps images whose shorter side is at least ``min_size``, and writes the original JPEG bytes
(never re-encoded) into ``<split>-NNNNNN.tar`` shards, locally or straight to ``s3://``. Each shard holds
``<ImageID>.jpg`` and ``<ImageID>.json`` (width, height, rotation).

Resuming: ``manifest.json`` next to the shards lists every finished shard with its image IDs and every
rejected ID with the reason. It is rewritten after each shard, so a re-run skips finished shards and
known rejections and downloads only what is missing; images of a shard that was not finished when the run
stopped are downloaded again. Transient download failures are not recorded and are retried on the next run.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple

import webdataset as wds
from PIL import Image

from multirealism.data.errors import DataSourceError
from multirealism.data.openimages_source import DEFAULT_SOURCE_URL, SPLITS
from multirealism.data.storage import Storage, is_http, join

logger = logging.getLogger(__name__)

# The official lists with rotation information (Open Images V4+ download page).
DEFAULT_IDS_URLS = {
    "train": "https://storage.googleapis.com/openimages/2018_04/train/train-images-boxable-with-rotation.csv",
    "validation": "https://storage.googleapis.com/openimages/2018_04/validation/validation-images-with-rotation.csv",
    "test": "https://storage.googleapis.com/openimages/2018_04/test/test-images-with-rotation.csv",
}
MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "multirealism-openimages/1"


@dataclass(frozen=True)
class ImageEntry:
    image_id: str
    rotation: int = 0


@dataclass
class Fetched:
    """The outcome for one image: JPEG bytes and size, a permanent rejection, or a transient failure."""

    entry: ImageEntry
    data: Optional[bytes] = None
    size: Tuple[int, int] = (0, 0)
    rejected: Optional[str] = None
    failed: Optional[str] = None


@dataclass
class PrepareSummary:
    """What a run did, and where the dataset stands afterwards."""

    shards_written: int = 0
    images_written: int = 0
    images_total: int = 0
    shards_total: int = 0
    skipped_done: int = 0
    rejected: Counter = field(default_factory=Counter)
    failed: int = 0


def read_image_ids(stream: io.IOBase, split: str) -> Iterator[ImageEntry]:
    """Entries of an OpenImages ID CSV, keeping rows of ``split`` when the CSV has a ``Subset`` column."""
    reader = csv.DictReader(io.TextIOWrapper(stream, encoding="utf-8", newline=""))
    if reader.fieldnames is None or "ImageID" not in reader.fieldnames:
        raise DataSourceError(f"image-ID list has no ImageID column (columns: {reader.fieldnames})")
    for row in reader:
        subset = row.get("Subset")
        if subset and subset != split:
            continue
        yield ImageEntry(row["ImageID"].strip(), _rotation(row.get("Rotation")))


def _rotation(value: Optional[str]) -> int:
    try:
        degrees = float(value) if value else 0.0
    except ValueError:
        return 0
    return 0 if math.isnan(degrees) else int(degrees) % 360


def inspect_jpeg(data: bytes) -> Tuple[Optional[Tuple[int, int]], Optional[str]]:
    """((width, height), None) for a readable JPEG header, else (None, reason)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format != "JPEG":
                return None, "not_jpeg"
            return image.size, None
    except Exception:  # any header failure: the file is not a usable image
        return None, "corrupt"


class OpenImagesPreparer:
    """Downloads, filters and shards OpenImages into ``out``; see the module docstring for resuming."""

    def __init__(
        self,
        out: str,
        split: str = "train",
        source_url: str = DEFAULT_SOURCE_URL,
        source_endpoint_url: Optional[str] = None,
        storage_options: Optional[Mapping[str, Any]] = None,
        min_size: int = 256,
        shard_size: int = 500,
        workers: int = 16,
    ) -> None:
        if split not in SPLITS:
            raise DataSourceError(f"split must be one of {SPLITS}, got {split!r}")
        if shard_size < 1 or workers < 1:
            raise DataSourceError("shard_size and workers must be positive")
        self.out, self.split, self.min_size = out, split, min_size
        self.shard_size, self.workers = shard_size, workers
        self.source_url = source_url.rstrip("/")
        source_options: Dict[str, Any] = {} if is_http(source_url) else {"anon": True}
        if source_endpoint_url:
            source_options["endpoint_url"] = source_endpoint_url
        self.source = Storage(source_options)
        self.dest = Storage(storage_options)
        self.manifest = self._load_manifest()

    def _load_manifest(self) -> Dict[str, Any]:
        try:
            manifest = json.loads(self.dest.read_bytes(join(self.out, MANIFEST_NAME)))
        except FileNotFoundError:
            return {"format": MANIFEST_FORMAT, "split": self.split, "shards": [], "rejected": {}}
        if manifest.get("format") != MANIFEST_FORMAT or manifest.get("split") != self.split:
            raise DataSourceError(
                f"{join(self.out, MANIFEST_NAME)} belongs to another dataset "
                f"(format {manifest.get('format')!r}, split {manifest.get('split')!r}); use another --out"
            )
        return manifest

    def _save_manifest(self) -> None:
        self.dest.write_bytes(join(self.out, MANIFEST_NAME), json.dumps(self.manifest, indent=1).encode())

    def fetch(self, entry: ImageEntry) -> Fetched:
        url = f"{self.source_url}/{self.split}/{entry.image_id}.jpg"
        try:
            data = self.source.read_bytes(url)
        except FileNotFoundError:
            return Fetched(entry, rejected="missing")
        except Exception as err:  # network or server trouble: retried on the next run
            return Fetched(entry, failed=f"{url}: {err}")
        size, reason = inspect_jpeg(data)
        if reason is not None:
            return Fetched(entry, rejected=reason)
        if min(size) < self.min_size:
            return Fetched(entry, rejected="too_small")
        return Fetched(entry, data=data, size=size)

    def write_shard(self, images: List[Fetched]) -> str:
        """Write one shard of original JPEG bytes, then record it in the manifest."""
        name = f"{self.split}-{len(self.manifest['shards']):06d}.tar"
        buffer = io.BytesIO()
        with wds.TarWriter(buffer, encoder=False, mtime=0) as writer:
            for item in images:
                meta = {"width": item.size[0], "height": item.size[1], "rotation": item.entry.rotation}
                writer.write(
                    {"__key__": item.entry.image_id, "jpg": item.data, "json": json.dumps(meta).encode()}
                )
        self.dest.write_bytes(join(self.out, name), buffer.getvalue())
        self.manifest["shards"].append({"name": name, "ids": [item.entry.image_id for item in images]})
        self._save_manifest()
        return name

    def run(self, entries: Iterator[ImageEntry], max_images: int) -> PrepareSummary:
        """Add shards until ``max_images`` images are stored in total (over all runs) or the list ends."""
        done = {image_id for shard in self.manifest["shards"] for image_id in shard["ids"]}
        stored = len(done)
        done.update(self.manifest["rejected"])
        summary = PrepareSummary()
        pending: List[Fetched] = []

        def todo() -> Iterator[ImageEntry]:
            for entry in entries:
                if entry.image_id in done:
                    summary.skipped_done += 1
                else:
                    yield entry

        remaining = todo()
        with ThreadPoolExecutor(self.workers) as pool:
            while stored + len(pending) < max_images:
                chunk = list(islice(remaining, min(4 * self.workers, max_images - stored - len(pending))))
                if not chunk:
                    break
                for result in pool.map(self.fetch, chunk):
                    if result.failed:
                        summary.failed += 1
                        logger.warning("download failed (will retry on a re-run): %s", result.failed)
                    elif result.rejected:
                        summary.rejected[result.rejected] += 1
                        self.manifest["rejected"][result.entry.image_id] = result.rejected
                    else:
                        pending.append(result)
                    if len(pending) == self.shard_size:
                        self.write_shard(pending)
                        summary.shards_written += 1
                        summary.images_written += len(pending)
                        stored += len(pending)
                        pending = []
        if pending:
            self.write_shard(pending)
            summary.shards_written += 1
            summary.images_written += len(pending)
            stored += len(pending)
        else:
            self._save_manifest()
        summary.images_total = stored
        summary.shards_total = len(self.manifest["shards"])
        return summary


def prepare_openimages(
    out: str,
    max_images: int,
    split: str = "train",
    ids_file: Optional[str] = None,
    ids_url: Optional[str] = None,
    source_url: str = DEFAULT_SOURCE_URL,
    source_endpoint_url: Optional[str] = None,
    storage_options: Optional[Mapping[str, Any]] = None,
    min_size: int = 256,
    shard_size: int = 500,
    workers: int = 16,
) -> PrepareSummary:
    """Prepare (or resume preparing) ``max_images`` OpenImages images as shards under ``out``.

    The ID list is ``ids_file`` (local path or s3:// URL) or ``ids_url`` (https://), by default the
    official list of the split.
    """
    if max_images < 1:
        raise DataSourceError(f"max_images must be positive, got {max_images}")
    if ids_file and ids_url:
        raise DataSourceError("give --ids-file or --ids-url, not both")
    preparer = OpenImagesPreparer(
        out, split, source_url, source_endpoint_url, storage_options, min_size, shard_size, workers
    )
    list_url = ids_file or ids_url or DEFAULT_IDS_URLS[split]
    try:
        stream = preparer.dest.open(list_url)
    except FileNotFoundError as err:
        raise DataSourceError(f"image-ID list not found: {list_url}") from err
    with stream:
        return preparer.run(read_image_ids(stream, split), max_images)
