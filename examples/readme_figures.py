"""Regenerate the README figures of a rate-controlled model: crops at one rate, and its rate–PSNR curve.

    python examples/readme_figures.py [--ckpt MODEL] [--data samples] [--out docs/figures] [--crop 256]
        [--quality Q [Q ...]] [--crop-images NAME,NAME] [--betas 0 5.12] [--baselines jpeg webp avif]
        [--crop-baselines avif webp]

Writes into ``--out``:

* ``crops.png``: one row per image (``--crop-images``: those named) and quality ``Q``, a centre crop of the
  original, of each ``--crop-baselines`` codec at the same file size (its largest quality whose file is no
  bigger than the model's) and of the model's decodings at each β (one bitstream), each labelled with the whole
  image's bpp and PSNR;
* ``rate_psnr.png``: mean bpp–PSNR over the images, the model at every trained quality (one curve
  per β) against the classical codecs;
* ``rate_psnr.csv`` and ``figures.json``: the numbers both figures show.

The work is :func:`~multirealism.evaluation.sweep.run_sweep` and the evaluation's plot helpers; it
runs offline on the CPU and is deterministic (no timings are written).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from torch import Tensor

from multirealism import MultiRealismCodec
from multirealism.data.transforms import center_crop, to_tensor
from multirealism.errors import ImageInputError, MultiRealismError
from multirealism.zoo import default_pretrained
from multirealism.evaluation import baselines, plots
from multirealism.evaluation.inputs import EvalImage, list_images
from multirealism.evaluation.report import curves, summarize, write_csv
from multirealism.evaluation.metrics import psnr
from multirealism.evaluation.sweep import EncodingCache, Row, learned_rows, load_models, matched_quality, run_sweep
from multirealism.imageio import to_pil

CURVE_FIELDS = ("series", "codec", "beta", "quality", "bpp", "psnr", "ms_ssim")


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", help="the model's checkpoint (.ckpt or .safetensors; default: the shipped model)")
    parser.add_argument("--data", default="samples", help="image folder, or 'samples' (scikit-image photographs)")
    parser.add_argument("--out", default="docs/figures", help="folder the figures and numbers go to")
    parser.add_argument("--crop", type=int, default=256, help="side of the centre crop shown, in pixels")
    parser.add_argument("--quality", type=float, nargs="+", help="rate levels of the crops (default: the middle level)")
    parser.add_argument("--crop-images", help="comma-separated names (or file stems) of the images cropped (default: all)")
    parser.add_argument("--betas", type=float, nargs="+", help="realism weights (default: 0 and the model's β_max)")
    parser.add_argument("--baselines", nargs="*", default=["jpeg", "webp", "avif"], choices=sorted(baselines.CODECS),
                        help="classical codecs to plot")
    parser.add_argument("--baseline-qualities", type=int, nargs="+", default=list(baselines.DEFAULT_QUALITIES),
                        help="Pillow qualities of the classical codecs")
    parser.add_argument("--crop-baselines", nargs="*", default=[], choices=sorted(baselines.CODECS),
                        help="classical codecs shown in the crops at the model's file size")
    return parser.parse_args(argv)


def centre_crop(image: Tensor, size: int) -> Tensor:
    """The data package's centre crop, as the 8-bit image the metrics were computed on."""
    return to_tensor(center_crop(to_pil(image), size))


def crop_rows(codec: MultiRealismCodec, model: str, images: Sequence[EvalImage], betas: Sequence[float],
              qualities: Sequence[float], size: int,
              matched: Sequence[str] = ()) -> Tuple[List[List[Tuple[str, Tensor]]], List[Row]]:
    """Per image and each of ``qualities``: the crop panels (original, each ``matched`` classical codec at the
    model's file size, then one per β) and the learned codec's rows. An image is loaded once and its classical
    encodings are cached across the qualities."""
    grid, records = [], []
    for item in images:
        image = item.load().float()
        if min(image.shape[-2:]) < size:
            height, width = image.shape[-2:]
            raise ImageInputError(f"image {item.name} is {width}x{height}, smaller than --crop {size}")
        original = (f"{item.name}: original", centre_crop(image, size))
        cache, pixels = EncodingCache(image), image.shape[-2] * image.shape[-1]
        for quality in qualities:
            rows, decoded, data = learned_rows(codec, item.name, image, betas, model, quality=quality)
            panels = [original]
            for name in matched:
                coded = cache.get(name, matched_quality(cache, name, len(data)))
                label = f"{name.upper()} · {8 * len(coded.data) / pixels:.3f} bpp · {psnr(coded.decoded, image):.2f} dB"
                panels.append((label, centre_crop(coded.decoded, size)))
            panels += [(f"β={r['beta']:g} · {r['bpp']:.3f} bpp · {r['psnr']:.2f} dB", centre_crop(out, size))
                       for r, out in zip(rows, decoded)]
            grid.append(panels)
            records.extend(rows)
    return grid, records


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    ((model, codec),) = load_models([args.ckpt]) if args.ckpt else load_models([], pretrained=[default_pretrained()])
    betas = args.betas if args.betas else [0.0, codec.beta_max]
    qualities = args.quality if args.quality is not None else [float(codec.num_levels // 2)]
    if args.crop < 1:
        print(f"error: --crop must be a positive number of pixels, got {args.crop}", file=sys.stderr)
        return 2
    for quality in qualities:
        if not 0 <= quality <= codec.num_levels - 1:
            print(f"error: --quality {quality:g} outside [0, {codec.num_levels - 1}], the rate levels of {model}",
                  file=sys.stderr)
            return 2
    if any(not 0 <= b <= codec.beta_max for b in betas):
        print(f"error: --betas must lie in [0, {codec.beta_max:g}], the range {model} was trained for", file=sys.stderr)
        return 2
    usable, skipped = baselines.available(args.baselines)
    for name, reason in skipped.items():
        print(f"skipping {name}: {reason}", file=sys.stderr)
    try:
        images = list_images(args.data)
        cropped = images
        if args.crop_images:
            wanted = args.crop_images.split(",")
            cropped = [item for name in wanted for item in images if name in (item.name, Path(item.name).stem)]
            if len(cropped) != len(wanted):
                known = ", ".join(item.name for item in images)
                print(f"error: --crop-images names an image not in --data (its images: {known})", file=sys.stderr)
                return 2
        grid, crop_records = crop_rows(codec, model, cropped, betas, qualities, args.crop, args.crop_baselines)
    except MultiRealismError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    summary = summarize(run_sweep(images, [(model, codec)], betas, usable, args.baseline_qualities))
    points = [{"series": series, **{k: row[k] for k in CURVE_FIELDS[1:]}}
              for series, rows in curves(summary).items() for row in rows]

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    plots.crop_grid(grid, str(out / "crops.png"))
    plots.rate_distortion(summary, str(out / "rate_psnr.png"))
    write_csv(points, str(out / "rate_psnr.csv"), CURVE_FIELDS)
    numbers: Dict[str, object] = {
        "model": model, "qualities": list(qualities), "betas": list(betas), "crop": args.crop,
        "images": [item.name for item in images], "baselines": usable,
        "crops": [{k: r[k] for k in ("image", "beta", "quality", "bpp", "psnr")} for r in crop_records],
        "rate_psnr": points,
    }
    with open(out / "figures.json", "w") as handle:
        json.dump(numbers, handle, indent=2)
    print(f"wrote crops.png, rate_psnr.png, rate_psnr.csv and figures.json to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
