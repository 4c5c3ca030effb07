"""Where a training run starts: codec weights from another run's checkpoint, and which parts train.

A stage of a recipe starts from the previous stage's checkpoint (``init.checkpoint``), may add parts the
checkpoint lacks (``init.new_parts``, kept at their fresh values) and may train only some parts
(``init.trainable``). The entropy bottleneck's quantiles follow CompressAI's auxiliary loss only while its
density trains, so a stage that freezes the bitstream keeps the coder's tables bit for bit.
"""

from __future__ import annotations

from typing import List, Mapping, Optional, Sequence

from torch import nn

from multirealism.checkpoint import load_weights
from multirealism.codec import MultiRealismCodec
from multirealism.errors import CheckpointError

ARCHITECTURE_KEYS = ("encoder", "entropy_model", "generator")


def quantile_parameters(codec: MultiRealismCodec) -> List[nn.Parameter]:
    """The entropy bottleneck quantiles, trained only by the auxiliary loss (CompressAI convention)."""
    return [p for name, p in codec.entropy_model.named_parameters() if name.endswith("quantiles")]


def quantile_densities(codec: MultiRealismCodec) -> List[nn.Parameter]:
    """The density parameters of the modules that hold quantiles: the auxiliary loss depends only on them,
    so while they are frozen the quantiles' targets stand still."""
    return [p for module in codec.entropy_model.modules() if isinstance(getattr(module, "quantiles", None), nn.Parameter)
            for name, p in module.named_parameters() if name != "quantiles"]


def codec_part(codec: MultiRealismCodec, name: str) -> nn.Module:
    """The codec submodule at attribute path ``name`` (e.g. ``generator.refiner``)."""
    try:
        return codec.get_submodule(name)
    except AttributeError:
        parts = sorted(n for n, _ in codec.named_children())
        raise ValueError(f"{name!r} is not a part of this codec (its parts: {', '.join(parts)})") from None


def load_codec_weights(
    codec: MultiRealismCodec,
    discriminator: Optional[nn.Module],
    path: str,
    new_parts: Sequence[str] = (),
    copy_parts: Optional[Mapping[str, str]] = None,
) -> None:
    """Initialise ``codec`` (and ``discriminator``, where the file holds one) from another run's checkpoint:
    the same encoder, entropy model and generator, except for the ``new_parts`` it lacks, which keep their
    initial values, and the ``copy_parts`` (new part -> stored part), which start as copies of the stored
    part's weights; a fixed-rate checkpoint may start a rate-controlled codec, whose gains then start fresh."""
    copy_parts = dict(copy_parts or {})
    new_parts = (*new_parts, *(name for name in copy_parts if name not in new_parts))
    for name in new_parts:
        codec_part(codec, name)
    stored, state = load_weights(path)
    if stored is not None:
        mine = codec.config()
        extended = {name.split(".")[0] for name in new_parts}
        differ = [k for k in ARCHITECTURE_KEYS if k not in extended and stored.get(k) != mine.get(k)]
        if differ:
            raise CheckpointError(f"init.checkpoint {path!r} has a different {', '.join(differ)} than this codec")
    prefix = "discriminator."
    disc_state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    state = {k: v for k, v in state.items() if not k.startswith(prefix)}
    if disc_state and discriminator is not None:  # a GAN stage started from another
        discriminator.load_state_dict(disc_state)
    # new parts keep their initial values, also where the checkpoint has an older (or other-sized) version
    new_prefixes = tuple(f"{name}." for name in new_parts)
    state = {k: v for k, v in state.items() if not k.startswith(new_prefixes)}
    missing, unexpected = codec.load_state_dict(state, strict=False)
    fresh = ("rate_control.", *new_prefixes)
    missing = [k for k in missing if not k.startswith(fresh)]
    if missing or unexpected:
        raise CheckpointError(f"init.checkpoint {path!r}: missing {missing[:5]}, unexpected {unexpected[:5]}")
    for target, source in copy_parts.items():
        prefix = f"{source}."
        copied = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix) and not k.startswith(f"{target}.")}
        try:
            codec_part(codec, target).load_state_dict(copied)
        except RuntimeError as error:  # torch's message: a headline, then one line per mismatch
            lines = str(error).splitlines()
            detail = lines[1].strip() if len(lines) > 1 else lines[0]
            raise CheckpointError(f"init.copy_parts: {path!r}'s {source!r} does not fit {target!r}: {detail}") from None


def freeze_all_but(codec: MultiRealismCodec, trainable: Sequence[str]) -> None:
    """Stop gradients to every codec part not named in ``trainable``; the quantiles train only with their
    density."""
    parts = [codec_part(codec, name) for name in trainable]
    codec.requires_grad_(False)
    for part in parts:
        part.requires_grad_(True)
    density_trains = any(p.requires_grad for p in quantile_densities(codec))
    for quantiles in quantile_parameters(codec):
        quantiles.requires_grad_(density_trains)
