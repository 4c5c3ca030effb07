"""Registries: build by name, list, swap components by config name, user subclasses."""

from __future__ import annotations

import pytest
import torch

from multirealism import MultiRealismCodec, encoders, entropy_models, generators
from multirealism.components import ElicEncoder
from multirealism.zoo import tiny_config
from multirealism.registry import Registry, component_spec


def test_builtin_entries_are_listed() -> None:
    assert "elic" in encoders.list()
    assert {"hyperprior", "charm"} <= set(entropy_models.list())
    assert "elic_cond" in generators.list()


def test_unknown_name_lists_known_entries() -> None:
    with pytest.raises(KeyError, match="registered: elic"):
        encoders.build("nope")


@pytest.mark.parametrize("entropy_model", ["hyperprior", "charm"])
@pytest.mark.parametrize("conditioner", ["fourier", "table"])
def test_every_entry_swaps_by_config_name(entropy_model: str, conditioner: str) -> None:
    config = tiny_config(entropy_model, conditioner=conditioner)
    codec = MultiRealismCodec.from_config(config).eval()
    assert type(codec.entropy_model) is entropy_models.get(entropy_model)
    saved = codec.config()["entropy_model"]
    assert saved["name"] == entropy_model
    assert config["entropy_model"]["args"].items() <= saved["args"].items()
    data = codec.compress(torch.rand(1, 3, 32, 32))
    assert codec.decompress(data, beta=0.0).shape == (1, 3, 32, 32)


def test_registered_subclass_is_picked_up_and_rebuilt(tmp_path) -> None:
    @encoders.register("elic_scaled_test")
    class ScaledElic(ElicEncoder):
        """An ablation a user might add: scale the latent by a constant."""

        def __init__(self, scale: float = 2.0, **kwargs) -> None:
            super().__init__(**kwargs)
            self.scale = scale

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return super().forward(x) * self.scale

    config = tiny_config()
    config["encoder"] = {"name": "elic_scaled_test", "args": {"scale": 3.0, **config["encoder"]["args"]}}
    codec = MultiRealismCodec.from_config(config).eval()
    assert isinstance(codec.encoder, ScaledElic) and codec.encoder.scale == 3.0
    assert component_spec(codec.encoder)["name"] == "elic_scaled_test"
    codec.save(tmp_path / "ablation.pt")
    reloaded = MultiRealismCodec.from_checkpoint(tmp_path / "ablation.pt")
    assert isinstance(reloaded.encoder, ScaledElic) and reloaded.encoder.scale == 3.0
    x = torch.rand(1, 3, 32, 32)
    assert reloaded.compress(x) == codec.compress(x)


def test_unregistered_component_cannot_be_saved() -> None:
    class Unregistered(ElicEncoder):
        pass

    codec = MultiRealismCodec.from_config(tiny_config())
    codec.encoder = Unregistered(channels=16, latent_channels=16, blocks_per_stage=1, attention=False)
    with pytest.raises(TypeError, match="not a registered component"):
        codec.config()


def test_registry_rejects_non_modules_and_duplicates() -> None:
    registry = Registry("thing")
    with pytest.raises(TypeError):
        registry.register("x")(object)  # type: ignore[arg-type]
    registry.register("a")(ElicEncoder)
    with pytest.raises(KeyError, match="already registered"):
        registry.register("a")(torch.nn.Linear)


def test_mismatched_latent_widths_are_refused() -> None:
    config = tiny_config()
    config["generator"]["args"]["latent_channels"] = 32
    with pytest.raises(ValueError, match="latent channel counts disagree"):
        MultiRealismCodec.from_config(config)


def test_codec_presets_are_named_and_built_by_name():
    from multirealism.zoo import codec_config, create_codec, list_codecs, register_codec

    assert {"paper", "tiny", "small", "medium"} <= set(list_codecs())
    codec = create_codec("tiny", entropy_model="charm", conditioner="table")
    assert codec.config()["entropy_model"]["name"] == "charm"
    assert codec.config()["generator"]["args"]["conditioner"] == "table"
    assert create_codec("tiny", beta_max=2.56).beta_max == 2.56
    assert create_codec("small", options={"num_levels": 9}).num_levels == 9  # the form YAML's init_args give
    with pytest.raises(ValueError, match="num_levels given twice"):
        create_codec("small", options={"num_levels": 9}, num_levels=3)
    assert codec_config("paper", entropy_model="hyperprior")["entropy_model"]["name"] == "hyperprior"
    assert create_codec("small", realism="none").config()["generator"]["name"] == "residual_cond"
    with pytest.raises(ValueError, match="unknown codec preset 'nope'"):
        create_codec("nope")
    with pytest.raises(ValueError, match="already registered"):
        register_codec("tiny")(tiny_config)
