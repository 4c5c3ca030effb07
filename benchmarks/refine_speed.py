"""Encoder-side latent refinement: what each number of steps buys and costs with the shipped model.

For each quality and step count this codes held-out photographs (scikit-image's, never trained on) with
``refine(codec, x, quality, LatentRefinement(steps))`` and prints the encode time per megapixel, the bytes and
the β = 0 PSNR next to the plain encoder's (0 steps), and the coded objective λ(q)·bpp + 150·MSE that
refinement lowers. ``--realism W`` refines for both ends of β instead (``LatentRefinement(realism=W)``:
a pass of the model's perceptual distance at β_max per step, at its training scales, so slower); the objective column stays the β = 0 one.
Decoding is unchanged (the same decoder reads every stream), so it is not timed here.

    python benchmarks/refine_speed.py                       # astronaut and coffee, qualities 0 2 5, 0/10/30/50 steps
    python benchmarks/refine_speed.py --images coffee --steps 0 30 --threads 2 --out refine.json
    python benchmarks/refine_speed.py --steps 0 10 --realism 0.5 --threads 2
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, print_table, write_json  # noqa: E402

from multirealism import LatentRefinement, MultiRealismCodec, refine  # noqa: E402
from multirealism.data.samples import load_sample  # noqa: E402
from multirealism.data.transforms import to_tensor  # noqa: E402
from multirealism.evaluation.metrics import psnr  # noqa: E402


def measure(codec: MultiRealismCodec, name: str, x: torch.Tensor, quality: float, steps: int,
            realism: float = 0.0) -> Dict[str, Any]:
    """One coding of ``x`` at ``quality`` with ``steps`` refinement steps: time, bytes, PSNR, objective."""
    pixels = x.shape[-2] * x.shape[-1]
    start = time.perf_counter()
    latent = refine(codec, x, quality, LatentRefinement(steps, realism=realism)) if steps else codec.encode(x, quality)
    data = codec.compress_latent(latent)
    seconds = time.perf_counter() - start
    decoded = codec.decompress(data, 0.0)
    bpp = 8 * len(data) / pixels
    assert codec.objective is not None
    mse = float((decoded - x).pow(2).mean())
    weight = float(codec.objective.rate_weight(torch.tensor([quality])))
    return {
        "image": name, "quality": quality, "steps": steps, "realism": realism if steps else 0.0,
        "encode_s_per_mp": seconds / (pixels / 1e6),
        "bytes": len(data), "bpp": bpp, "psnr": psnr(decoded, x),
        "objective": weight * bpp + codec.objective.mse_weight * mse,
    }


def main(argv: "List[str] | None" = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="shipped model (default: the default one)")
    parser.add_argument("--images", nargs="+", default=["astronaut", "coffee"], help="scikit-image sample names")
    parser.add_argument("--qualities", nargs="+", type=float, default=[0.0, 2.0, 5.0])
    parser.add_argument("--steps", nargs="+", type=int, default=[0, 10, 30, 50])
    parser.add_argument("--realism", type=float, default=0.0,
                        help="share of the refinement objective at the highest β (LatentRefinement.realism)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--out", help="write all figures as JSON here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    codec = MultiRealismCodec.pretrained(args.model)
    rows = []
    for name in args.images:
        x = to_tensor(load_sample(name)).unsqueeze(0)
        codec.compress(x[..., :64, :64], 0.0, LatentRefinement(1))  # warm-up
        for quality in args.qualities:
            base = None
            for steps in sorted(set(args.steps) | {0}):
                row = measure(codec, name, x, quality, steps, args.realism)
                base = base or row
                row["bytes_vs_plain_pct"] = 100 * (row["bytes"] / base["bytes"] - 1)
                row["psnr_vs_plain_db"] = row["psnr"] - base["psnr"]
                rows.append(row)
                print(f"{name} q{quality:g} {steps} steps: {row['bytes']} B ({row['bytes_vs_plain_pct']:+.1f} %), "
                      f"{row['psnr']:.2f} dB ({row['psnr_vs_plain_db']:+.2f}), {row['encode_s_per_mp']:.1f} s/MP",
                      file=sys.stderr, flush=True)
    columns = ["image", "quality", "steps", "realism", "encode_s_per_mp", "bytes", "bytes_vs_plain_pct", "psnr",
               "psnr_vs_plain_db", "objective"]
    print_table(rows, columns)
    write_json(args.out, {"machine": machine(), "threads": torch.get_num_threads(), "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
