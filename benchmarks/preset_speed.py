"""Decode and encode wall time of the CPU-sized presets on one 768x512 image (random weights: speed does not
depend on training), at the middle rate level, decoded at β = 0 and at β_max (a realism branch runs a second
synthesis only at β > 0); issue 40's target: ``medium`` decodes a 768x512 image in at most 2 s on a 2-core CPU.

    python benchmarks/preset_speed.py --threads 2
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import List

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine  # noqa: E402

from multirealism import create_codec  # noqa: E402


def main(argv: "List[str] | None" = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["small", "medium"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(machine())
    x = torch.rand(1, 3, 512, 768, generator=torch.Generator().manual_seed(0))
    megapixels = x.shape[-2] * x.shape[-1] / 1e6
    for name in args.presets:
        torch.manual_seed(0)
        codec = create_codec(name).eval()
        codec.update()
        quality = codec.num_levels // 2
        data = codec.compress(x, quality=quality)
        codec.decompress(data)  # warm-up
        decode, decode_max, encode = [], [], []
        for _ in range(args.repeats):
            start = time.perf_counter()
            codec.decompress(data, beta=0.0)
            decode.append(time.perf_counter() - start)
            start = time.perf_counter()
            codec.decompress(data, beta=codec.beta_max)
            decode_max.append(time.perf_counter() - start)
            start = time.perf_counter()
            codec.compress(x, quality=quality)
            encode.append(time.perf_counter() - start)
        params = sum(p.numel() for p in codec.parameters()) / 1e6
        print(f"{name}: {params:.2f} M parameters, 768x512 at quality {quality}: decode (β = 0) median "
              f"{statistics.median(decode):.2f} s ({statistics.median(decode) / megapixels:.2f} s/MP), decode "
              f"(β = {codec.beta_max:g}) median {statistics.median(decode_max):.2f} s, encode median "
              f"{statistics.median(encode):.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
