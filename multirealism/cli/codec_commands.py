"""``multirealism compress | decompress | info``: the codec on files.

``compress IN [OUT]`` and ``decompress IN [OUT]`` name the output after the input when it is left out
(``photo.png`` -> ``photo.mrc`` -> ``photo.png``), take several inputs in one call (each written beside
itself), and read ``-`` as standard input or write it as standard output. Outputs are written
atomically and never replace an existing file without ``--force``; an output that is the input itself
is refused even with ``--force``; a FIFO or a device such as ``/dev/null`` is written through. Every
failure the library anticipates (bad image, bad bitstream, other model, unsafe checkpoint, existing
output) ends in one line on stderr and exit code 1, a bad option in exit code 2 (see
:func:`multirealism.cli.main.main`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from multirealism import bitstream_format
from multirealism.cli.main import CommandLineError
from multirealism.errors import BitstreamError, ImageInputError, ModelMismatchError, MultiRealismError, OutputPathError

#: most image files one decompress call may write (images in the bitstream x β values)
MAX_OUTPUT_FILES = 256


class OutputCountError(MultiRealismError):
    """A decode would write more files than :data:`MAX_OUTPUT_FILES`."""


def _load_codec(args: argparse.Namespace, fingerprint: Optional[bytes] = None, source: str = ""):
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
                f"{source!r} was written by model {fingerprint.hex()}, which is not a shipped model; "
                "pass --ckpt with the checkpoint that wrote it"
            )
    return MultiRealismCodec.pretrained(name)


STDIO = "-"


def read_bitstream(path: str, max_bytes: int = bitstream_format.DEFAULT_MAX_BITSTREAM_BYTES) -> bytes:
    """The file's bytes (``-``: standard input), refusing (without reading it all) a file, device or pipe
    larger than ``max_bytes``."""
    if path == STDIO:
        data = sys.stdin.buffer.read(max_bytes + 1)
    else:
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
    if source != STDIO and str(target) != STDIO and target.exists() and os.path.samefile(source, target):
        raise OutputPathError(f"output {str(target)!r} is the input file; choose another name")


def _image_suffixes() -> set:
    from PIL import Image

    Image.init()
    return set(Image.registered_extensions())


def split_paths(paths: Sequence[str], is_output: Callable[[str], bool], default_suffix: str) -> List[Tuple[str, str]]:
    """``(input, output)`` pairs from the positional paths: ``IN [OUT]`` when the last path ``is_output``,
    else every path is an input written beside itself with ``default_suffix`` (``-`` alone: stdin to stdout)."""
    if len(paths) >= 2 and is_output(paths[-1]):
        if len(paths) > 2:
            raise CommandLineError(
                f"one output {paths[-1]!r} for {len(paths) - 1} inputs: leave it out and each input X is written "
                f"as X{default_suffix}"
            )
        return [(paths[0], paths[1])]
    if STDIO in paths and len(paths) > 1:
        raise CommandLineError("'-' (standard input) must be the only input")
    return [(p, STDIO if p == STDIO else str(Path(p).with_suffix(default_suffix))) for p in paths]


def _check_stdout(output: str) -> None:
    if output == STDIO and sys.stdout.isatty():
        raise CommandLineError("refusing to write binary data to a terminal: redirect standard output or name a file")


def _write(path: str, data: bytes, force: bool) -> None:
    from multirealism.imageio import write_new_file

    if path == STDIO:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        write_new_file(Path(path), data, force=force)


def _report(message: str, to_stdout: bool) -> None:
    """A result line: on stdout, or on stderr when stdout carries the data."""
    print(message, file=sys.stderr if to_stdout else sys.stdout)


def _timed(args: argparse.Namespace, label: str, start: float) -> None:
    if args.time:
        print(f"multirealism {args.command}: time: {label} {time.perf_counter() - start:.2f} s", file=sys.stderr)


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


def _progress(args: argparse.Namespace, label: str) -> Optional[Callable[[int, int], None]]:
    """A per-step callback drawing a bar on stderr (``--progress``; by default only when stderr is a tty)."""
    show = sys.stderr.isatty() if args.progress is None else args.progress
    if not show:
        return None
    from tqdm import tqdm

    bar: List[Any] = []

    def step(done: int, total: int) -> None:
        if not bar:
            bar.append(tqdm(total=total, desc=f"refining {label}", unit="step", file=sys.stderr, leave=False))
        bar[0].update(1)
        if done == total:
            bar[0].close()

    return step


def run_compress(args: argparse.Namespace) -> int:
    import dataclasses
    import warnings

    from multirealism import memory_budget
    from multirealism.imageio import TransparencyError, check_destination, image_size, load_image
    from multirealism.latent_refinement import refine_or_encode, refinement_from_args, refinement_problem

    suffixes = _image_suffixes()
    jobs = split_paths(args.paths, lambda p: p == STDIO or Path(p).suffix.lower() not in suffixes, ".mrc")
    for source, out in jobs:  # before loading anything: a missing folder is found at once
        if out == STDIO:
            _check_stdout(out)
        else:
            check_destination(Path(out), args.force)
            _refuse_same_file(source, Path(out))
    start = time.perf_counter()
    codec = _load_codec(args)
    _timed(args, "model load", start)
    top = codec.num_levels - 1
    quality = float(top) if args.quality is None else args.quality + 0.0  # + 0.0: -0 is 0
    if not 0.0 <= quality <= top:  # also refuses NaN; before the image is read or anything encoded
        raise CommandLineError(f"--quality {quality:g} outside [0, {top}] (this model's levels)")
    refine, problem = refinement_from_args(args.refine, args.refine_realism)
    if problem is None and refine is not None:
        problem = refinement_problem(codec.objective, refine)
    if problem is not None:
        raise CommandLineError(problem)
    for source, out in jobs:
        start = time.perf_counter()
        image_file = sys.stdin.buffer.read() if source == STDIO else source
        width, height = image_size(image_file, codec.max_pixels)  # before decoding the pixels
        padded = (-(-width // codec.pad_multiple)) * (-(-height // codec.pad_multiple)) * codec.pad_multiple**2
        memory_budget.check_memory(padded, memory_budget.REFINE_BYTES_PER_PIXEL if refine else
                                   memory_budget.ENCODE_BYTES_PER_PIXEL, f"encoding {source!r} ({width}x{height})")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)
            try:
                image = load_image(image_file, alpha=args.alpha, max_pixels=codec.max_pixels)
            except TransparencyError as err:  # the command line's spelling of the option
                raise ImageInputError(f"{err.description} (pass --alpha drop to ignore it)") from None
        for warning in caught:  # a plain line, not a Python warning record
            print(f"multirealism compress: warning: {str(warning.message).replace(repr('<bytes>'), '<stdin>')}",
                  file=sys.stderr)
        step_refine = refine if refine is None else dataclasses.replace(refine, progress=_progress(args, source))
        data = codec.compress_latent(refine_or_encode(codec, image, quality, step_refine))
        _write(out, data, args.force)
        height, width = image.shape[-2:]
        _report(f"{source} -> {out}: {len(data)} bytes, {8 * len(data) / (height * width):.4f} bpp, "
                f"quality {quality:g}", out == STDIO)
        _timed(args, f"{source}", start)
    return 0


def _unique_betas(betas: Sequence[float]) -> List[float]:
    """β values in the order given, each once (-0 is 0)."""
    unique: List[float] = []
    for beta in betas:
        if beta + 0.0 not in unique:
            unique.append(beta + 0.0)
    return unique


def run_decompress(args: argparse.Namespace) -> int:
    from multirealism.imageio import check_destination, encode_image, output_format

    betas = _unique_betas(args.beta or [0.0])
    jobs = split_paths(args.paths, lambda p: p == STDIO or Path(p).suffix.lower() != ".mrc", ".png")
    for source, out in jobs:
        if out == STDIO:
            _check_stdout(out)
            if len(betas) > 1:
                raise CommandLineError("standard output takes one image: give one --beta, or name an output file")
            continue
        _refuse_same_file(source, Path(out))
        output_format(out)  # refuse an extension we cannot write before any work
        if not Path(out).parent.is_dir():
            raise OutputPathError(f"cannot write {out!r}: folder {str(Path(out).parent)!r} does not exist")
    codecs: Dict[Optional[bytes], Any] = {}
    for source, out in jobs:
        start = time.perf_counter()
        data = read_bitstream(source)  # the model's own, maybe lower, limit is checked by read_header
        fingerprint = bitstream_format.unpack(data).fingerprint if args.ckpt is None and args.model is None else None
        if fingerprint not in codecs:
            codecs[fingerprint] = _load_codec(args, fingerprint, source)
            _timed(args, "model load", start)
        codec = codecs[fingerprint]
        outside = [b for b in betas if not 0.0 <= b <= codec.beta_max]
        if outside:
            raise CommandLineError(f"--beta {outside} outside [0, {codec.beta_max:g}]")
        header = codec.read_header(data)
        if out == STDIO:
            if header.num_images > 1:
                raise CommandLineError(f"{source!r} holds {header.num_images} images: name an output file")
            names = [[Path("image.png")]]
        else:
            names = output_names(out, betas, header.num_images)
            for path in (p for row in names for p in row):  # every target checked before decoding
                _refuse_same_file(source, path)
                check_destination(path, args.force)
        images = codec.decompress(data, beta=list(betas))  # one entropy decode for all β
        for beta, beta_images, row in zip(betas, images, names):
            for image, path in zip(beta_images, row):
                _write(STDIO if out == STDIO else str(path), encode_image(image, path), args.force)
                _report(f"{STDIO if out == STDIO else path} (beta={beta:g})", out == STDIO)
        _timed(args, source, start)
    return 0


def run_info(args: argparse.Namespace) -> int:
    data = read_bitstream(args.input)
    stream = bitstream_format.unpack(data)
    fields: Dict[str, Any] = {
        "file": args.input, "format_version": stream.version, "model": stream.fingerprint.hex(),
        "quality": stream.quality + 0.0, "images": stream.num_images, "width": stream.width,
        "height": stream.height, "latent_width": stream.latent_shape[1], "latent_height": stream.latent_shape[0],
        "bytes": len(data), "header_bytes": bitstream_format.HEADER_BYTES, "bpp": 8 * len(data) / stream.num_pixels,
        "stream_bytes": [sum(len(s) for s in per_image) for per_image in stream.strings],
    }
    code = 0
    if args.ckpt is None and args.model is None:
        from multirealism.weights import find_pretrained

        fields["shipped_model"] = find_pretrained(stream.fingerprint)
    else:
        codec = _load_codec(args)
        fields["checkpoint_matches"] = stream.fingerprint == codec.fingerprint
        if fields["checkpoint_matches"]:
            codec.read_header(data)  # also checks sizes and stream count against this model
            fields.update(model_name=model_name(codec.config()), beta_max=codec.beta_max, rate_levels=codec.num_levels)
        else:
            fields["checkpoint_model"] = codec.fingerprint.hex()
            code = 1
    if args.json:
        print(json.dumps(fields))
        return code
    print(f"file:           {args.input}")
    print(f"format version: {stream.version}")
    print(f"model:          {fields['model']}")
    print(f"quality:        {fields['quality']:g}")
    print(f"images:         {stream.num_images} x {stream.width}x{stream.height} (WxH)")
    print(f"latent grid:    {stream.latent_shape[1]}x{stream.latent_shape[0]} (hyper-latent WxH)")
    print(f"bytes:          {len(data)} ({bitstream_format.HEADER_BYTES} header/checksum)")
    print(f"bpp:            {fields['bpp']:.4f}")
    print(f"streams:        {len(stream.strings)} ({', '.join(str(n) for n in fields['stream_bytes'])} bytes)")
    if "shipped_model" in fields:
        print(f"shipped model:  {fields['shipped_model'] or 'none (pass --ckpt to check a checkpoint)'}")
    elif not fields["checkpoint_matches"]:
        print(f"checkpoint:     does NOT match (checkpoint model is {fields['checkpoint_model']})")
    else:
        print("checkpoint:     matches")
        print(f"model name:     {fields['model_name']}")
        print(f"beta_max:       {codec.beta_max:g}")
        print(f"rate levels:    {codec.num_levels} (quality 0..{codec.num_levels - 1})")
    return code


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
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="IMAGE [OUTPUT]: the image (PNG, JPEG, ... read with Pillow) and the bitstream to write "
                        "(default IMAGE's name with .mrc); several IMAGEs: each written as NAME.mrc beside it; "
                        "'-' reads standard input or writes standard output")
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
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="a progress bar on stderr during --refine (default: only when stderr is a terminal)")
    p.add_argument("--force", action="store_true", help="overwrite an existing output")
    p.add_argument("--time", action="store_true", help="print the time the model load and each image take")
    p.set_defaults(func=run_compress)

    p = subparsers.add_parser("decompress", help=".mrc bitstream -> PNG at one or more realism weights")
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="BITSTREAM [OUTPUT]: the .mrc file and the image to write, format by extension (.png, "
                        ".webp lossless, .jpg; default BITSTREAM's name with .png); with several --beta, "
                        "OUTPUT_beta<b>.EXT per β; several BITSTREAMs: each written as NAME.png beside it; "
                        "'-' reads standard input or writes a PNG to standard output (one β)")
    _add_model_options(p, "the checkpoint that wrote the bitstream",
                       "shipped model that wrote it (default: the shipped model whose fingerprint it carries)")
    p.add_argument("--beta", type=_beta, action="append",
                   help="realism weight in [0, beta_max]; repeat for several outputs (default 0)")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")
    p.add_argument("--time", action="store_true", help="print the time the model load and each bitstream take")
    p.set_defaults(func=run_decompress)

    p = subparsers.add_parser("info", help="describe a .mrc bitstream")
    p.add_argument("input", help="bitstream (.mrc)")
    _add_model_options(p, "also check that this checkpoint can decode it",
                       "also check that this shipped model can decode it (default: name the shipped model "
                       "that wrote it, if any)")
    p.add_argument("--json", action="store_true", help="print one JSON object (for scripts)")
    p.set_defaults(func=run_info)
