"""Training crops and evaluation crops: shape, range, seeded determinism, flips, the small-image rule."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from multirealism.data.transforms import RandomCropFlip, center_crop, decode_image, to_tensor


def gradient_image(width: int, height: int) -> Image.Image:
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :, None]
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None, None]
    rgb = np.concatenate([np.broadcast_to(x, (height, width, 1)), np.broadcast_to(y, (height, width, 1)),
                          np.full((height, width, 1), 40.0)], axis=-1)
    return Image.fromarray(rgb.astype(np.uint8))


def test_crop_shape_range_and_seed_determinism():
    transform = RandomCropFlip(64)
    image = gradient_image(200, 150)
    first = [transform(image, np.random.default_rng(7)) for _ in range(3)]
    again = transform(image, np.random.default_rng(7))
    other = transform(image, np.random.default_rng(8))
    for crop in first:
        assert crop.shape == (3, 64, 64) and crop.dtype == torch.float32
        assert 0.0 <= crop.min() and crop.max() <= 1.0
    assert all(torch.equal(crop, again) for crop in first)
    assert not torch.equal(again, other)


def test_flip_is_a_horizontal_mirror_of_the_same_crop():
    image = gradient_image(64, 64)  # crop == image, so only the flip varies
    transform = RandomCropFlip(64)
    crops = [transform(image, np.random.default_rng(seed)) for seed in range(16)]
    plain = to_tensor(image)
    flipped = [c for c in crops if not torch.equal(c, plain)]
    assert 0 < len(flipped) < len(crops)
    assert all(torch.equal(c, plain.flip(-1)) for c in flipped)


def test_small_images_are_resized_or_skipped_by_rule():
    small = gradient_image(100, 50)
    resized = RandomCropFlip(64, "resize")(small, np.random.default_rng(0))
    assert resized is not None and resized.shape == (3, 64, 64)
    assert RandomCropFlip(64, "skip")(small, np.random.default_rng(0)) is None
    with pytest.raises(ValueError, match="small_image_rule"):
        RandomCropFlip(64, "pad")


def test_scaled_crops_are_downscaled_regions_and_scale_one_keeps_the_old_crops():
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8))
    plain = [RandomCropFlip(64)(image, np.random.default_rng(s)) for s in range(4)]
    assert all(torch.equal(a, RandomCropFlip(64, min_scale=1.0)(image, np.random.default_rng(s)))
               for s, a in enumerate(plain))
    scaled = RandomCropFlip(64, min_scale=0.25)
    crops = [scaled(image, np.random.default_rng(s)) for s in range(8)]
    assert all(c.shape == (3, 64, 64) for c in crops)
    # averaging many noise pixels per output pixel lowers the contrast of downscaled crops
    stds = sorted(float(c.std()) for c in crops)
    assert stds[0] < 0.8 * float(plain[0].std())
    # a region larger than the image is capped at its shorter side
    small = gradient_image(80, 70)
    capped = RandomCropFlip(64, min_scale=0.1)(small, np.random.default_rng(3))
    assert capped.shape == (3, 64, 64)
    with pytest.raises(ValueError, match="min_scale"):
        RandomCropFlip(64, min_scale=0.0)


def test_center_crop_and_rotation():
    image = gradient_image(300, 200)
    assert center_crop(image, 128).size == (128, 128)
    assert center_crop(image, 256).size == (256, 200)
    assert center_crop(image, None).size == (300, 200)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    assert decode_image(buffer.getvalue(), rotation=90).size == (200, 300)
