"""Streaming source: webdataset ``.tar`` shards on local disk, ``s3://`` or ``http(s)://``.

Shards are read sequentially with webdataset's tar expander (no index, no random access), so an object
store only needs to serve whole-object GETs. Each sample's image is the first of its ``jpg``/``jpeg``/
``png``/``webp`` members; an optional ``json`` member may carry ``rotation`` (OpenImages' counter-clockwise
degrees). Samples are shuffled in a buffer of raw (undecoded) samples: memory is about
``shuffle_buffer`` x the mean file size per worker.
"""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import webdataset as wds
from PIL import Image
from webdataset.tariterators import group_by_keys, tar_file_expander

from multirealism.data.errors import DataSourceError
from multirealism.data.sharding import ImageSource
from multirealism.data.storage import Storage, is_http, is_remote, is_s3, local_glob
from multirealism.data.transforms import decode_image

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")
_GLOB_CHARS = ("*", "?", "[")


def is_shard_spec(spec: str) -> bool:
    """True for URLs, ``.tar`` files, globs/brace patterns, and local directories that hold ``.tar`` files."""
    if is_remote(spec) or any(c in spec for c in ("{", "::") + _GLOB_CHARS) or spec.endswith(".tar"):
        return True
    path = Path(spec).expanduser()
    return path.is_dir() and next(path.rglob("*.tar"), None) is not None


def resolve_shards(spec: str, storage_options: Optional[Mapping[str, Any]] = None) -> List[str]:
    """Expand a shard spec into the list of shard URLs/paths, in a fixed order.

    Accepted: brace patterns (``s3://b/p/shard-{000000..000009}.tar``, ``https://host/x-{0..3}.tar``),
    several specs joined by ``::``, an ``s3://bucket/prefix/`` (all ``.tar`` objects under it), a single
    ``.tar`` URL, a local glob, a local ``.tar`` file, or a local directory (all ``.tar`` files under it).
    """
    storage = Storage(storage_options)
    urls: List[str] = []
    for part in wds.shardlists.expand_urls(spec):
        if is_s3(part) and not part.endswith(".tar"):
            prefix = part if part.endswith("/") or part.count("/") <= 2 else part + "/"
            urls.extend(storage.list_s3(prefix, ".tar"))
        elif is_http(part):
            if not part.endswith(".tar"):
                raise DataSourceError(f"http(s) shard URLs must name .tar files (braces allowed): {part!r}")
            urls.append(part)
        elif is_s3(part):
            urls.append(part)
        elif any(c in part for c in _GLOB_CHARS):
            urls.extend(local_glob(part))
        elif Path(part).expanduser().is_dir():
            urls.extend(sorted(str(p) for p in Path(part).expanduser().rglob("*.tar")))
        elif Path(part).expanduser().is_file():
            urls.append(str(Path(part).expanduser()))
        else:
            raise DataSourceError(f"shard not found: {part!r}")
    if not urls:
        raise DataSourceError(f"no .tar shards found for {spec!r}")
    return urls


def decode_sample(sample: Dict[str, Any]) -> Optional[Image.Image]:
    """The upright RGB image of a webdataset sample, or None if it has no decodable image."""
    data = next((sample[ext] for ext in IMAGE_EXTENSIONS if ext in sample), None)
    if data is None:
        logger.warning("sample %s in %s has no image member", sample.get("__key__"), sample.get("__url__"))
        return None
    rotation = 0
    if "json" in sample:
        try:
            rotation = int(json.loads(sample["json"]).get("rotation") or 0)
        except (ValueError, TypeError, AttributeError):
            rotation = 0
    try:
        return decode_image(data, rotation=rotation)
    except Exception as err:  # truncated or corrupt bytes: counted by the caller
        logger.warning("skipping undecodable sample %s in %s: %s", sample.get("__key__"), sample.get("__url__"), err)
        return None


class ShardSource(ImageSource):
    """Webdataset shards, streamed shard after shard, optionally through a shuffle buffer."""

    images_per_unit = None

    def __init__(
        self, urls: Sequence[str], storage_options: Optional[Mapping[str, Any]] = None, shuffle_buffer: int = 0
    ) -> None:
        self.units = list(urls)
        self.storage = Storage(storage_options)  # its S3 client is made per process, on first use
        self.shuffle_buffer = shuffle_buffer

    def _opened(self, urls: Sequence[str]) -> Iterator[Dict[str, Any]]:
        for url in urls:
            try:
                stream = self.storage.open(url)
            except FileNotFoundError as err:
                raise DataSourceError(f"shard not found: {url}") from err
            try:
                yield {"url": url, "stream": stream}
            finally:
                stream.close()

    def samples(self, urls: Sequence[str], rng: np.random.Generator) -> Iterator[Dict[str, Any]]:
        """Raw webdataset samples (dicts of bytes keyed by extension, plus ``__key__``/``__url__``)."""
        files = tar_file_expander(self._opened(urls), handler=wds.handlers.warn_and_continue)
        samples = group_by_keys(files, handler=wds.handlers.warn_and_continue)
        if self.shuffle_buffer > 1:
            shuffle_rng = random.Random(int(rng.integers(2**63)))
            samples = wds.filters.shuffle(
                self.shuffle_buffer, initial=min(self.shuffle_buffer, 100), rng=shuffle_rng
            )(samples)
        return samples

    def read(self, units: Sequence[str], rng: np.random.Generator) -> Iterator[Tuple[str, Optional[Image.Image]]]:
        for sample in self.samples(units, rng):
            yield f"{sample['__url__']}#{sample['__key__']}", decode_sample(sample)
