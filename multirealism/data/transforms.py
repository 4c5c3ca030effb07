"""Decoding and cropping: the HiFiC/paper training transform and the centre crop used for evaluation.

Everything here runs inside DataLoader workers. Crops are taken from the decoded PIL image before
conversion, so only crop-sized arrays become tensors.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch
from PIL import Image, ImageOps

SMALL_IMAGE_RULES = ("resize", "skip")
# OpenImages "Rotation": degrees counter-clockwise that restore the author's orientation.
_ROTATIONS = {90: Image.Transpose.ROTATE_90, 180: Image.Transpose.ROTATE_180, 270: Image.Transpose.ROTATE_270}


def decode_image(source: Union[bytes, str, Path], rotation: int = 0) -> Image.Image:
    """Decode bytes or a file into an upright RGB image (EXIF orientation, then an explicit rotation)."""
    image = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
    image = ImageOps.exif_transpose(image)
    if rotation in _ROTATIONS:
        image = image.transpose(_ROTATIONS[rotation])
    return image.convert("RGB")


def to_tensor(image: Image.Image) -> torch.Tensor:
    """(3, H, W) float32 in [0, 1] from an RGB PIL image.

    Converted with numpy: torch's intra-op threads make this small conversion several times slower when
    it runs in the main process (num_workers=0) of a busy machine.
    """
    array = np.asarray(image, dtype=np.uint8).transpose(2, 0, 1).astype(np.float32, order="C")
    array /= np.float32(255.0)
    return torch.from_numpy(array)


class RandomCropFlip:
    """Random ``crop_size`` square crop and random horizontal flip, as in HiFiC and the paper.

    Images whose shorter side is below ``crop_size`` follow ``small_image_rule``: ``"resize"`` scales the
    image (bicubic, aspect kept) so its shorter side equals ``crop_size``; ``"skip"`` drops it (the call
    returns None and the caller counts it). With ``min_scale < 1`` each crop is taken at a random scale
    ``s`` (log-uniform in ``[min_scale, 1]``, as far as the image allows): a ``crop_size / s`` square,
    downscaled (bicubic, antialiased). Downscaled crops are denser in detail, so a few large, smooth
    photographs yield crops closer to textured natural images. Randomness comes only from the ``rng``
    passed in, so a seed fixes the crops; ``min_scale = 1`` draws exactly the crops it always did.
    """

    def __init__(self, crop_size: int = 256, small_image_rule: str = "resize", min_scale: float = 1.0) -> None:
        if crop_size < 1:
            raise ValueError(f"crop_size must be positive, got {crop_size}")
        if small_image_rule not in SMALL_IMAGE_RULES:
            raise ValueError(f"small_image_rule must be one of {SMALL_IMAGE_RULES}, got {small_image_rule!r}")
        if not 0 < min_scale <= 1:
            raise ValueError(f"min_scale must lie in (0, 1], got {min_scale}")
        self.crop_size = crop_size
        self.small_image_rule = small_image_rule
        self.min_scale = float(min_scale)

    def __call__(self, image: Image.Image, rng: np.random.Generator) -> Optional[torch.Tensor]:
        size = self.crop_size
        width, height = image.size
        if min(width, height) < size:
            if self.small_image_rule == "skip":
                return None
            scale = size / min(width, height)
            width, height = max(size, round(width * scale)), max(size, round(height * scale))
            image = image.resize((width, height), Image.Resampling.BICUBIC)
        region = size
        if self.min_scale < 1:
            scale = math.exp(rng.uniform(math.log(self.min_scale), 0.0))
            region = min(round(size / scale), width, height)
        left = int(rng.integers(0, width - region + 1))
        top = int(rng.integers(0, height - region + 1))
        crop = image.crop((left, top, left + region, top + region))
        if region != size:
            crop = crop.resize((size, size), Image.Resampling.BICUBIC)
        if rng.random() < 0.5:
            crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return to_tensor(crop)


def center_crop(image: Image.Image, size: Optional[int]) -> Image.Image:
    """Centre crop to at most ``size`` x ``size`` (a side shorter than ``size`` is kept whole); None: no crop."""
    if size is None:
        return image
    width, height = image.size
    crop_w, crop_h = min(size, width), min(size, height)
    left, top = (width - crop_w) // 2, (height - crop_h) // 2
    return image.crop((left, top, left + crop_w, top + crop_h))
