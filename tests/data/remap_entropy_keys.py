"""Rename the entropy-model parameters of the committed ``fitted_tiny_*.safetensors.gz`` files to the
layout built from CompressAI's latent codecs (same tensors, new names); run once per layout change.
The variable-rate ``fitted_tiny_rate_control`` (a hyperprior plus gain units, whose ``rate_control.*``
entries keep their names) is remapped like the hyperprior.

Old layout: ``entropy_model.{h_a,h_s,entropy_bottleneck,gaussian_conditional}.*``, and charm's h_s
emitted (means, scales). New layout: z's transforms and prior live in a ``HyperLatentCodec``
(``hyper.*``; the hyperprior's inside ``latent_codec.hyper.*``, its Gaussian in
``latent_codec.y.*``), and every h_s emits (scales, means), so charm's last h_s layer has the two
halves of its output channels swapped.

The model fingerprint hashes parameter names, so the golden bitstream (``golden/crop.mrc``) and
``golden/reference.npz`` get the new fingerprint (and the container's CRC over it) restamped; their
entropy-coded strings are left untouched, and ``test_golden.py`` re-encodes ``crop.png`` to exactly
these bytes, which proves the renamed model codes identically.
Run: ``python tests/data/remap_entropy_keys.py`` (idempotent).
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import sys
from pathlib import Path
from typing import Dict

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
sys.path.insert(0, str(HERE.parent))  # tests/, for compact_codec

from compact_codec import load_compact  # noqa: E402

from multirealism import bitstream_format  # noqa: E402
from multirealism.checkpoint import CONFIG_KEY, atomic_write_bytes  # noqa: E402

GOLDEN = HERE / "golden"

PREFIX = "entropy_model."
LAST_H_S = "h_s.4."  # the 3x3 deconv that emits y's parameters


def _swap_output_halves(name: str, tensor: torch.Tensor) -> torch.Tensor:
    """ConvTranspose2d weight is (in, out, k, k) and bias (out,): swap the two output halves."""
    dim = 1 if name.endswith("weight") else 0
    first, second = tensor.chunk(2, dim=dim)
    return torch.cat([second, first], dim=dim)


def remap(tensors: Dict[str, torch.Tensor], entropy_model: str) -> Dict[str, torch.Tensor]:
    """The new name (and, for charm's last h_s layer, the channel-swapped tensor) of every entry."""
    hyper = {"hyperprior": "latent_codec.hyper.", "charm": "hyper."}[entropy_model]
    gaussian = {"hyperprior": "latent_codec.y.gaussian_conditional.", "charm": "gaussian_conditional."}[entropy_model]
    out: Dict[str, torch.Tensor] = {}
    for name, tensor in tensors.items():
        if name.startswith(PREFIX):
            rest = name[len(PREFIX):]
            if rest.startswith(("h_a.", "h_s.", "entropy_bottleneck.")):
                if entropy_model == "charm" and rest.startswith(LAST_H_S):
                    tensor = _swap_output_halves(rest, tensor)
                rest = hyper + rest
            elif rest.startswith("gaussian_conditional."):
                rest = gaussian + rest[len("gaussian_conditional."):]
            name = PREFIX + rest
        if name in out:
            raise ValueError(f"two entries map to {name}")
        out[name] = tensor
    return out


def restamp_golden() -> None:
    """Give the golden bitstream and reference the renamed hyperprior codec's fingerprint."""
    fingerprint = load_compact(HERE / "fitted_tiny_hyperprior.safetensors.gz").fingerprint
    mrc = GOLDEN / "crop.mrc"
    stream = bitstream_format.unpack(mrc.read_bytes())
    if stream.fingerprint == fingerprint:
        print(f"{mrc.name}: fingerprint already current")
        return
    restamped = bitstream_format.pack(dataclasses.replace(stream, fingerprint=fingerprint))
    assert bitstream_format.unpack(restamped).strings == stream.strings
    atomic_write_bytes(mrc, restamped)
    with np.load(GOLDEN / "reference.npz") as ref:
        arrays = {k: ref[k] for k in ref.files}
    arrays["fingerprint"] = np.frombuffer(fingerprint, dtype=np.uint8)
    np.savez_compressed(GOLDEN / "reference.npz", **arrays)
    print(f"{mrc.name}, reference.npz: fingerprint {stream.fingerprint.hex()} -> {fingerprint.hex()}")


#: committed fitted codec -> the entropy model it holds
FITTED = {"hyperprior": "hyperprior", "charm": "charm", "rate_control": "hyperprior"}


def main() -> None:
    for stem, entropy_model in FITTED.items():
        path = HERE / f"fitted_tiny_{stem}.safetensors.gz"
        raw = gzip.decompress(path.read_bytes())
        unzipped = path.with_suffix("")
        unzipped.write_bytes(raw)
        try:
            with safe_open(str(unzipped), "pt") as f:
                metadata = f.metadata()
                tensors = {k: f.get_tensor(k) for k in f.keys()}
        finally:
            unzipped.unlink()
        if json.loads(metadata[CONFIG_KEY])["entropy_model"]["name"] != entropy_model:
            raise ValueError(f"{path.name} does not hold a {entropy_model} entropy model")
        if any(k.startswith((PREFIX + "latent_codec.", PREFIX + "hyper.")) for k in tensors):
            print(f"{path.name}: already remapped")
            continue
        new = remap(tensors, entropy_model)
        atomic_write_bytes(path, gzip.compress(save(new, metadata=metadata), compresslevel=9, mtime=0))
        print(f"{path.name}: {sum(a != b for a, b in zip(tensors, new))} entries renamed")
    restamp_golden()


if __name__ == "__main__":
    main()
