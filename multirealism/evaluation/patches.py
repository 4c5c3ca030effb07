"""HiFiC's patch protocol for FID/KID on high-resolution images (Mentzer et al., 2020).

Each image is cut into non-overlapping ``size`` x ``size`` patches starting at the top-left corner,
plus a second set of non-overlapping patches starting ``size // 2`` pixels down and right. Partial
patches at the right/bottom edges are dropped. For an H x W image that gives

    floor(H / s) · floor(W / s)  +  floor((H - s/2) / s) · floor((W - s/2) / s)

patches, e.g. 600 wide x 400 high: 2·1 + 1·1 = 3 at 256 px (HiFiC's size) and 4·3 + 4·2 = 20 at
128 px. An image smaller than one patch gives none. ``multirealism evaluate --patch-size 128`` uses the
smaller patches so that a few photographs give hundreds of them (KID and C2ST need that many).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, List, Tuple

if TYPE_CHECKING:  # torch is imported where patches are cut, so the CLI's --help can read PATCH_SIZE
    from torch import Tensor

PATCH_SIZE = 256


def _grid(height: int, width: int, size: int, offset: int) -> List[Tuple[int, int]]:
    rows = max(0, (height - offset) // size)
    cols = max(0, (width - offset) // size)
    return [(offset + r * size, offset + c * size) for r in range(rows) for c in range(cols)]


def patch_origins(height: int, width: int, size: int = PATCH_SIZE) -> List[Tuple[int, int]]:
    """Top-left corners (row, col) of the non-overlapping set followed by the shifted set."""
    return _grid(height, width, size, 0) + _grid(height, width, size, size // 2)


def patch_count(height: int, width: int, size: int = PATCH_SIZE) -> int:
    """How many patches :func:`extract_patches` yields for an H x W image."""
    return len(patch_origins(height, width, size))


def patch_views(image: Tensor, size: int = PATCH_SIZE) -> List[Tensor]:
    """The patches of a ``(3, H, W)`` image as views into it (nothing copied), in :func:`patch_origins` order."""
    if image.dim() != 3:
        raise ValueError(f"expected one (3, H, W) image, got shape {tuple(image.shape)}")
    height, width = image.shape[-2:]
    return [image[:, r : r + size, c : c + size] for r, c in patch_origins(height, width, size)]


def extract_patches(image: Tensor, size: int = PATCH_SIZE) -> Tensor:
    """Patches ``(N, 3, size, size)`` of a ``(3, H, W)`` image; ``N`` may be 0."""
    import torch

    crops = patch_views(image, size)
    if not crops:
        return image.new_zeros((0, image.shape[0], size, size))
    return torch.stack(crops)
