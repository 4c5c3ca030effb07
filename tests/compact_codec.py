"""Small committed codec files for tests: parameters stored as float16, the file gzipped.

CompressAI's coder tables alone take ~800 KB raw for a tiny model; gzip shrinks them to a few KB.
Parameters are rounded to float16 *before* the coder tables are built, so the loaded codec is
exactly the one that wrote any committed bitstream.
"""

from __future__ import annotations

import gzip
import json
import tempfile
from pathlib import Path

import torch

from multirealism import MultiRealismCodec
from multirealism.checkpoint import CONFIG_KEY, atomic_write_bytes


def round_parameters_to_half(codec: MultiRealismCodec) -> MultiRealismCodec:
    """Round every parameter to float16 precision (kept as float32) and rebuild the coder tables."""
    with torch.no_grad():
        for param in codec.parameters():
            param.copy_(param.half().float())
    codec.eval().update(force=True)
    return codec


def save_compact(codec: MultiRealismCodec, path: Path) -> None:
    """Write ``codec`` (already rounded with :func:`round_parameters_to_half`) as gzipped safetensors."""
    from safetensors.torch import save

    params = {name for name, _ in codec.named_parameters()}
    tensors = {k: (v.half() if k in params else v).detach().contiguous() for k, v in codec.state_dict().items()}
    raw = save(tensors, metadata={CONFIG_KEY: json.dumps(codec.config())})
    atomic_write_bytes(path, gzip.compress(raw, compresslevel=9, mtime=0))


def load_compact(path: Path) -> MultiRealismCodec:
    """Load a file written by :func:`save_compact` through the public ``from_checkpoint``."""
    with tempfile.TemporaryDirectory() as tmp:
        unzipped = Path(tmp) / Path(path).name.removesuffix(".gz")
        unzipped.write_bytes(gzip.decompress(Path(path).read_bytes()))
        return MultiRealismCodec.from_checkpoint(unzipped)
