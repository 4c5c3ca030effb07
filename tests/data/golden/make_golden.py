"""Regenerate the golden bitstream files (run only when the format version is bumped on purpose).

    .venv/bin/python tests/data/golden/make_golden.py

Writes, next to this script: ``tiny_codec.safetensors.gz`` (``presets.tiny_config("hyperprior")``,
seed 0, parameters rounded to and stored as float16, gzipped: the coder's CDF tables alone are
800 KB raw), ``crop.png`` (a
37x53 crop of scikit-image's astronaut), ``crop.mrc`` (its bitstream) and ``reference.npz``
(the decoded latent and images at β = 0 and β = 2.56, float32). ``tests/test_golden.py`` checks
that today's code still reads these files the same way.
"""

from __future__ import annotations

import gzip
import json
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from multirealism import MultiRealismCodec
from multirealism.checkpoint import CONFIG_KEY, atomic_write_bytes
from multirealism.container import FORMAT_VERSION
from multirealism.imageio import load_image
from multirealism.presets import tiny_config

HERE = Path(__file__).resolve().parent
SEED = 0
BETAS = (0.0, 2.56)
CROP = (200, 150, 253, 187)  # left, top, right, bottom: 53 x 37, not a multiple of 64


def build_codec() -> MultiRealismCodec:
    torch.manual_seed(SEED)
    codec = MultiRealismCodec.from_config(tiny_config("hyperprior")).eval()
    with torch.no_grad():
        for param in codec.parameters():
            param.copy_(param.half().float())
    codec.update(force=True)
    return codec


def save_codec(codec: MultiRealismCodec, path: Path) -> None:
    """Gzipped safetensors; ``tests/test_golden.py`` unzips it and loads it with ``from_checkpoint``."""
    from safetensors.torch import save

    params = {name for name, _ in codec.named_parameters()}
    tensors = {
        k: (v.half() if k in params else v).detach().contiguous() for k, v in codec.state_dict().items()
    }
    raw = save(tensors, metadata={CONFIG_KEY: json.dumps(codec.config())})
    atomic_write_bytes(path, gzip.compress(raw, compresslevel=9, mtime=0))


def main() -> None:
    from skimage import data

    Image.fromarray(data.astronaut()).crop(CROP).save(HERE / "crop.png")
    save_codec(build_codec(), HERE / "tiny_codec.safetensors.gz")
    with tempfile.TemporaryDirectory() as tmp:
        unzipped = Path(tmp) / "tiny_codec.safetensors"
        unzipped.write_bytes(gzip.decompress((HERE / "tiny_codec.safetensors.gz").read_bytes()))
        codec = MultiRealismCodec.from_checkpoint(unzipped)
    bitstream = codec.compress(load_image(HERE / "crop.png"))
    atomic_write_bytes(HERE / "crop.mrc", bitstream)
    y_hat, _ = codec.decode_latent(bitstream)
    images = codec.decompress(bitstream, beta=list(BETAS))
    np.savez_compressed(
        HERE / "reference.npz",
        format_version=np.array(FORMAT_VERSION),
        fingerprint=np.frombuffer(codec.fingerprint, dtype=np.uint8),
        betas=np.array(BETAS, dtype=np.float32),
        y_hat=y_hat.numpy(),
        images=torch.stack(images).numpy(),
    )
    sizes = {p.name: p.stat().st_size for p in sorted(HERE.iterdir()) if p.is_file()}
    print(json.dumps(sizes, indent=1), "total", sum(sizes.values()))


if __name__ == "__main__":
    main()
