"""HiFiC patch protocol: non-overlapping 256 px patches plus the set shifted by 128 px."""

import pytest
import torch

from multirealism.evaluation.patches import extract_patches, patch_count, patch_origins


@pytest.mark.parametrize(
    "height, width, expected",
    [(400, 600, 2 + 1), (256, 256, 1), (512, 512, 4 + 1), (872, 1000, 9 + 6), (300, 451, 1), (255, 1000, 0)],
)
def test_patch_count(height, width, expected):
    assert patch_count(height, width) == expected
    image = torch.rand(3, height, width)
    assert extract_patches(image).shape == (expected, 3, 256, 256)


def test_patches_are_the_documented_crops():
    image = torch.rand(3, 400, 600)
    assert patch_origins(400, 600) == [(0, 0), (0, 256), (128, 128)]
    patches = extract_patches(image)
    assert torch.equal(patches[1], image[:, 0:256, 256:512])
    assert torch.equal(patches[2], image[:, 128:384, 128:384])


def test_small_patches_for_small_sets():
    assert patch_count(400, 600, 128) == 3 * 4 + 2 * 4
    assert patch_origins(256, 256, 128)[-1] == (64, 64)
    assert extract_patches(torch.rand(3, 300, 451), 128).shape == (2 * 3 + 1 * 3, 3, 128, 128)
