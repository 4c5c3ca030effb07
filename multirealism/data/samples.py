"""The embedded default source: natural photographs that ship inside installed packages.

scikit-image's wheel (astronaut, coffee, chelsea, rocket, the stereo motorcycle pair, Hubble deep field,
immunohistochemistry, retina), matplotlib's Grace Hopper, and scikit-learn's china/flower when scikit-learn
is installed. Only images that load offline are used, so the quickstart and tests need no download.
"""

from __future__ import annotations

import functools
import logging
from typing import Callable, Dict, Iterator, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from multirealism.data.errors import DataSourceError
from multirealism.data.sharding import ImageSource

logger = logging.getLogger(__name__)


def _skimage(name: str, index: int = -1) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from skimage import data

        image = getattr(data, name)()
        return image[index] if index >= 0 else image

    return load


def _grace_hopper() -> np.ndarray:
    from matplotlib import cbook

    with cbook.get_sample_data("grace_hopper.jpg") as stream:
        return np.asarray(Image.open(stream).convert("RGB"))


def _sklearn(filename: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from sklearn.datasets import load_sample_images

        bunch = load_sample_images()
        return bunch.images[[name.split("/")[-1] for name in bunch.filenames].index(filename)]

    return load


SAMPLE_LOADERS: Dict[str, Callable[[], np.ndarray]] = {
    "astronaut": _skimage("astronaut"),
    "coffee": _skimage("coffee"),
    "chelsea": _skimage("chelsea"),
    "rocket": _skimage("rocket"),
    "motorcycle_left": _skimage("stereo_motorcycle", 0),
    "motorcycle_right": _skimage("stereo_motorcycle", 1),
    "hubble_deep_field": _skimage("hubble_deep_field"),
    "immunohistochemistry": _skimage("immunohistochemistry"),
    "retina": _skimage("retina"),
    "grace_hopper": _grace_hopper,
    "china": _sklearn("china.jpg"),
    "flower": _sklearn("flower.jpg"),
}


@functools.lru_cache(maxsize=None)
def load_sample(name: str) -> Image.Image:
    """One embedded image as an RGB PIL image (cached per process: each loader worker loads it once)."""
    if name not in SAMPLE_LOADERS:
        raise KeyError(f"unknown sample image {name!r}; known: {sorted(SAMPLE_LOADERS)}")
    return Image.fromarray(np.ascontiguousarray(SAMPLE_LOADERS[name]()[..., :3])).convert("RGB")


@functools.lru_cache(maxsize=None)
def available_samples() -> Tuple[str, ...]:
    """Names of the embedded images that load on this machine without a network, in a fixed order."""
    names = []
    for name in SAMPLE_LOADERS:
        try:
            load_sample(name)
        except Exception as err:  # missing optional package or a file that would need a download
            logger.debug("sample image %s unavailable: %s", name, err)
            continue
        names.append(name)
    return tuple(names)


class SampleSource(ImageSource):
    """The embedded images, loaded (once per worker) by the worker that uses them."""

    def __init__(self, names: Optional[Sequence[str]] = None) -> None:
        self.units = list(available_samples() if names is None else names)
        if not self.units:
            raise DataSourceError("no embedded sample image loads on this machine (scikit-image missing?)")

    def read(self, units: Sequence[str], rng: np.random.Generator) -> Iterator[Tuple[str, Optional[Image.Image]]]:
        for name in units:
            yield name, load_sample(name)
