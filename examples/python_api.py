"""The Python API in one page: compress a natural image once, decode it at several realism weights.

    .venv/bin/python examples/python_api.py [--ckpt runs/tiny/checkpoints/last.ckpt] [--quality 2]

Without ``--ckpt`` the model shipped in the package is used: bytes from the rANS
coder, one entropy decode for all β, a spatial β map.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from PIL import Image
from skimage import data

from multirealism import MultiRealismCodec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", help="checkpoint to load (default: the shipped model)")
    parser.add_argument("--quality", type=float, default=None, help="rate level (default: the highest)")
    parser.add_argument("--out", default="beta_strip.png", help="where to write the decoded strip")
    args = parser.parse_args()

    codec = MultiRealismCodec.from_checkpoint(args.ckpt) if args.ckpt else MultiRealismCodec.pretrained()

    image = torch.from_numpy(data.coffee()).permute(2, 0, 1).float() / 255  # (3, 400, 600)
    bitstream = codec.compress(image, quality=args.quality)
    height, width = image.shape[-2:]
    print(f"{len(bitstream)} bytes, {8 * len(bitstream) / (height * width):.4f} bpp (counted from bytes)")

    betas = [0.0, codec.beta_max / 2, codec.beta_max]
    decoded = codec.decompress(bitstream, beta=betas)  # one entropy decode, one generator pass per β
    beta_map = torch.linspace(0, codec.beta_max, width).expand(1, 1, height, width)
    graded = codec.decompress(bitstream, beta=beta_map)  # realism rising from left to right

    strip = torch.cat([image[None], *decoded, graded], dim=-1)[0]
    Image.fromarray((strip.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(args.out)
    print(f"wrote {args.out}: original | β = {', '.join(f'{b:g}' for b in betas)} | β map 0→{codec.beta_max}")


if __name__ == "__main__":
    main()
