"""Models shipped inside the package: names, files, checksums, and loading them.

Each entry names a ``.safetensors`` file in ``multirealism/weights/`` (config in its metadata), its
SHA-256 (a damaged or replaced file is refused, not decoded with) and the fingerprint its bitstreams
carry, so a bitstream can be matched to the shipped model that wrote it without loading torch.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Optional, Tuple, Type

from multirealism.errors import CheckpointError

if TYPE_CHECKING:
    import torch

    from multirealism.codec import MultiRealismCodec


#: the rate ladder of every `small` recipe config (configs/small_warmup.yaml and the stages after it)
SMALL_LADDER = (1.28, 0.64, 0.32, 0.16, 0.08, 0.04)
#: the nine-level ladder from small-v6 on (configs/small_levels.yaml): three halvings below SMALL_LADDER
NINE_LEVEL_LADDER = (10.24, 5.12, 2.56) + SMALL_LADDER
#: the per-level realism weights of the nine-level head stages (configs/small_rate_gate.yaml,
#: small_head_gate.yaml): small-v5's six (configs/small_realism_levels.yaml) and, below them, the same rule
#: (β = 0 MSE on the training corpus relative to small-v5's lowest level)
NINE_LEVEL_REALISM_SCALES = (2.257, 1.690, 1.280, 1.0, 0.828, 0.719, 0.650, 0.610, 0.585)


@dataclass(frozen=True)
class PretrainedModel:
    """One shipped model: ``name`` is ``family-vN``; a new training run gets a new version, never the
    same name, so bitstreams written with an older release stay decodable by name."""

    name: str
    filename: str
    sha256: str
    fingerprint: str  #: hex of the 8 bytes every bitstream of this model carries
    summary: str
    #: λ per rate level of its training objective λ·bpp + 150·MSE + β·C_P·P (what latent refinement optimises)
    rate_lambdas: Tuple[float, ...] = SMALL_LADDER
    #: P and C_P of that objective: the perceptual distance its realism stage trained with, and its weight
    perceptual: Optional[str] = "stlpips-alex"
    perceptual_weight: float = 1.171875  # configs/small_realism.yaml's lpips_weight
    #: its rate ladder's per-level multipliers of β in the perceptual term, if it had them
    realism_scales: Optional[Tuple[float, ...]] = None
    #: the downscales its perceptual term was averaged over (``perceptual_scales`` of its last stage)
    perceptual_scales: Tuple[int, ...] = (1,)
    #: a shipped model this one extends: its file then holds only the tensors that differ from that model's
    #: (``multirealism export --base``), e.g. a retrained realism head, so versions share the bulk of the weights
    base: Optional[str] = None


_MODELS: Dict[str, PretrainedModel] = {}

#: the model the command line and :meth:`MultiRealismCodec.pretrained` use when none is named
DEFAULT_MODEL = "small-v9"


def _register(model: PretrainedModel) -> None:
    _MODELS[model.name] = model


_register(
    PretrainedModel(
        name="small-v1",
        filename="small-v1.safetensors",
        sha256="6c678cc5805a42738d72a81dd2a175be7a2672491d8de95737b82a0dc1d64992",
        fingerprint="e7d77491412d5b5b",
        summary="the `small` preset (1.5 M parameters): 6 rate levels, about 0.1-1 bpp, beta in [0, 5.12]; "
        "trained on CPU from 35 openly licensed photographs (configs/small_warmup.yaml, configs/small.yaml)",
        perceptual_weight=1 / 2.56,  # the default lpips_weight: configs/small.yaml set none when v1 trained
    )
)


_register(
    PretrainedModel(
        name="small-v2",
        filename="small-v2.safetensors",
        sha256="bab7a7cd18e3fed98b57dd5fd5f450296cafb6b972386b5ba99e4833bb9a442a",
        fingerprint="622733c26cfb687d",
        summary="the `small_realism` preset (1.56 M parameters): 6 rate levels, about 0.25-0.75 bpp, beta in "
        "[0, 5.12] through a realism head on top of the rate-distortion model; trained on CPU from 35 openly "
        "licensed photographs (configs/small_warmup.yaml, configs/small_realism.yaml)",
    )
)


_register(
    PretrainedModel(
        name="small-v3",
        filename="small-v3.safetensors",
        sha256="023a90e9d5b27616f3392cd1302700619d8988070754f5ee204d0c155271c7e4",
        fingerprint="0795f444347686be",
        summary="the `small_realism` preset (1.56 M parameters), as small-v2 with a longer rate-distortion warm-up "
        "(27.5 k steps): 6 rate levels, about 0.25-0.75 bpp, beta in [0, 5.12] through a realism head; trained from "
        "35 openly licensed photographs (configs/small_warmup.yaml, small_warmup_long.yaml, small_warmup_decay.yaml, "
        "small_realism.yaml)",
    )
)


_register(
    PretrainedModel(
        name="small-v4",
        filename="small-v4.safetensors",
        sha256="a97009544e90092d30ffdeb828da55e30edb4561c8b4a36a36c9e9da14b0852c",
        fingerprint="e05aa7fb093e0017",
        summary="small-v3 with its realism head retrained on ST-LPIPS (vgg) for 1000 steps "
        "(configs/small_realism_vgg.yaml): the same encoder, decoder and rates, a stronger trade-off in beta; "
        "its file holds only what differs from small-v3's (the head and the hyper-latent coder's tables)",
        perceptual="stlpips-vgg",
        base="small-v3",
    )
)


_register(
    PretrainedModel(
        name="small-v5",
        filename="small-v5.safetensors",
        sha256="20857a7c6b1b116199aa0d10d2fcda505e99e8bb321310154f6e23af8875b62d",
        fingerprint="f60fd6e6bea5512f",
        summary="small-v4's recipe with a realism weight per rate level (configs/small_realism_levels.yaml): "
        "the same encoder, decoder and rates as small-v3, a head whose trade-off in beta is monotone at every "
        "quality; its file holds only what differs from small-v3's",
        perceptual="stlpips-vgg",
        realism_scales=(1.0, 0.828, 0.719, 0.650, 0.610, 0.585),  # configs/small_realism_levels.yaml
        base="small-v3",
    )
)


_register(
    PretrainedModel(
        name="small-v6",
        filename="small-v6.safetensors",
        sha256="31a726991e8263a7adc063a15e5a094027fc544837a4cc25a4bb5a4e7116e4b8",
        fingerprint="14f98d26f288ba7b",
        summary="small-v5 with three rate levels below its lowest (configs/small_levels.yaml: only the rate control "
        "trained): 9 levels, about 0.08-0.7 bpp, beta in [0, 5.12] through small-v5's head; its file holds only "
        "what differs from small-v5's (the gain vectors and the hyper-latent coder's tables)",
        rate_lambdas=NINE_LEVEL_LADDER,
        perceptual="stlpips-vgg",
        realism_scales=NINE_LEVEL_REALISM_SCALES,
        base="small-v5",
    )
)


_register(
    PretrainedModel(
        name="small-v7",
        filename="small-v7.safetensors",
        sha256="014368bd244a75c0fd063adb7c31fb5386500e137abc2bd2e33067c6a9e0e472",
        fingerprint="79d928302189bbda",
        summary="small-v6 with a gain per rate level on its realism head's residual (configs/small_rate_gate.yaml: "
        "only the gate's 49 parameters trained, 400 steps): small-v6's encoder, decoder and rates (beta = 0 "
        "within 0.002 dB), a stronger trade-off in beta at the low rates; its file holds only what differs from small-v6's "
        "(the gate and the hyper-latent coder's tables)",
        rate_lambdas=NINE_LEVEL_LADDER,
        perceptual="stlpips-vgg",
        realism_scales=NINE_LEVEL_REALISM_SCALES,
        base="small-v6",
    )
)


_register(
    PretrainedModel(
        name="small-v8",
        filename="small-v8.safetensors",
        sha256="dfb963dd44eebadfb00419f1687f13648307163da90a94c42bc8bc118c3e831a",
        fingerprint="b3070d89cb922d88",
        summary="small-v7 with its realism head trained on together with the rate gate (configs/small_head_gate.yaml: "
        "head and gate, 600 steps): small-v7's encoder, decoder and rates, a lower held-out perceptual distance at "
        "every beta > 0 and every level; its file holds only what differs from small-v7's (the head, the gate and "
        "the hyper-latent coder's tables)",
        rate_lambdas=NINE_LEVEL_LADDER,
        perceptual="stlpips-vgg",
        realism_scales=NINE_LEVEL_REALISM_SCALES,
        base="small-v7",
    )
)


_register(
    PretrainedModel(
        name="small-v9",
        filename="small-v9.safetensors",
        sha256="e9b8a6727b3b62911ed0a1f45e9ed79e0a6b2e2605aec21b14d1866e6272b411",
        fingerprint="1de82d168317db7c",
        summary="small-v8's head-and-gate stage redone from small-v7 with the perceptual term averaged over three "
        "scales (configs/small_multiscale_head.yaml), then the gate alone on the same loss "
        "(configs/small_multiscale_gate.yaml): small-v7's encoder, decoder and rates, a held-out perceptual distance "
        "that falls at every step of beta at every level; its file holds only what differs from small-v8's",
        rate_lambdas=NINE_LEVEL_LADDER,
        perceptual="stlpips-vgg",
        realism_scales=NINE_LEVEL_REALISM_SCALES,
        perceptual_scales=(1, 2, 4),  # configs/small_multiscale_head.yaml, small_multiscale_gate.yaml
        base="small-v8",
    )
)


def list_pretrained() -> List[str]:
    """Names of the shipped models, for :meth:`MultiRealismCodec.pretrained` and ``--model``."""
    return sorted(_MODELS)


def pretrained_info(name: str) -> PretrainedModel:
    """The entry of shipped model ``name``; an unknown name is a :class:`CheckpointError` listing the known ones."""
    try:
        return _MODELS[name]
    except KeyError:
        raise CheckpointError(f"no shipped model named {name!r}; shipped: {', '.join(list_pretrained())}") from None


def find_pretrained(fingerprint: bytes) -> Optional[str]:
    """Name of the shipped model whose bitstreams carry ``fingerprint``, or None."""
    return next((m.name for m in _MODELS.values() if m.fingerprint == fingerprint.hex()), None)


def weights_path(name: str) -> Path:
    """The installed weight file of ``name``, checked against its SHA-256."""
    model = pretrained_info(name)
    path = Path(str(resources.files("multirealism") / "weights" / model.filename))
    if not path.is_file():
        raise CheckpointError(f"shipped model {name!r}: weight file {str(path)!r} is not installed; reinstall multirealism")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != model.sha256:
        raise CheckpointError(
            f"shipped model {name!r}: {str(path)!r} is damaged or replaced (sha256 {digest[:16]}..., "
            f"expected {model.sha256[:16]}...); reinstall multirealism"
        )
    return path


def load_pretrained(
    name: str = DEFAULT_MODEL,
    map_location: "str | torch.device" = "cpu",
    cls: "Optional[Type[MultiRealismCodec]]" = None,
) -> "MultiRealismCodec":
    """The shipped model ``name`` built as ``cls`` (default :class:`MultiRealismCodec`), ready to code;
    the body of :meth:`MultiRealismCodec.pretrained`."""
    if cls is None:
        from multirealism.codec import MultiRealismCodec as cls

    info = pretrained_info(name)
    if info.base is None:
        codec = cls.from_checkpoint(weights_path(name), map_location=map_location)
    else:
        codec = apply_delta(load_pretrained(info.base, map_location, cls), weights_path(name), f"shipped model {name!r}")
        codec.to(map_location)  # a delta with its own architecture is built afresh, on the CPU
    if codec.fingerprint.hex() != info.fingerprint:
        raise CheckpointError(
            f"shipped model {name!r} loads with fingerprint {codec.fingerprint.hex()}, not the registered "
            f"{info.fingerprint}: its bitstreams would not match; reinstall multirealism"
        )
    from multirealism.latent_refinement import RateDistortionObjective

    codec.objective = RateDistortionObjective(
        info.rate_lambdas, mse_weight=150.0, perceptual=info.perceptual, perceptual_weight=info.perceptual_weight,
        realism_scales=info.realism_scales, perceptual_scales=info.perceptual_scales,
    )
    return codec


def apply_delta(base: "MultiRealismCodec", path: Path, label: str) -> "MultiRealismCodec":
    """``base`` with the tensors of the weights file ``path`` (written by ``export --base``) put in its place.

    The file's config is the model's: ``base``'s own (the file's tensors overwrite ``base``'s, which is
    returned), or an architecture with every tensor name of the base's whose shapes may differ, and which
    may have more tensors, where the file holds those tensors (e.g. more rate levels, a wider head that
    reads the rate: a new codec is built, the file's tensors and the base's others). Every tensor in the
    file must be one of the model's, same shape except for the entropy coders' tables, which the codec
    resizes."""
    from multirealism.checkpoint import RESIZED_BUFFERS, load_weights

    config, delta = load_weights(path)
    codec = base
    if config is not None and config != base.config():
        try:
            codec = type(base).from_config(config)
        except (TypeError, ValueError, KeyError) as err:
            raise CheckpointError(f"{label}: {str(path)!r} holds a config that does not build: {err}") from None
    state = codec.state_dict()
    if codec is not base:
        theirs = base.state_dict()
        if not set(theirs) <= set(state):
            raise CheckpointError(f"{label}: {str(path)!r} was exported for another architecture than its base model's")
        reshaped = [k for k in state if k not in delta and (k not in theirs or (
            state[k].shape != theirs[k].shape and not k.endswith(RESIZED_BUFFERS)))]
        if reshaped:
            raise CheckpointError(f"{label}: {str(path)!r} lacks tensors that its base model lacks or has in "
                                  f"another shape: {reshaped[:5]}")
        delta = {**{k: v for k, v in theirs.items() if k not in delta}, **delta}  # the whole model, loaded below
    foreign = [
        k for k, v in delta.items() if k not in state or (v.shape != state[k].shape and not k.endswith(RESIZED_BUFFERS))
    ]
    if foreign:
        raise CheckpointError(f"{label}: {str(path)!r} holds tensors its base model lacks or has in other shapes: "
                              f"{foreign[:5]}")
    # the tensors the file leaves out keep the base's values; passing them too lets CompressAI's loader find the
    # entropy coders' tables, which it requires even when the file (tables unchanged) holds none of them
    codec.load_state_dict({**state, **delta})
    codec.update()
    return codec
