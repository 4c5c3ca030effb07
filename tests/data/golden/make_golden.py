"""Regenerate the golden bitstream files (run only when the format version is bumped on purpose).

    .venv/bin/python tests/data/golden/make_golden.py

The model is the committed fitted tiny hyperprior (``tests/data/fitted_tiny_hyperprior.safetensors.gz``,
see ``make_trained_tiny.py``): trained scales spread over the scale table, so the golden stream
exercises real scale indexes, not just the lower bound. Writes, next to this script: ``crop.png``
(a 37x53 crop of scikit-image's astronaut), ``crop.mrc`` (its bitstream) and ``reference.npz`` (the
decoded latent and images at β = 0 and β = 2.56, float32). ``tests/test_golden.py`` checks that
today's code still reads these files the same way.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # tests/, for compact_codec

from compact_codec import load_compact  # noqa: E402

from multirealism.checkpoint import atomic_write_bytes  # noqa: E402
from multirealism.bitstream_format import FORMAT_VERSION  # noqa: E402
from multirealism.imageio import load_image  # noqa: E402

MODEL = HERE.parent / "fitted_tiny_hyperprior.safetensors.gz"
BETAS = (0.0, 2.56)
CROP = (200, 150, 253, 187)  # left, top, right, bottom: 53 x 37, not a multiple of 64


def main() -> None:
    from skimage import data

    Image.fromarray(data.astronaut()).crop(CROP).save(HERE / "crop.png")
    codec = load_compact(MODEL)
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
