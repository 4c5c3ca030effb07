"""Parameter counts and multiply-accumulates per pixel of each codec component.

MACs come from ``torch.utils.flop_counter.FlopCounterMode`` (FLOPs / 2) on one image of
``--size`` pixels, divided by its pixel count; they do not depend on the weights or the machine, so
they are the noise-free companion of ``codec_speed.py``. CompressAI's ``Elic2022Official`` and
``MeanScaleHyperprior(192, 320)`` are measured the same way for reference, and the CPU-sized presets (``small`` and
``medium``, each without and with its realism branch) next to ``MeanScaleHyperprior(64, 96)``.

    python benchmarks/model_size.py                   # paper and tiny scale
    python benchmarks/model_size.py --scales paper --out size.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable, Dict, List

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    ENTROPY_MODELS, SCALES, build_codec, build_discriminator, machine, print_table, write_json,
)

BETA = 2.56


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def macs_per_pixel(fn: Callable[[], Any], pixels: int) -> float:
    """Multiply-accumulates per input pixel of one call of ``fn``."""
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        fn()
    return counter.get_total_flops() / 2 / pixels


def codec_rows(scale: str, size: int) -> List[Dict[str, Any]]:
    """One row per component of our codec at ``scale`` (eval mode, rounding quantisation)."""
    rows: List[Dict[str, Any]] = []
    x = torch.rand(1, 3, size, size)
    pixels = size * size
    shared_done = False
    for entropy_name in ENTROPY_MODELS:
        codec = build_codec(scale, entropy_name).eval()
        with torch.no_grad():
            y = codec.encoder(x)
            y_hat = codec.entropy_model(y).y_hat
        parts = [("entropy model " + entropy_name, codec.entropy_model, lambda: codec.entropy_model(y))]
        if not shared_done:  # encoder, generator and discriminator do not depend on the entropy model
            discriminator = build_discriminator(scale).eval()
            parts = [
                ("encoder", codec.encoder, lambda: codec.encoder(x)),
                *parts,
                ("generator", codec.generator, lambda: codec.generator(y_hat, BETA)),
                ("  of which β conditioner", codec.generator.conditioner, None),
                ("discriminator hific (training only)", discriminator, lambda: discriminator(x, y_hat, BETA)),
            ]
            shared_done = True
        for name, module, fn in parts:
            rows.append(
                {
                    "model": f"ours {scale}",
                    "component": name,
                    "parameters": count_parameters(module),
                    "MACs/pixel": None if fn is None else macs_per_pixel(fn, pixels),
                }
            )
        rows.append(
            {
                "model": f"ours {scale}",
                "component": f"total inference ({entropy_name})",
                "parameters": sum(count_parameters(m) for m in (codec.encoder, codec.entropy_model, codec.generator)),
                "MACs/pixel": macs_per_pixel(lambda: codec.generator(codec.entropy_model(codec.encoder(x)).y_hat, BETA), pixels),
            }
        )
    return rows


def small_rows(size: int) -> List[Dict[str, Any]]:
    """The ``small`` and ``medium`` presets' bases and the presets with their realism branch (``medium``'s is the
    shipped model) by component, and CompressAI's MeanScaleHyperprior(64, 96) whole."""
    from compressai.models import MeanScaleHyperprior

    from multirealism import create_codec

    x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    pixels = size * size
    beta_map = torch.full((1, 1, 1, 1), BETA)
    rows = []
    presets = [("small", {"realism": "none"}, " base"), ("small", {}, " with its realism branch"),
               ("medium", {"realism": "none"}, " base"), ("medium", {}, " with its realism branch (shipped)")]
    for preset, options, suffix in presets:
        torch.manual_seed(0)
        codec = create_codec(preset, options=options).eval()
        label = preset + suffix
        with torch.no_grad():
            y = codec.encoder(x)
            y_hat = codec.entropy_model(y).y_hat
        generator = codec.config()["generator"]["name"]
        parts = [
            ("encoder gdn", codec.encoder, lambda: codec.encoder(x)),
            ("entropy model hyperprior", codec.entropy_model, lambda: codec.entropy_model(y)),
            (f"generator {generator}", codec.generator, lambda: codec.synthesize(y_hat, [beta_map], 0)[0]),
            ("  of which β conditioner", codec.generator.conditioner, None),
        ]
        if hasattr(codec.generator, "refiner"):
            parts.append(("  of which realism head", codec.generator.refiner, None))
        if hasattr(codec.generator, "rate_gate"):
            parts.append(("  of which rate gate", codec.generator.rate_gate, None))
        rows += [
            {"model": f"ours {label}", "component": name, "parameters": count_parameters(module),
             "MACs/pixel": None if fn is None else macs_per_pixel(fn, pixels)}
            for name, module, fn in parts
        ]
        rows.append({"model": f"ours {label}", "component": "total inference",
                     "parameters": sum(count_parameters(m) for m in (codec.encoder, codec.entropy_model, codec.generator)),
                     "MACs/pixel": macs_per_pixel(lambda: codec(x, BETA), pixels)})
    msh = MeanScaleHyperprior(64, 96).eval()
    rows.append({"model": "compressai MeanScaleHyperprior(64,96)", "component": "total",
                 "parameters": count_parameters(msh), "MACs/pixel": macs_per_pixel(lambda: msh(x), pixels)})
    return rows


def reference_rows(size: int) -> List[Dict[str, Any]]:
    """CompressAI's ELIC and mean-scale hyperprior, split into g_a, entropy model and g_s."""
    from compressai.models import Elic2022Official, MeanScaleHyperprior

    x = torch.rand(1, 3, size, size)
    rows = []
    for name, model in (("compressai Elic2022Official", Elic2022Official()), ("compressai MeanScaleHyperprior(192,320)", MeanScaleHyperprior(192, 320))):
        model.eval()
        with torch.no_grad():
            y = model.g_a(x)
        g_a, g_s = model.g_a, model.g_s
        entropy_params = count_parameters(model) - count_parameters(g_a) - count_parameters(g_s)
        total_macs = macs_per_pixel(lambda: model(x), size * size)
        rows += [
            {"model": name, "component": "encoder g_a", "parameters": count_parameters(g_a), "MACs/pixel": macs_per_pixel(lambda: g_a(x), size * size)},
            {"model": name, "component": "decoder g_s", "parameters": count_parameters(g_s), "MACs/pixel": macs_per_pixel(lambda: g_s(y), size * size)},
            {"model": name, "component": "entropy model (rest)", "parameters": entropy_params, "MACs/pixel": None},
            {"model": name, "component": "total", "parameters": count_parameters(model), "MACs/pixel": total_macs},
        ]
        rows[-2]["MACs/pixel"] = total_macs - rows[-4]["MACs/pixel"] - rows[-3]["MACs/pixel"]
    return rows


def main(argv: "List[str] | None" = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", nargs="+", choices=SCALES, default=["paper", "tiny"])
    parser.add_argument("--size", type=int, default=256, help="side of the square test image (multiple of 64)")
    parser.add_argument("--no-reference", action="store_true", help="skip the CompressAI models")
    parser.add_argument("--no-small", dest="small", action="store_false",
                        help="skip the small codecs and MeanScaleHyperprior(64, 96)")
    parser.add_argument("--out", help="write the rows as JSON here")
    args = parser.parse_args(argv)
    if args.size <= 0 or args.size % 64:
        parser.error("--size must be a positive multiple of 64")

    rows: List[Dict[str, Any]] = []
    for scale in args.scales:
        rows += codec_rows(scale, args.size)
    if not args.no_reference:
        rows += reference_rows(args.size)
    if args.small:
        rows += small_rows(args.size)
    for row in rows:
        row["parameters (M)"] = row["parameters"] / 1e6
        if row["MACs/pixel"] is not None:
            row["kMACs/pixel"] = row["MACs/pixel"] / 1e3
    print_table(rows, ["model", "component", "parameters", "parameters (M)", "kMACs/pixel"])
    write_json(args.out, {"machine": machine(), "size": args.size, "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
