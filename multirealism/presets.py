"""Named codec configurations (a timm-style registry): the paper's scale and a tiny one for CPU tests
and the quickstart. ``create_codec("tiny", conditioner="table")`` builds one; ``list_codecs()`` names them.

Each preset function states every width once; ``latent_channels`` and ``beta_max`` are passed to each
component from one local value, and the codec checks that the components agree.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional

if TYPE_CHECKING:
    from multirealism.codec import MultiRealismCodec

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
    """Names of the registered presets, sorted."""
    return sorted(_PRESETS)


def codec_config(name: str, **overrides: Any) -> Dict[str, Any]:
    """The config of preset ``name``; ``overrides`` are the preset function's keyword arguments."""
    if name not in _PRESETS:
        raise ValueError(f"unknown codec preset {name!r}; known: {', '.join(list_codecs())}")
    return _PRESETS[name](**overrides)


def create_codec(name: str, options: Optional[Dict[str, Any]] = None, **overrides: Any) -> "MultiRealismCodec":
    """Build a freshly initialised codec from preset ``name``; ``options`` and ``overrides`` are the preset
    function's keyword arguments (``options`` is how a YAML config gives them: ``init_args: {name: small,
    options: {num_levels: 9}}``)."""
    from multirealism.codec import MultiRealismCodec

    options = dict(options or {})
    both = sorted(set(options) & set(overrides))
    if both:
        raise ValueError(f"preset option(s) {', '.join(both)} given twice (in options and as keywords)")
    return MultiRealismCodec.from_config(codec_config(name, **options, **overrides))


@register_codec("paper")
def paper_config(entropy_model: str = "charm", beta_max: float = 5.12) -> Dict[str, Any]:
    """Agustsson et al. 2023 scale: ELIC encoder 192/320, generator 256/128, hyperprior 192."""
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


@register_codec("paper_hyperprior")
def paper_hyperprior_config(beta_max: float = 5.12) -> Dict[str, Any]:
    """The paper's scale with the (faster) mean-scale hyperprior instead of the charm entropy model."""
    return paper_config("hyperprior", beta_max)


@register_codec("tiny")
def tiny_config(
    entropy_model: str = "hyperprior", conditioner: str = "fourier", beta_max: float = 5.12
) -> Dict[str, Any]:
    """A few tens of thousands of parameters: for tests, CI and the 2-core quickstart.
    ``conditioner="table"`` picks TableCond instead of FourierCond."""
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
                "latent_channels": latent,
                "channels": 16,
                "mid_channels": 8,
                "blocks_per_stage": 1,
                "attention": False,
                "conditioner": conditioner,
                "cond_channels": 16,
                "num_frequencies": 4,
                "beta_max": beta_max,
            },
        },
    }


@register_codec("tiny_charm")
def tiny_charm_config(conditioner: str = "fourier", beta_max: float = 5.12) -> Dict[str, Any]:
    """The tiny codec with the channel-autoregressive (charm) entropy model."""
    return tiny_config("charm", conditioner, beta_max)


@register_codec("small")
def small_config(
    beta_max: float = 5.12, num_levels: int = 6, refiner_channels: int = 0, base_beta: Optional[float] = None,
    refiner_reads_rate: bool = False, refiner_rate_gate: bool = False, refiner_extra_blocks: int = 0,
    refiner_dilation: int = 1,
) -> Dict[str, Any]:
    """CPU-sized (about 1.5 M parameters, 25 kMACs/pixel, like CompressAI's MeanScaleHyperprior(64, 96)):
    a GDN analysis transform, the mean-scale hyperprior, a β-conditioned residual generator and gain
    units for ``num_levels`` rates (one model from about 0.1 to 1 bpp; ``num_levels=1`` drops them).
    ``refiner_channels > 0`` adds the β-gated :class:`~multirealism.components.RealismRefiner` of that width,
    ``refiner_reads_rate`` makes it read the rate level (``residual_cond_rate_refined``), ``refiner_rate_gate``
    scales its residual by a gain per rate level instead (``residual_cond_rate_gated``);
    ``refiner_extra_blocks`` deepens the head by that many blocks, dilated by ``refiner_dilation``."""
    latent = 96
    generator_args: Dict[str, Any] = {"latent_channels": latent, "channels": 64, "mid_channels": 32,
                                      "blocks_per_stage": 2, "cond_channels": 64, "beta_max": beta_max}
    if refiner_channels > 0:
        generator_args.update(refiner_channels=refiner_channels, refiner_mid_channels=max(1, refiner_channels // 2),
                              base_beta=base_beta)
    if refiner_extra_blocks:
        generator_args.update(refiner_extra_blocks=refiner_extra_blocks, refiner_dilation=refiner_dilation)
    rate_control = (
        {"rate_control": {"name": "gain", "args": {"latent_channels": latent, "num_levels": num_levels, "min_gain": 0.2}}}
        if num_levels > 1 else {}
    )
    return {
        **rate_control,
        "encoder": {"name": "gdn", "args": {"channels": 64, "latent_channels": latent}},
        "entropy_model": {"name": "hyperprior", "args": {"latent_channels": latent, "hyper_channels": 64}},
        "generator": {
            "name": _generator_name(
                refiner_channels, refiner_reads_rate, refiner_rate_gate, refiner_extra_blocks, refiner_dilation
            ),
            "args": generator_args,
        },
    }


def _generator_name(
    refiner_channels: int, refiner_reads_rate: bool, refiner_rate_gate: bool, refiner_extra_blocks: int,
    refiner_dilation: int,
) -> str:
    """The ``small`` presets' generator: plain, with a realism head, with one that reads the rate, or with
    one whose strength a rate gate sets (deepened by ``refiner_extra_blocks``)."""
    for flag, on in (("refiner_reads_rate", refiner_reads_rate), ("refiner_rate_gate", refiner_rate_gate)):
        if on and refiner_channels <= 0:
            raise ValueError(f"{flag} needs a realism head (refiner_channels > 0)")
    if refiner_reads_rate and refiner_rate_gate:
        raise ValueError("refiner_reads_rate and refiner_rate_gate are two ways to give the head the rate: pick one")
    if refiner_extra_blocks and not refiner_rate_gate:
        raise ValueError("refiner_extra_blocks deepens a rate-gated head: set refiner_rate_gate")
    if refiner_dilation != 1 and not refiner_extra_blocks:
        raise ValueError("refiner_dilation applies to the added head blocks: set refiner_extra_blocks")
    if refiner_channels <= 0:
        return "residual_cond"
    if refiner_rate_gate:
        return "residual_cond_rate_gated_deep" if refiner_extra_blocks else "residual_cond_rate_gated"
    return "residual_cond_rate_refined" if refiner_reads_rate else "residual_cond_refined"


@register_codec("small_realism")
def small_realism_config(
    beta_max: float = 5.12, num_levels: int = 6, refiner_channels: int = 32, refiner_reads_rate: bool = False,
    refiner_rate_gate: bool = False, refiner_extra_blocks: int = 0, refiner_dilation: int = 1,
) -> Dict[str, Any]:
    """``small`` with a β-gated realism head on the generator, whose base layers stay at β = 0
    (configs/small_realism.yaml trains only the head on top of a ``small`` warm-up, so β = 0 stays the
    warm-up's reconstruction and β alone drives the head); ``refiner_reads_rate`` gives the head the rate
    level too (one head for many levels: configs/small_rate_head.yaml), ``refiner_rate_gate`` a gain per level
    on its residual (configs/small_rate_gate.yaml)."""
    return small_config(
        beta_max, num_levels, refiner_channels, base_beta=0.0, refiner_reads_rate=refiner_reads_rate,
        refiner_rate_gate=refiner_rate_gate, refiner_extra_blocks=refiner_extra_blocks,
        refiner_dilation=refiner_dilation,
    )
