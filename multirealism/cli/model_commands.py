"""``multirealism models | export``: the shipped models, and turning a training checkpoint into a
weights file like theirs.

``export`` is CompressAI's ``update_model`` for this library: it loads a Lightning checkpoint behind
the usual guards, drops everything training-only (optimizer, discriminator), builds the entropy-coder
tables and writes a ``.safetensors`` file with the config in its metadata. It prints the file's
SHA-256 and the model fingerprint, the two values an entry of :mod:`multirealism.pretrained` holds.
With ``--base MODEL`` it writes only the tensors that differ from the shipped ``MODEL``'s, for an entry
that extends that model (``base=``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Dict

from multirealism.errors import CheckpointError, OutputPathError

if TYPE_CHECKING:
    from torch import Tensor

    from multirealism.codec import MultiRealismCodec


def run_models(args: argparse.Namespace) -> int:
    from multirealism.pretrained import DEFAULT_MODEL, list_pretrained, pretrained_info

    if args.json:
        print(json.dumps([{"name": name, "default": name == DEFAULT_MODEL, "summary": pretrained_info(name).summary}
                          for name in list_pretrained()]))
        return 0
    for name in list_pretrained():
        marker = " (default)" if name == DEFAULT_MODEL else ""
        print(f"{name}{marker}: {pretrained_info(name).summary}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    from multirealism.checkpoint import weights_bytes
    from multirealism.codec import MultiRealismCodec
    from multirealism.imageio import check_destination, write_new_file

    out = Path(args.output)
    if out.suffix != ".safetensors":
        raise OutputPathError(f"cannot write {str(out)!r}: export writes .safetensors files")
    check_destination(out, args.force)  # before the (slower) checkpoint load
    codec = MultiRealismCodec.from_checkpoint(args.ckpt)
    state = codec.state_dict()
    if args.base is not None:
        state = _differing_from(state, MultiRealismCodec.pretrained(args.base), args.base)
    data = weights_bytes(codec.config(), state)
    write_new_file(out, data, force=args.force)  # also refuses a file created meanwhile
    print(f"{args.ckpt} -> {out}: {len(data) / 2**20:.2f} MiB")
    print(f"sha256:      {hashlib.sha256(data).hexdigest()}")
    print(f"fingerprint: {codec.fingerprint.hex()}")
    return 0


def _differing_from(state: "Dict[str, Tensor]", base: "MultiRealismCodec", name: str) -> "Dict[str, Tensor]":
    """The tensors of ``state`` that the shipped model ``base`` does not hold as they are (a retrained head,
    entropy-coder tables that moved, tensors it lacks); refused when the checkpoint lacks any of the base's."""
    import torch

    theirs = base.state_dict()
    if not set(theirs) <= set(state):
        raise CheckpointError(f"--base {name}: the checkpoint's architecture is not the base model's")
    return {k: v for k, v in state.items() if k not in theirs or v.shape != theirs[k].shape or not torch.equal(v, theirs[k])}


def add_parser(subparsers: "argparse._SubParsersAction") -> None:
    """Register ``models`` and ``export``."""
    p = subparsers.add_parser("models", help="list the models shipped in the package")
    p.add_argument("--json", action="store_true", help="print a JSON list (for scripts)")
    p.set_defaults(func=run_models)

    p = subparsers.add_parser("export", help="training checkpoint -> inference .safetensors (config in metadata)")
    p.add_argument("ckpt", help="Lightning checkpoint (.ckpt) or any weights file the codec reads")
    p.add_argument("output", help="file to write (.safetensors)")
    p.add_argument("--force", action="store_true", help="overwrite an existing output")
    p.add_argument("--base", default=None, metavar="MODEL",
                   help="write only the tensors that differ from this shipped model's (for a pretrained entry "
                   "with base=MODEL, e.g. a retrained realism head)")
    p.set_defaults(func=run_export)
