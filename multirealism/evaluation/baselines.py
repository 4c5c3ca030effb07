"""Classical codecs through Pillow, so they can be measured with exactly the learned codec's metrics.

JPEG, WebP and AVIF are built into Pillow; JPEG XL needs ``pillow-jxl-plugin`` and HEIC (HEVC intra
via x265 — the nearest installable stand-in for BPG) needs ``pillow-heif``. Each codec is driven by
Pillow's ``quality`` option (0-100, higher is better) with its other settings at their defaults
(4:2:0 chroma for JPEG/AVIF/HEIC). The rate is the length of the encoded file.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

from PIL import Image
from torch import Tensor

from multirealism.data.transforms import to_tensor
from multirealism.evaluation.classical_codecs import CODECS, DEFAULT_QUALITIES, ClassicalCodec, get_codec  # noqa: F401 (re-exported)
from multirealism.imageio import to_pil


@dataclass
class CodedImage:
    """One classical encode/decode: the file bytes, the decoded image and the times in seconds."""

    data: bytes
    decoded: Tensor
    encode_s: float
    decode_s: float


def encode_decode(image: Tensor, codec: "str | ClassicalCodec", quality: int) -> CodedImage:
    """Encode ``image`` (3, H, W) with a classical codec at ``quality`` and decode it back."""
    spec = get_codec(codec) if isinstance(codec, str) else codec
    reason = spec.unavailable_reason()
    if reason:
        raise RuntimeError(f"{spec.name} is unavailable: {reason}")
    if not 0 <= int(quality) <= 100:
        raise ValueError(f"quality must be in [0, 100], got {quality}")
    pil = to_pil(image)
    buffer = io.BytesIO()
    start = time.perf_counter()
    pil.save(buffer, format=spec.pillow_format, quality=int(quality), **spec.options)
    encode_s = time.perf_counter() - start
    data = buffer.getvalue()
    start = time.perf_counter()
    with Image.open(io.BytesIO(data)) as decoded_pil:
        decoded_pil.load()
        decoded = to_tensor(decoded_pil.convert("RGB"))
    decode_s = time.perf_counter() - start
    return CodedImage(data, decoded, encode_s, decode_s)


def available(names: Sequence[str]) -> Tuple[List[str], Dict[str, str]]:
    """Split codec names into usable ones and ``{name: reason}`` for the rest."""
    usable, skipped = [], {}
    for name in names:
        reason = get_codec(name).unavailable_reason()
        if reason:
            skipped[name] = reason
        else:
            usable.append(name)
    return usable, skipped
