"""Rate control: the component, its place in the codec and the bitstream header (untrained tiny codecs)."""

from __future__ import annotations

import pytest
import torch

from multirealism import MultiRealismCodec, bitstream_format
from multirealism.components.rate_control import GainUnits, QuantizationStep
from multirealism.errors import BitstreamError
from multirealism.zoo import tiny_config
from multirealism.registry import rate_controls
from helpers import make_tiny_codec, natural_image


def rate_codec(entropy_model: str = "hyperprior", name: str = "gain", levels: int = 3) -> MultiRealismCodec:
    torch.manual_seed(0)
    args = {"num_levels": levels, **({"latent_channels": 16} if name == "gain" else {})}
    config = {**tiny_config(entropy_model), "rate_control": {"name": name, "args": args}}
    codec = MultiRealismCodec.from_config(config).eval()
    codec.update()
    return codec


def test_registry_lists_both_mechanisms():
    assert rate_controls.list() == ["gain", "qvrf"]


@pytest.mark.parametrize("cls,args", [(GainUnits, {"latent_channels": 4}), (QuantizationStep, {})])
def test_levels_interpolate_log_linearly(cls, args):
    control = cls(num_levels=3, min_gain=0.25, **args)
    with torch.no_grad():
        control.log_gain.uniform_(-2, 1)
    y = torch.ones(1, 4, 2, 2)
    g0, g1, g_mid = (control.scale(y, q)[0, :, 0, 0] for q in (0.0, 1.0, 0.25))
    assert torch.allclose(g_mid, g0**0.75 * g1**0.25)
    # per image qualities pick per image gains
    both = control.scale(torch.ones(2, 4, 2, 2), torch.tensor([0.0, 1.0]))
    assert torch.allclose(both[0, :, 0, 0], g0) and torch.allclose(both[1, :, 0, 0], g1)


def test_initial_gains_rise_with_level_and_qvrf_inverse_is_tied():
    gains = [float(QuantizationStep(num_levels=4).scale(torch.ones(1, 1, 1, 1), q).detach()) for q in range(4)]
    assert gains == sorted(gains) and gains[0] == pytest.approx(0.25) and gains[-1] == pytest.approx(1.0)
    control = QuantizationStep(num_levels=4)
    y = torch.randn(2, 3, 4, 4)
    assert torch.allclose(control.unscale(control.scale(y, 1.7), 1.7), y, atol=1e-6)


@pytest.mark.parametrize("quality", [-0.1, 2.5, float("nan"), [0.0, 1.0, 2.0]])
def test_bad_quality_is_refused(quality):
    control = GainUnits(latent_channels=4, num_levels=3)
    with pytest.raises(ValueError, match="quality"):
        control.scale(torch.ones(2, 4, 2, 2), torch.tensor(quality) if isinstance(quality, list) else quality)


def test_constructor_errors():
    with pytest.raises(ValueError, match="at least 2 levels"):
        GainUnits(latent_channels=4, num_levels=1)
    with pytest.raises(ValueError, match="latent channel counts disagree"):
        MultiRealismCodec.from_config({**tiny_config(), "rate_control": {"name": "gain", "args": {"latent_channels": 8}}})


@pytest.mark.parametrize("entropy_model", ["hyperprior", "charm"])
@pytest.mark.parametrize("name", ["gain", "qvrf"])
def test_round_trip_equals_eval_forward_at_each_quality(entropy_model, name):
    codec = rate_codec(entropy_model, name)
    x = natural_image("astronaut", 64)[:, :40, :56].unsqueeze(0)
    for quality in (0.0, 0.5, 1.0, 2.0):
        data = codec.compress(x, quality=quality)
        assert bitstream_format.unpack(data).quality == quality
        with torch.no_grad():
            expected = codec(x, beta=1.0, quality=quality).x_hat.clamp(0, 1)
        assert torch.allclose(codec.decompress(data, beta=1.0), expected, atol=1e-5)


def test_default_quality_is_the_highest_level():
    codec = rate_codec()
    x = natural_image("coffee", 64).unsqueeze(0)
    assert codec.compress(x) == codec.compress(x, quality=2.0)
    assert bitstream_format.unpack(codec.compress(x)).quality == 2.0


def test_config_and_fingerprint_carry_the_rate_control(tmp_path):
    codec = rate_codec()
    path = tmp_path / "rc.safetensors"
    codec.save(path)
    loaded = MultiRealismCodec.from_checkpoint(path)
    assert loaded.num_levels == 3 and loaded.fingerprint == codec.fingerprint
    with torch.no_grad():
        loaded.rate_control.log_gain.add_(0.1)
    loaded.update()
    assert loaded.fingerprint != codec.fingerprint


def test_codec_without_rate_control_has_one_level():
    codec = make_tiny_codec("hyperprior")
    x = natural_image("coffee", 64).unsqueeze(0)
    assert codec.num_levels == 1 and "rate_control" not in codec.config()
    assert bitstream_format.unpack(codec.compress(x, quality=0)).quality == 0.0
    with pytest.raises(ValueError, match="one rate"):
        codec.compress(x, quality=1)


def test_quality_outside_the_models_levels_is_refused_at_decode():
    codec = rate_codec(levels=3)
    stream = bitstream_format.unpack(codec.compress(natural_image("coffee", 64), quality=1.0))
    forged = bitstream_format.pack(bitstream_format.Bitstream(**{**stream.__dict__, "quality": 2.5}))
    with pytest.raises(BitstreamError, match="quality 2.5"):
        codec.decompress(forged)


def test_old_format_version_is_refused_naming_it():
    data = bytearray(rate_codec().compress(natural_image("coffee", 64)))
    data[4] = 1
    with pytest.raises(BitstreamError, match="version 1 is not supported"):
        bitstream_format.unpack(bytes(data))


def test_reduced_precision_latents_are_scaled_in_float32():
    control = GainUnits(latent_channels=4, num_levels=3)
    y = torch.randn(2, 4, 3, 3).bfloat16()
    assert control.scale(y, 1.0).dtype == torch.float32
    assert control.unscale(y, 1.0).dtype == torch.float32
