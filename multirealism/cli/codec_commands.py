"""``multirealism compress | decompress | info``: the codec on files.

Outputs are written atomically and never replace an existing file without ``--force``; an output
that is the input itself is refused even with ``--force``. Every failure the library anticipates
(bad image, bad bitstream, other model, unsafe checkpoint, existing output) ends in one line on
stderr and exit code 2 (see :func:`multirealism.cli.main.main`).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import List, Optional, Sequence

from multirealism import container
from multirealism.errors import BitstreamError, ImageInputError, ModelMismatchError, MultiRealismError, OutputPathError

#: most image files one decompress call may write (images in the bitstream x β values)
MAX_OUTPUT_FILES = 256


class OutputCountError(MultiRealismError):
    """A decode would write more files than :data:`MAX_OUTPUT_FILES`."""


def _load_codec(args: argparse.Namespace, fingerprint: Optional[bytes] = None):
    """The codec ``--ckpt`` or ``--model`` names; with neither, the shipped model that wrote a bitstream
    of ``fingerprint`` (decoding), else the default shipped model (encoding)."""
    from multirealism.codec import MultiRealismCodec  # torch is loaded only for commands that need it
    from multirealism.weights import find_pretrained

    if args.ckpt is not None:
        return MultiRealismCodec.from_checkpoint(args.ckpt)
    name = args.model
    if name is None and fingerprint is not None:
        name = find_pretrained(fingerprint)
        if name is None:
            raise ModelMismatchError(
                f"{args.input!r} was written by model {fingerprint.hex()}, which is not a shipped model; "
                "pass --ckpt with the checkpoint that wrote it"
            )
    return MultiRealismCodec.pretrained(name)


def read_bitstream(path: str, max_bytes: int = container.DEFAULT_MAX_BITSTREAM_BYTES) -> bytes:
    """The file's bytes, refusing (without reading it all) a file, device or pipe larger than ``max_bytes``."""
    try:
        with open(path, "rb") as handle:
            if Path(path).is_file() and os.fstat(handle.fileno()).st_size > max_bytes:
                size = os.fstat(handle.fileno()).st_size
                raise BitstreamError(f"{path!r} is {size} bytes, over the limit of {max_bytes} (max_bitstream_bytes)")
            data = handle.read(max_bytes + 1)
    except IsADirectoryError:
        raise BitstreamError(f"cannot read bitstream {path!r}: it is a folder") from None
    except OSError as err:
        raise BitstreamError(f"cannot read bitstream {path!r}: {err.strerror or err}") from None
    if len(data) > max_bytes:
        raise BitstreamError(f"{path!r} holds more than {max_bytes} bytes (max_bitstream_bytes)")
    return data


def _refuse_same_file(source: str, target: Path) -> None:
    if target.exists() and os.path.samefile(source, target):
        raise OutputPathError(f"output {str(target)!r} is the input file; choose another name")


def output_names(out: str, betas: Sequence[float], num_images: int) -> List[List[Path]]:
    """``names[b][i]``: file for β ``b`` and image ``i``; ``OUT_beta0.50.png`` / ``OUT_1.png`` suffixes
    appear only when there is more than one β / image."""
    if num_images * len(betas) > MAX_OUTPUT_FILES:
        raise OutputCountError(
            f"decoding {num_images} images at {len(betas)} β values would write {num_images * len(betas)} files, "
            f"over the limit of {MAX_OUTPUT_FILES}"
        )
    path = Path(out)
    names = []
    for beta in betas:
        beta_part = f"_beta{beta:.2f}" if len(betas) > 1 else ""
        names.append(
            [
                path.with_name(f"{path.stem}{beta_part}{f'_{i}' if num_images > 1 else ''}{path.suffix}")
                for i in range(num_images)
            ]
        )
    flat = [p for row in names for p in row]
    if len(set(flat)) != len(flat):
        raise OutputPathError(f"β values {list(betas)} give clashing file names at two decimals")
    return names


def run_compress(args: argparse.Namespace) -> int:
    import warnings

    from multirealism.imageio import TransparencyError, check_destination, load_image, write_new_file
    from multirealism.latent_refinement import refine_or_encode, refinement_from_args, refinement_problem

    out = Path(args.output)
    check_destination(out, args.force)  # before loading anything: a missing folder is found at once
    _refuse_same_file(args.input, out)
    codec = _load_codec(args)
    top = codec.num_levels - 1
    quality = float(top) if args.quality is None else args.quality
    if not 0.0 <= quality <= top:  # also refuses NaN; before the image is read or anything encoded
        print(f"multirealism compress: error: quality {quality:g} outside [0, {top}] (this model's levels)", file=sys.stderr)
        return 2
    refinement, problem = refinement_from_args(args.refine, args.refine_realism)
    if problem is None and refinement is not None:
        problem = refinement_problem(codec.objective, refinement)
    if problem is not None:
        print(f"multirealism compress: error: {problem}", file=sys.stderr)
        return 2
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        try:
            image = load_image(args.input, alpha=args.alpha, max_pixels=codec.max_pixels)
        except TransparencyError as err:  # the command line's spelling of the option
            raise ImageInputError(f"{err.description} (pass --alpha drop to ignore it)") from None
    for warning in caught:  # a plain line, not a Python warning record
        print(f"multirealism compress: warning: {warning.message}", file=sys.stderr)
    data = codec.compress_latent(refine_or_encode(codec, image, quality, refinement))
    write_new_file(out, data, force=args.force)
    height, width = image.shape[-2:]
    print(f"{args.input} -> {out}: {len(data)} bytes, {8 * len(data) / (height * width):.4f} bpp, quality {quality:g}")
    return 0


def run_decompress(args: argparse.Namespace) -> int:
    from multirealism.imageio import check_destination, encode_image, output_format, write_new_file

    betas = args.beta or [0.0]
    _refuse_same_file(args.input, Path(args.output))
    output_format(args.output)  # refuse an extension we cannot write before any work
    if not Path(args.output).parent.is_dir():
        raise OutputPathError(f"cannot write {args.output!r}: folder {str(Path(args.output).parent)!r} does not exist")
    data = read_bitstream(args.input)  # the model's own, maybe lower, limit is checked by read_header
    fingerprint = container.unpack(data).fingerprint if args.ckpt is None and args.model is None else None
    codec = _load_codec(args, fingerprint)
    outside = [b for b in betas if not 0.0 <= b <= codec.beta_max]
    if outside:
        print(f"multirealism decompress: error: --beta {outside} outside [0, {codec.beta_max:g}]", file=sys.stderr)
        return 2
    header = codec.read_header(data)
    names = output_names(args.output, betas, header.num_images)
    for path in (p for row in names for p in row):  # every target checked before decoding
        _refuse_same_file(args.input, path)
        check_destination(path, args.force)
    images = codec.decompress(data, beta=list(betas))  # one entropy decode for all β
    for beta, beta_images, row in zip(betas, images, names):
        for image, path in zip(beta_images, row):
            write_new_file(path, encode_image(image, path), force=args.force)
            print(f"{path} (beta={beta:g})")
    return 0


def run_info(args: argparse.Namespace) -> int:
    data = read_bitstream(args.input)
    stream = container.unpack(data)
    pixels = stream.num_pixels
    print(f"file:           {args.input}")
    print(f"format version: {stream.version}")
    print(f"model:          {stream.fingerprint.hex()}")
    print(f"quality:        {stream.quality:g}")
    print(f"images:         {stream.num_images} x {stream.width}x{stream.height} (WxH)")
    print(f"latent grid:    {stream.latent_shape[1]}x{stream.latent_shape[0]} (hyper-latent WxH)")
    print(f"bytes:          {len(data)} ({container.HEADER_BYTES} header/checksum)")
    print(f"bpp:            {8 * len(data) / pixels:.4f}")
    sizes = ", ".join(str(sum(len(s) for s in per_image)) for per_image in stream.strings)
    print(f"streams:        {len(stream.strings)} ({sizes} bytes)")
    if args.ckpt is None and args.model is None:
        from multirealism.weights import find_pretrained

        shipped = find_pretrained(stream.fingerprint)
        print(f"shipped model:  {shipped or 'none (pass --ckpt to check a checkpoint)'}")
        return 0
    codec = _load_codec(args)
    if stream.fingerprint != codec.fingerprint:
        print(f"checkpoint:     does NOT match (checkpoint model is {codec.fingerprint.hex()})")
        return 1
    codec.read_header(data)  # also checks sizes and stream count against this model
    print("checkpoint:     matches")
    print(f"model name:     {model_name(codec.config())}")
    print(f"beta_max:       {codec.beta_max:g}")
    print(f"rate levels:    {codec.num_levels} (quality 0..{codec.num_levels - 1})")
    return 0


def model_name(config: dict) -> str:
    """Registry names of the checkpoint's components: ``elic + hyperprior + elic_cond [+ gain]``."""
    roles = ("encoder", "entropy_model", "generator", "rate_control")
    return " + ".join(config[role]["name"] for role in roles if role in config)


def _beta(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"beta must be a number, got {text!r}") from None


def _add_model_options(parser: argparse.ArgumentParser, ckpt_help: str, model_help: str) -> None:
    from multirealism.weights import default_pretrained, list_pretrained

    group = parser.add_mutually_exclusive_group()
    group.add_argument("--ckpt", help=ckpt_help)
    group.add_argument("--model", choices=list_pretrained(), help=model_help.format(default=default_pretrained()))


def add_parser(subparsers: "argparse._SubParsersAction") -> None:
    """Register ``compress``, ``decompress`` and ``info``."""
    p = subparsers.add_parser("compress", help="image file -> .mrc bitstream")
    p.add_argument("input", help="image file (PNG, JPEG, ... read with Pillow)")
    p.add_argument("output", help="bitstream to write (.mrc)")
    _add_model_options(p, "codec checkpoint (.ckpt, .pt or .safetensors)",
                       "shipped model to use (default: {default}; see `multirealism models`)")
    p.add_argument("--alpha", choices=("drop", "error"), default="drop",
                   help="images with transparency: drop alpha with a warning, or refuse")
    p.add_argument("--quality", type=float, default=None,
                   help="rate level in [0, levels-1] of a rate-controlled model, fractions interpolate "
                        "(default: the highest; 0 for a fixed-rate model)")
    p.add_argument("--refine", type=int, default=0, metavar="STEPS",
                   help="optimise the latent for this image with STEPS steps before coding: smaller files or "
                        "higher PSNR, about 2 s per step per megapixel on 2 CPU cores; any decoder reads the "
                        "result (default 0: the plain encoder; 30 is a good setting)")
    p.add_argument("--refine-realism", type=float, default=0.0, metavar="W",
                   help="with --refine: share of the objective taken at the highest β (its training distortion, "
                        "MSE plus the perceptual term) against β = 0's, in [0, 1]; 0.5 serves both ends (with "
                        "--refine 2 the default model's β path falls furthest in ST-LPIPS), needs the stlpips "
                        "extra and costs ~20 s per step per megapixel on 2 CPU cores (default 0: refine for β = 0)")
    p.add_argument("--force", action="store_true", help="overwrite an existing output")
    p.set_defaults(func=run_compress)

    p = subparsers.add_parser("decompress", help=".mrc bitstream -> PNG at one or more realism weights")
    p.add_argument("input", help="bitstream (.mrc)")
    p.add_argument("output", help="image to write, format by extension (.png, .webp lossless, .jpg); "
                   "with several --beta, OUT_beta<b>.EXT per β")
    _add_model_options(p, "the checkpoint that wrote the bitstream",
                       "shipped model that wrote it (default: the shipped model whose fingerprint it carries)")
    p.add_argument("--beta", type=_beta, action="append",
                   help="realism weight in [0, beta_max]; repeat for several outputs (default 0)")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")
    p.set_defaults(func=run_decompress)

    p = subparsers.add_parser("info", help="describe a .mrc bitstream")
    p.add_argument("input", help="bitstream (.mrc)")
    _add_model_options(p, "also check that this checkpoint can decode it",
                       "also check that this shipped model can decode it (default: name the shipped model "
                       "that wrote it, if any)")
    p.set_defaults(func=run_info)
