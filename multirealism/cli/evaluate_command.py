"""``multirealism evaluate``: the rate–distortion–realism sweep of checkpoints and classical codecs.

The parser needs only torch-free names; the sweep's modules (torch, models, metrics) are imported in
:func:`run`, so ``--help`` and argument errors answer without loading torch.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from typing import TYPE_CHECKING, List, Optional

from multirealism.evaluation.bdrate import METHODS
from multirealism.evaluation.classical_codecs import CODECS, DEFAULT_QUALITIES
from multirealism.evaluation.extractor_names import EXTRACTORS
from multirealism.evaluation.patches import PATCH_SIZE
from multirealism.perceptual_names import EVAL_PERCEPTUAL
from multirealism.weights import default_pretrained, list_pretrained

if TYPE_CHECKING:
    from multirealism.evaluation.metrics import LPIPSMetric
    from multirealism.evaluation.realism import RealismMeter

DEFAULT_BETAS = (0.0, 1.28, 2.56, 5.12)


def _classical_quality(text: str) -> int:
    """A classical codec's quality setting, 0-100 (refused as a usage error before any work)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"quality must be a whole number 0-100, got {text!r}") from None
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"quality must lie in 0-100, got {value}")
    return value


def add_parser(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "evaluate",
        help="bpp/PSNR/MS-SSIM/LPIPS/FID/KID of checkpoints at several β and of classical codecs",
        description="Compress every image once per checkpoint and rate level, entropy-decode it once and "
        "synthesise every β; measure real bpp, PSNR, MS-SSIM, a perceptual distance and, on HiFiC's patches "
        "(256 px, or 128 px for a few photographs), FID, KID with a 95 % bootstrap interval over images, "
        "the paired KID difference from the lowest β, and a classifier two-sample test (C2ST accuracy, 0.5 = "
        "indistinguishable); run classical codecs through the same metrics, on a quality grid or at the "
        "model's file size per image (--match-bytes); write rows.csv, summary.csv, results.json, figures "
        "(rate_psnr, psnr_fid, rate_kid, beta_strip) and viewer.html (β slider, rate level, classical codecs "
        "at the same size, zoom; self-contained) to --out. Prints a line per image unless --no-progress, "
        "and a summary with the time spent per phase.",
    )
    parser.add_argument("--ckpt", nargs="+", default=[], help="checkpoint(s); several give a rate curve per β")
    parser.add_argument("--model", nargs="+", default=None, choices=[*list_pretrained(), "none"],
                        help=f"shipped model(s) to evaluate (default: {default_pretrained()} when no --ckpt is given; "
                        "'none' for classical codecs only)")
    parser.add_argument("--data", required=True, help="image folder, 'samples' or 'samples:NAME,NAME'")
    parser.add_argument("--betas", nargs="+", type=float, default=list(DEFAULT_BETAS), help="realism weights")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--baselines", nargs="*", default=[], choices=sorted(CODECS),
                        help="classical codecs to run through the same metrics")
    parser.add_argument("--qualities", nargs="+", type=_classical_quality, default=list(DEFAULT_QUALITIES),
                        help="quality settings (0-100) for every classical codec")
    parser.add_argument("--match-bytes", action="store_true",
                        help="instead of the --qualities grid, code each image with each classical codec at the "
                        "largest quality whose file is no bigger than the model's file for that image and rate "
                        "level (bisection over quality 0-100; quality 0 if even that is bigger)")
    parser.add_argument("--model-qualities", nargs="+", type=float, default=None,
                        help="rate levels of a rate-controlled checkpoint (default: every trained level): "
                        "one checkpoint then gives a rate curve and a BD-rate per β")
    parser.add_argument("--refine", type=int, default=0, metavar="STEPS",
                        help="refine each latent with STEPS optimisation steps before coding (slower encoder, "
                        "same decoder; see multirealism.latent_refinement); 0: the plain encoder")
    parser.add_argument("--refine-realism", type=float, default=0.0, metavar="W",
                        help="with --refine: share of the refinement objective taken at the highest β (as "
                        "`compress --refine-realism`)")
    parser.add_argument("--anchor", default=None, help="curve BD-rates are measured against (default: jpeg)")
    parser.add_argument("--bd-method", default="pchip", choices=METHODS, help="Bjøntegaard interpolation")
    parser.add_argument("--fid-extractor", default=None, choices=[*EXTRACTORS, "none"],
                        help="features for FID/KID (default: fid-helper if installed, else skipped)")
    parser.add_argument("--fid-weights", default=None,
                        help="local weights: fid-helper TorchScript or torch-fidelity's pt_inception .pth")
    parser.add_argument("--patch-size", type=int, default=PATCH_SIZE, choices=(128, PATCH_SIZE),
                        help="side of the patches FID/KID/C2ST are measured on: 256 (HiFiC's protocol) or 128, "
                        "which gives about four times as many patches from a few photographs; both are a grid "
                        "plus the grid shifted by half a patch")
    parser.add_argument("--bootstrap", type=int, default=1000, metavar="N",
                        help="image resamples for the 95 %% KID intervals (images drawn with replacement, all "
                        "their patches taken; the same draws for every setting, so differences are paired)")
    parser.add_argument("--no-c2st", action="store_true",
                        help="skip the classifier two-sample test (leave-one-image-out logistic regression on "
                        "the FID features, real vs decoded patches)")
    parser.add_argument("--perceptual", default=None, choices=EVAL_PERCEPTUAL,
                        help="perceptual distance: stlpips-alex (default; lpips-alex when --lpips-weights is "
                        "given) / stlpips-vgg (shift-tolerant LPIPS, "
                        "offline from stlpips-pytorch; column st_lpips_*, a different metric from LPIPS) or "
                        "lpips-alex (LPIPS; needs torchvision's AlexNet weights, see --lpips-weights)")
    parser.add_argument("--lpips-weights", default=None,
                        help="torchvision alexnet-owt-7be5be79.pth for LPIPS (default: torch hub cache)")
    parser.add_argument("--device", default="cpu", help="device for the learned codec and the FID network (e.g. cuda)")
    parser.add_argument("--no-viewer", action="store_true",
                        help="skip viewer.html (every decoded image embedded, with a β slider; large for many images)")
    parser.add_argument("--no-progress", action="store_true",
                        help="no line per image on stderr (the final summary is still printed)")
    parser.set_defaults(func=run)
    return parser


def _say(message: str) -> None:
    print(f"multirealism evaluate: {message}", file=sys.stderr)


def _realism(args: argparse.Namespace) -> Optional[RealismMeter]:
    from multirealism.evaluation.realism import RealismMeter, RealismUnavailable, build_extractor

    if args.fid_extractor == "none":
        return None
    try:
        extractor = build_extractor(args.fid_extractor, args.fid_weights).to(args.device)
        return RealismMeter(extractor, bootstrap=args.bootstrap, c2st=not args.no_c2st)
    except RealismUnavailable as err:
        if args.fid_extractor is not None:
            raise
        _say(f"FID/KID skipped: {err}")
        return None


def _lpips(args: argparse.Namespace) -> Optional[LPIPSMetric]:
    from multirealism.evaluation.metrics import LPIPSMetric
    from multirealism.training.perceptual import ALEXNET_URL, PerceptualWeightsError

    if args.perceptual != "lpips-alex":
        try:
            return LPIPSMetric(network=args.perceptual)
        except PerceptualWeightsError as err:
            if args.perceptual_given:
                raise
            _say(f"ST-LPIPS skipped (column left empty): {err}")
            return None
    try:
        return LPIPSMetric(args.lpips_weights)
    except PerceptualWeightsError:
        if args.lpips_weights is not None:
            raise
        _say(f"LPIPS skipped (column left empty): torchvision's AlexNet weights are not in torch hub's cache; "
             f"download {ALEXNET_URL} elsewhere and pass --lpips-weights FILE, or use --perceptual stlpips-alex "
             "(offline)")
        return None


def _shipped_models(args: argparse.Namespace) -> List[str]:
    """Shipped models to evaluate: ``--model`` (``none``: none), else the default one unless ``--ckpt`` is given."""
    if args.model is None:
        return [] if args.ckpt else [default_pretrained()]
    return [name for name in args.model if name != "none"]


def run(args: argparse.Namespace) -> int:
    import torch

    from multirealism.evaluation import baselines, plots, report
    from multirealism.evaluation.inputs import list_images
    from multirealism.evaluation.metrics import perceptual_column
    from multirealism.evaluation.realism import RealismUnavailable
    from multirealism.evaluation.sweep import load_models, run_sweep
    from multirealism.evaluation.viewer import write_viewer
    from multirealism.latent_refinement import refinement_from_args, refinement_problem

    if args.model and "none" in args.model and len(args.model) > 1:
        _say("error: --model none cannot be combined with model names")
        return 2
    shipped = _shipped_models(args)
    args.perceptual_given = args.perceptual is not None
    if args.perceptual is None:
        args.perceptual = "lpips-alex" if args.lpips_weights is not None else "stlpips-alex"
    if not args.ckpt and not shipped and not args.baselines:
        _say("error: nothing to evaluate; give --ckpt, --model and/or --baselines")
        return 2
    if args.lpips_weights is not None and args.perceptual != "lpips-alex":
        _say(f"error: --lpips-weights is for --perceptual lpips-alex, not {args.perceptual}")
        return 2
    codecs, skipped = baselines.available(args.baselines)
    for name, reason in skipped.items():
        _say(f"baseline {name} skipped: {reason}")
    images = list_images(args.data)
    refine, problem = refinement_from_args(args.refine, args.refine_realism)
    if problem is not None:
        _say(f"error: {problem}")
        return 2
    models = load_models(args.ckpt, args.device, shipped)
    for label, codec in models:
        bad = [b for b in args.betas if not 0 <= b <= codec.beta_max]
        if bad:
            _say(f"error: β {bad} outside [0, {codec.beta_max:g}], the range {label} was trained for")
            return 2
        problem = None if refine is None else refinement_problem(codec.objective, refine)
        if problem is not None:
            _say(f"error: --refine: {label}: {problem}")
            return 2
        bad = [q for q in args.model_qualities or () if not 0 <= q <= codec.num_levels - 1]
        if bad:
            _say(f"error: --model-qualities {bad} outside [0, {codec.num_levels - 1}], the rate levels of {label}")
            return 2
    try:
        realism = _realism(args)
    except RealismUnavailable as err:
        _say(f"error: {err}")
        return 2
    lpips = _lpips(args)
    column = lpips.column if lpips else perceptual_column(args.perceptual)

    if args.match_bytes and not models:
        _say("error: --match-bytes matches the classical codecs to a model's files; give --model or --ckpt")
        return 2
    if args.bootstrap < 1:
        _say(f"error: --bootstrap must be at least 1, got {args.bootstrap}")
        return 2
    result = run_sweep(images, models, args.betas, codecs, args.qualities, lpips, realism,
                       progress=None if args.no_progress else _say, viewer=not args.no_viewer,
                       model_qualities=args.model_qualities, refine=refine, patch_size=args.patch_size,
                       match_bytes=args.match_bytes)
    summary = report.summarize(result)
    anchor = args.anchor or ("jpeg" if "jpeg" in codecs else (codecs[0] if codecs else None))
    named = report.curves(summary)
    if anchor is not None and anchor not in named:  # with --match-bytes a codec's curve is "CODEC (size of MODEL)"
        anchor = next((name for name in named if name.startswith(f"{anchor} (size of ")), anchor)
    bd_table = report.bd_rates(summary, anchor, args.bd_method) if anchor else []
    tradeoff = report.realism_tradeoff(summary)
    notes: List[str] = [n for n in (report.realism_note(result),) if n]
    notes.append(lpips.label if lpips else f"{column}: not computed (see the message above)")
    metadata = {
        "arguments": {k: v for k, v in vars(args).items() if k not in ("func", "perceptual_given")},
        "data": args.data,
        "images": [image.name for image in images],
        "checkpoints": {label: path for (label, _), path in zip(models, [*args.ckpt, *shipped])},
        "betas": args.betas,
        "baselines": codecs,
        "baselines_skipped": skipped,
        "qualities": args.qualities,
        "realism": report.realism_note(result),
        column: lpips.label if lpips else None,
        "bd_rate": {"anchor": anchor, "method": args.bd_method, "metric": "PSNR"},
        "definitions": {
            "bpp": "8 * len(encoded bytes) / (H * W)",
            "psnr": "RGB, 8-bit rounded images, mean over images of per-image dB; inf (null in JSON) if identical",
            "ms_ssim": "torchmetrics, 8-bit rounded; fewer scales below 176 px (see metrics.ms_ssim_scales)",
            "decode_s": "learned codec: one multi-β decompress call / number of β",
            "kid": f"unbiased polynomial-kernel MMD² on every {args.patch_size} px patch; kid_lo/kid_hi: 95 % "
                   f"bootstrap over images ({args.bootstrap} draws)",
            "kid_diff": "KID minus KID of the same model and level at the lowest β, on the same resampled images",
            "c2st": "leave-one-image-out logistic regression on the FID features, held-out accuracy (0.5: chance)",
            column: f"{lpips.label if lpips else 'LPIPS'}, on 8-bit rounded images",
        },
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    paths = report.write_outputs(args.out, result, summary, bd_table, tradeoff, metadata, column)
    paths.update(plots.write_figures(summary, result.strip, args.out, result.realism_label))
    if result.viewer:
        paths["viewer"] = write_viewer(result.viewer, os.path.join(args.out, "viewer.html"))

    print(report.format_table(summary, column))
    for note in notes:
        print(f"  * {note}")
    if bd_table:
        print(report.format_bd_table(bd_table, args.bd_method))
    if tradeoff:
        print(report.format_tradeoff_table(tradeoff, column))
    if realism is not None:
        print(report.format_realism_table(summary))
    print("wrote " + ", ".join(sorted(paths.values())))
    phases = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in sorted(result.timings.items(), key=lambda p: -p[1]))
    print(f"evaluated {len(images)} image(s), {len(summary)} settings in {result.seconds:.1f} s "
          f"(torch threads: {torch.get_num_threads()}; {phases})")
    return 0
