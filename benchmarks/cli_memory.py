"""Peak memory of ``multirealism compress`` / ``decompress`` per megapixel, with the shipped model.

Each call runs in a fresh process under ``/usr/bin/time -v`` (its maximum resident set size); the
baseline is the same process decoding a 64x64 stream, so the per-megapixel figure is the slope above
what importing torch and loading the model cost. Inputs are scikit-image's ``hubble_deep_field`` resized
to each size (a natural image; memory does not depend on content). Prints a Markdown table, writes JSON.

    python benchmarks/cli_memory.py --megapixels 0.25 1 4 --out memory.json
    python benchmarks/cli_memory.py --megapixels 0.0625 0.25 0.5 --no-decompress --refine 2

The constants of :mod:`multirealism.memory_budget` come from these slopes.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, List

import numpy as np
from PIL import Image


def _peak_rss_mib(argv: List[str]) -> float:
    """Maximum resident set size, in MiB, of ``multirealism ARGV`` run in a fresh process."""
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    command = ["/usr/bin/time", "-v", sys.executable, "-m", "multirealism.cli.main", *argv]
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {result.stderr[-2000:]}")
    kib = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", result.stderr).group(1))
    return kib / 1024


def _image(width: int, height: int, path: Path) -> None:
    from skimage import data

    Image.fromarray(np.asarray(data.hubble_deep_field())[..., :3]).resize((width, height), Image.BICUBIC).save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megapixels", type=float, nargs="+", default=[0.25, 1.0, 4.0])
    parser.add_argument("--refine", type=int, default=0, metavar="STEPS", help="compress with --refine STEPS")
    parser.add_argument("--no-decompress", action="store_true", help="measure compress only")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    rows: List[Dict[str, float]] = []
    with tempfile.TemporaryDirectory() as root:
        root_path = Path(root)
        sizes = [(64, 64)] + [(int(round((mp * 2**20 * 4 / 3) ** 0.5)), int(round((mp * 2**20 * 3 / 4) ** 0.5)))
                              for mp in args.megapixels]
        for width, height in sizes:
            png, mrc, out = root_path / f"{width}.png", root_path / f"{width}.mrc", root_path / f"{width}_out.png"
            _image(width, height, png)
            compress = _peak_rss_mib(["compress", str(png), str(mrc), *(["--refine", str(args.refine)] if args.refine else [])])
            decompress = 0.0 if args.no_decompress else _peak_rss_mib(["decompress", str(mrc), str(out)])
            rows.append({"width": width, "height": height, "megapixels": width * height / 2**20,
                         "compress_mib": compress, "decompress_mib": decompress})
    base = rows[0]
    print("| size | MP | compress peak RSS (MiB) | decompress peak RSS (MiB) | compress MiB/MP | decompress MiB/MP |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        extra_mp = row["megapixels"] - base["megapixels"]
        per = (lambda key: f"{(row[key] - base[key]) / extra_mp:.0f}") if extra_mp > 0 else (lambda key: "(base)")
        print(f"| {row['width']}x{row['height']} | {row['megapixels']:.3f} | {row['compress_mib']:.0f} | "
              f"{row['decompress_mib']:.0f} | {per('compress_mib')} | {per('decompress_mib')} |")
    if args.out:
        Path(args.out).write_text(json.dumps({"rows": rows, "refine": args.refine,
                                          "load": os.getloadavg()[0]}, indent=2))


if __name__ == "__main__":
    main()
