"""The images an evaluation runs on: a folder of image files, or the offline sample photographs.

``--data FOLDER`` takes every file in the folder (not recursive) whose suffix Pillow can open,
sorted by name, read with :func:`multirealism.imageio.load_image`. ``--data samples`` is the
natural photographs shipped in scikit-image (:data:`DEFAULT_SAMPLES`); ``samples:astronaut,coffee``
picks some of :mod:`multirealism.data.samples`' images by name. Images are loaded one at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List

from PIL import Image
from torch import Tensor

from multirealism.data.datamodule import SAMPLES
from multirealism.errors import ImageInputError

DEFAULT_SAMPLES = ("astronaut", "coffee", "chelsea", "rocket", "motorcycle_left", "hubble_deep_field")


@dataclass(frozen=True)
class EvalImage:
    """A named image that is read when :meth:`load` is called, as ``(3, H, W)`` float in [0, 1]."""

    name: str
    load: Callable[[], Tensor]


def _sample(name: str) -> EvalImage:
    from multirealism.data.samples import load_sample
    from multirealism.data.transforms import to_tensor

    def load() -> Tensor:
        return to_tensor(load_sample(name))

    return EvalImage(name, load)


def _file(path: Path) -> EvalImage:
    from multirealism.imageio import load_image

    return EvalImage(path.name, lambda: load_image(path))


def list_images(data: str) -> List[EvalImage]:
    """The images named by ``data`` (a folder, ``samples`` or ``samples:NAME,NAME``)."""
    if data == SAMPLES or data.startswith(SAMPLES + ":"):
        names = data.split(":", 1)[1].split(",") if ":" in data else list(DEFAULT_SAMPLES)
        from multirealism.data.samples import SAMPLE_LOADERS

        unknown = [n for n in names if n not in SAMPLE_LOADERS]
        if unknown:
            raise ImageInputError(f"unknown sample images {unknown}; known: {sorted(SAMPLE_LOADERS)}")
        return [_sample(n) for n in names]
    folder = Path(data)
    if not folder.is_dir():
        raise ImageInputError(f"--data {data!r} is neither a folder nor 'samples'")
    suffixes = set(Image.registered_extensions())
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in suffixes)
    if not files:
        raise ImageInputError(f"no image files in {data!r}")
    return [_file(p) for p in files]
