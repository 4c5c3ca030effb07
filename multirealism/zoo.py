"""The model zoo: named architectures and the weights shipped for them, in the manner of timm's registry.

``create_codec("small")`` builds a freshly initialised codec from an architecture preset;
``create_codec("small", pretrained=True)`` (or ``MultiRealismCodec.pretrained("small")``) loads the weights the
package ships for it. ``list_codecs()`` names the presets, ``list_pretrained()`` the shipped models, and
``find_pretrained(fingerprint)`` the shipped model that wrote a bitstream. The shipped models are listed, with
their checksums and fingerprints, in ``multirealism/weights/models.json`` (read by :mod:`multirealism.weights`
without torch, so the command line names them in ``--help``), which the loader reads too.

Each preset function states every width once; ``latent_channels`` and ``beta_max`` are passed to each component
from one local value, and the codec checks that the components agree.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional

from multirealism.codec import MultiRealismCodec
from multirealism.errors import CheckpointError
from multirealism.weights import default_pretrained, find_pretrained, list_pretrained, pretrained_info

__all__ = [
    "codec_config", "create_codec", "default_pretrained", "find_pretrained", "list_codecs", "list_pretrained",
    "pretrained_info", "register_codec",
]

ConfigFn = Callable[..., Dict[str, Any]]
_PRESETS: Dict[str, ConfigFn] = {}


def register_codec(name: str) -> Callable[[ConfigFn], ConfigFn]:
    """Decorator: register a function returning a codec config under ``name`` (the function is unchanged)."""

    def add(fn: ConfigFn) -> ConfigFn:
        if name in _PRESETS:
            raise ValueError(f"codec preset {name!r} is already registered")
        _PRESETS[name] = fn
        return fn

    return add


def list_codecs() -> List[str]:
    """Names of the registered architecture presets, sorted."""
    return sorted(_PRESETS)


def codec_config(name: str, **overrides: Any) -> Dict[str, Any]:
    """The config of preset ``name``; ``overrides`` are the preset function's keyword arguments."""
    if name not in _PRESETS:
        raise ValueError(f"unknown codec preset {name!r}; known: {', '.join(list_codecs())}")
    return _PRESETS[name](**overrides)


def create_codec(
    name: str, pretrained: bool = False, options: Optional[Dict[str, Any]] = None, **overrides: Any
) -> MultiRealismCodec:
    """A codec of preset ``name``: freshly initialised, or with ``pretrained`` the shipped model of that name.
    ``options`` and ``overrides`` are the preset function's keyword arguments (``options`` is how a YAML config
    gives them: ``init_args: {name: small, options: {num_levels: 9}}``); a shipped model's are fixed."""
    options = dict(options or {})
    both = sorted(set(options) & set(overrides))
    if both:
        raise ValueError(f"preset option(s) {', '.join(both)} given twice (in options and as keywords)")
    if pretrained:
        if options or overrides:
            raise ValueError(f"a shipped model's architecture is fixed: drop {', '.join(sorted({**options, **overrides}))}")
        if name not in list_pretrained():
            raise CheckpointError(f"no shipped weights for {name!r}; shipped: {', '.join(list_pretrained())}")
        return MultiRealismCodec.pretrained(name)
    return MultiRealismCodec.from_config(codec_config(name, **options, **overrides))


# ---------------------------------------------------------------------------------------------------- presets
@register_codec("paper")
def paper_config(entropy_model: str = "charm", beta_max: float = 5.12) -> Dict[str, Any]:
    """Agustsson et al. 2023 scale: ELIC encoder 192/320, generator 256/128, hyperprior 192 (``entropy_model=
    "hyperprior"`` for the faster mean-scale hyperprior instead of charm)."""
    latent = 320
    entropy_args: Dict[str, Any] = {"latent_channels": latent, "hyper_channels": 192}
    if entropy_model == "charm":
        entropy_args.update(num_slices=10, max_support_slices=5)
    return {
        "encoder": {"name": "elic", "args": {"channels": 192, "latent_channels": latent}},
        "entropy_model": {"name": entropy_model, "args": entropy_args},
        "generator": {
            "name": "elic_cond",
            "args": {"latent_channels": latent, "channels": 256, "mid_channels": 128, "beta_max": beta_max},
        },
    }


@register_codec("tiny")
def tiny_config(
    entropy_model: str = "hyperprior", conditioner: str = "fourier", beta_max: float = 5.12
) -> Dict[str, Any]:
    """A few tens of thousands of parameters: for tests, CI and the 2-core quickstart.
    ``entropy_model="charm"`` picks the channel-autoregressive model, ``conditioner="table"`` TableCond."""
    latent = 16
    entropy_args: Dict[str, Any] = {"latent_channels": latent, "hyper_channels": 8}
    if entropy_model == "charm":
        entropy_args.update(num_slices=4, max_support_slices=2, transform_channels=[16])
    return {
        "encoder": {
            "name": "elic",
            "args": {"channels": 16, "latent_channels": latent, "blocks_per_stage": 1, "attention": False},
        },
        "entropy_model": {"name": entropy_model, "args": entropy_args},
        "generator": {
            "name": "elic_cond",
            "args": {
                "latent_channels": latent, "channels": 16, "mid_channels": 8, "blocks_per_stage": 1,
                "attention": False, "conditioner": conditioner, "cond_channels": 16, "num_frequencies": 4,
                "beta_max": beta_max,
            },
        },
    }


#: the generator each ``realism`` option of the GDN presets builds
_REALISM_GENERATORS = {"none": "residual_cond", "branch": "residual_cond_branched",
                       "noisy_branch": "residual_cond_branched_noisy", "head": "residual_cond_rate_gated"}


def _gdn_config(
    channels: int, latent: int, hyper: int, generator_channels: int, num_levels: int, beta_max: float,
    realism: str,
) -> Dict[str, Any]:
    """A GDN analysis transform, the mean-scale hyperprior, the β-conditioned residual generator and gain units
    for ``num_levels`` rates (``num_levels=1``: none). ``realism`` picks how β > 0 is synthesised: ``"none"``
    (the residual generator alone, as a rate–distortion warm-up trains it), ``"branch"`` (a second synthesis
    blended with the frozen base by β), ``"noisy_branch"`` (the same with noise inputs in the realism
    synthesis) or ``"head"`` (a rate-gated head on the base image)."""
    generator_args: Dict[str, Any] = {
        "latent_channels": latent, "channels": generator_channels, "mid_channels": generator_channels // 2,
        "blocks_per_stage": 2, "cond_channels": 64, "beta_max": beta_max,
    }
    if realism not in _REALISM_GENERATORS:
        raise ValueError(f"realism must be one of {', '.join(_REALISM_GENERATORS)}, got {realism!r}")
    if realism == "head":
        generator_args.update(refiner_channels=32, refiner_mid_channels=16, base_beta=0.0)
    rate_control = (
        {"rate_control": {"name": "gain", "args": {"latent_channels": latent, "num_levels": num_levels, "min_gain": 0.2}}}
        if num_levels > 1 else {}
    )
    return {
        **rate_control,
        "encoder": {"name": "gdn", "args": {"channels": channels, "latent_channels": latent}},
        "entropy_model": {"name": "hyperprior", "args": {"latent_channels": latent, "hyper_channels": hyper}},
        "generator": {"name": _REALISM_GENERATORS[realism], "args": generator_args},
    }


@register_codec("small")
def small_config(beta_max: float = 5.12, num_levels: int = 9, realism: str = "branch") -> Dict[str, Any]:
    """CPU-sized (the base about 1.5 M parameters, like CompressAI's MeanScaleHyperprior(64, 96)): GDN 64 /
    latent 96, one model for ``num_levels`` rates. ``realism="none"`` gives the plain rate-distortion model its
    warm-up trains; the shipped ``small`` model adds the realism branch."""
    return _gdn_config(64, 96, 64, 64, num_levels, beta_max, realism)


@register_codec("medium")
def medium_config(beta_max: float = 5.12, num_levels: int = 12, realism: str = "branch") -> Dict[str, Any]:
    """The widths of CompressAI's mean-scale hyperprior for its lower qualities (GDN 128 / latent 192, the base
    about 6 M parameters) with the β-conditioned generator at 128 channels, for rates from about 0.1 to 0.9 bpp
    in ``num_levels`` levels. ``realism="none"`` gives the rate-distortion model its warm-up trains; the shipped
    ``medium`` model adds the realism branch."""
    return _gdn_config(128, 192, 128, 128, num_levels, beta_max, realism)
