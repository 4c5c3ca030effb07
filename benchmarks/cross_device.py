"""Bitstreams across devices: the shipped model coding on the CPU and on a GPU, each stream decoded on both.

Entropy coding needs the decoder to rebuild the encoder's scales exactly enough to pick the same CDF for
every symbol; a GPU's convolutions round differently from a CPU's, so a stream written on one and read on
the other is the case that can break. For each quality this codes a held-out photograph (scikit-image's
astronaut) on both devices, decodes all four (stream, decoder) pairs at each β and prints bytes and PSNR,
then times encode and decode of a 768x512 uniform-noise image on each device (median of ``--repeats`` after a warm-up).

    python benchmarks/cross_device.py                    # CPU against CUDA (needs a GPU)
    python benchmarks/cross_device.py --device cpu      # the same code path on the CPU alone (a self-check)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Dict, List

import torch
from skimage import data

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, median, print_table, time_call, write_json  # noqa: E402

from multirealism import MultiRealismCodec  # noqa: E402
from multirealism.evaluation.metrics import psnr  # noqa: E402


def cross_decode(cpu: MultiRealismCodec, other: MultiRealismCodec, image: torch.Tensor, quality: float,
                 betas: List[float]) -> List[Dict[str, Any]]:
    """Rows: one per (encoder, decoder, β), with the stream's bytes and the decoded PSNR."""
    label = str(next(other.parameters()).device)
    codecs = [("cpu", cpu), (label if label != "cpu" else "cpu (2nd copy)", other)]
    streams = [(name, codec.compress(image, quality=quality)) for name, codec in codecs]
    rows = []
    for encoder, stream in streams:
        for decoder, codec in codecs:
            for beta in betas:
                try:
                    decoded = psnr(codec.decompress(stream, beta=beta).cpu()[0], image)
                except Exception as err:  # a broken cross-device stream is the finding, not a crash
                    decoded = f"{type(err).__name__}: {err}"[:120]
                rows.append({"quality": quality, "encoder": encoder, "decoder": decoder, "beta": beta,
                             "bytes": len(stream), "psnr": decoded})
    return rows


def coding_times(codec: MultiRealismCodec, image: torch.Tensor, repeats: int) -> Dict[str, float]:
    """Median encode and decode (β = 2.56) seconds at quality 2 on the codec's device (``image``: uniform noise
    in ``main``, as the figures in benchmarks/README.md were taken)."""
    device = next(codec.parameters()).device
    stream = codec.compress(image, quality=2)
    codec.decompress(stream)  # warm-up of both directions
    encode = [time_call(lambda: codec.compress(image, quality=2), device) for _ in range(repeats)]
    decode = [time_call(lambda: codec.decompress(stream, beta=2.56), device) for _ in range(repeats)]
    return {"device": str(device), "encode_s": round(median(encode), 4), "decode_s": round(median(decode), 4)}


def main(argv: "List[str] | None" = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="the device compared with the CPU (default cuda)")
    parser.add_argument("--model", help="shipped model name (default: the default model)")
    parser.add_argument("--qualities", nargs="+", type=float, default=[0, 5])
    parser.add_argument("--betas", nargs="+", type=float, default=[0.0, 5.12])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", help="write all figures as JSON here")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA device here: nothing to compare (use --device cpu for a self-check)")
        return 0
    cpu = MultiRealismCodec.pretrained(args.model).eval()
    other = MultiRealismCodec.pretrained(args.model, map_location=args.device).eval()
    placed = {p.device.type for p in other.parameters()}
    if placed != {torch.device(args.device).type}:
        print(f"the model asked for on {args.device} has parameters on {sorted(placed)}: nothing would be compared")
        return 1
    image = torch.from_numpy(data.astronaut()).permute(2, 0, 1).float().div(255)
    rows = [row for q in args.qualities for row in cross_decode(cpu, other, image, q, args.betas)]
    shown = [{**row, "psnr": f"{row['psnr']:.3f}" if isinstance(row["psnr"], float) else row["psnr"]} for row in rows]
    print_table(shown, ["quality", "encoder", "decoder", "beta", "bytes", "psnr"])
    torch.manual_seed(0)
    big = torch.rand(3, 512, 768)
    times = [coding_times(codec, big, args.repeats) for codec in (cpu, other)]
    print_table(times, ["device", "encode_s", "decode_s"])
    write_json(args.out, {"machine": machine(), "cross_decode": rows, "times_768x512": times})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
