"""``multirealism models | export``: the shipped models, and turning a training checkpoint into a
weights file like theirs.

``export`` is CompressAI's ``update_model`` for this library: it loads a Lightning checkpoint behind
the usual guards, drops everything training-only (optimizer, discriminator), builds the entropy-coder
tables and writes a ``.safetensors`` file with the config and the training objective in its metadata.
It prints the file's SHA-256 and the model fingerprint, the two values an entry of
``multirealism/weights/models.json`` holds.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

from multirealism.errors import OutputPathError


def run_models(args: argparse.Namespace) -> int:
    """One line per shipped model: name, rate levels and measured bpp range, β range, parameters, file size."""
    from multirealism.checkpoint import shipped_weights
    from multirealism.codec import MultiRealismCodec
    from multirealism.weights import default_pretrained, list_pretrained, pretrained_info

    if args.json:
        print(json.dumps([{"name": name, "default": name == default_pretrained(), **pretrained_info(name)}
                          for name in list_pretrained()]))
        return 0
    for name in list_pretrained():
        codec, info = MultiRealismCodec.pretrained(name), pretrained_info(name)
        low, high = info["bpp"]
        size = shipped_weights(name).stat().st_size / 2**20
        params = sum(p.numel() for p in codec.parameters()) / 1e6
        marker = " (default)" if name == default_pretrained() else ""
        print(f"{name}{marker}: {codec.num_levels} levels, {low:g}-{high:g} bpp, beta 0-{codec.beta_max:g}, "
              f"{params:.2f} M parameters, {size:.1f} MiB")
    return 0


def run_export(args: argparse.Namespace) -> int:
    from multirealism.checkpoint import half_kernels, weights_bytes
    from multirealism.codec import MultiRealismCodec
    from multirealism.imageio import check_destination, write_new_file

    out = Path(args.output)
    if out.suffix != ".safetensors":
        raise OutputPathError(f"cannot write {str(out)!r}: export writes .safetensors files")
    check_destination(out, args.force)  # before the (slower) checkpoint load
    codec = MultiRealismCodec.from_checkpoint(args.ckpt)
    state = codec.state_dict()
    if args.half:  # round the kernels first, so the tables and fingerprint are those of the weights written
        codec.load_state_dict(half_kernels(state))
        codec.update(force=True)
        state = half_kernels(codec.state_dict())
    data = weights_bytes(codec.config(), state, objective=codec.objective)
    write_new_file(out, data, force=args.force)  # also refuses a file created meanwhile
    print(f"{args.ckpt} -> {out}: {len(data) / 2**20:.2f} MiB")
    print(f"sha256:      {hashlib.sha256(data).hexdigest()}")
    print(f"fingerprint: {codec.fingerprint.hex()}")
    return 0


def add_parser(subparsers: "argparse._SubParsersAction") -> None:
    """Register ``models`` and ``export``."""
    p = subparsers.add_parser("models", help="list the models shipped in the package")
    p.add_argument("--json", action="store_true", help="print a JSON list (for scripts)")
    p.set_defaults(func=run_models)

    p = subparsers.add_parser("export", help="training checkpoint -> inference .safetensors (config and objective in metadata)")
    p.add_argument("ckpt", help="Lightning checkpoint (.ckpt) or any weights file the codec reads")
    p.add_argument("output", help="file to write (.safetensors)")
    p.add_argument("--force", action="store_true", help="overwrite an existing output")
    p.add_argument("--half", action="store_true",
                   help="store the convolution kernels as float16: half the file, loaded back as float32")
    p.set_defaults(func=run_export)
