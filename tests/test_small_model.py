"""The CPU-sized codec: GDN encoder + hyperprior + β-conditioned residual generator."""

from __future__ import annotations

import pytest
import torch

from multirealism import MultiRealismCodec
from multirealism.components import GdnEncoder, ResidualConditionalGenerator

from helpers import small_codec_config


def small_codec(conditioner: str = "fourier") -> MultiRealismCodec:
    torch.manual_seed(0)
    return MultiRealismCodec.from_config(small_codec_config(conditioner=conditioner))


@pytest.mark.parametrize("size", [(37, 70), (17, 129), (64, 64)])
def test_shapes_at_odd_sizes(size) -> None:
    codec = small_codec()
    x = torch.rand(2, 3, *size)
    out = codec(x, 2.56)
    assert out.x_hat.shape == x.shape
    assert codec.encoder.downsampling == 16 and codec.generator.latent_channels == 16


def test_gradients_reach_every_parameter() -> None:
    codec = small_codec().train()
    x = torch.rand(2, 3, 64, 64)
    out = codec(x, torch.tensor([0.5, 4.0]))
    loss = out.bpp.mean() + (out.x_hat - x).pow(2).mean() + codec.entropy_model.aux_loss()
    loss.backward()
    missing = [n for n, p in codec.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, missing


@pytest.mark.parametrize("conditioner", ["fourier", "table"])
def test_output_changes_with_beta(conditioner: str) -> None:
    codec = small_codec(conditioner).eval()
    y_hat = torch.randn(1, 16, 4, 4).round()
    low = codec.generator(y_hat, 0.0)
    high = codec.generator(y_hat, 5.12)
    assert low.shape == (1, 3, 64, 64)
    assert (low - high).abs().max() > 1e-4
    torch.testing.assert_close(codec.generator(y_hat, 0.0), low)


@pytest.mark.parametrize("size", [(37, 70), (64, 64)])
def test_round_trip_matches_eval_forward(size) -> None:
    codec = small_codec().eval()
    codec.update()
    x = torch.rand(2, 3, *size)
    data = codec.compress(x)
    betas = [0.0, codec.beta_max]
    for beta, image in zip(betas, codec.decompress(data, beta=betas)):
        torch.testing.assert_close(image, codec(x, beta).x_hat.clamp(0, 1), atol=1e-5, rtol=0)


def test_config_rebuilds_same_codec() -> None:
    codec = small_codec().eval()
    rebuilt = MultiRealismCodec.from_config(codec.config())
    assert isinstance(rebuilt.encoder, GdnEncoder)
    assert isinstance(rebuilt.generator, ResidualConditionalGenerator)
    assert sorted(rebuilt.state_dict()) == sorted(codec.state_dict())


def test_saved_file_loads_behind_the_shape_check(tmp_path) -> None:
    """from_checkpoint first builds the config on the meta device; compressai's own GDN cannot be built there."""
    codec = small_codec().eval()
    codec.save(tmp_path / "small.safetensors")
    loaded = MultiRealismCodec.from_checkpoint(tmp_path / "small.safetensors")
    x = torch.rand(1, 3, 48, 48)
    assert loaded.fingerprint == codec.fingerprint
    assert torch.equal(loaded.decompress(codec.compress(x), beta=5.12), codec.decompress(codec.compress(x), beta=5.12))


def test_meta_safe_gdn_matches_compressai() -> None:
    from compressai.layers import GDN

    from multirealism.components.gdn import MetaSafeGDN

    for inverse in (False, True):
        ours, theirs = MetaSafeGDN(6, inverse=inverse), GDN(6, inverse=inverse)
        assert ours.state_dict().keys() == theirs.state_dict().keys()
        assert all(torch.equal(ours.state_dict()[k], v) for k, v in theirs.state_dict().items())
        x = torch.randn(2, 6, 5, 5)
        assert torch.equal(ours(x), theirs(x))
    with torch.device("meta"):
        assert all(t.is_meta for t in MetaSafeGDN(6).state_dict().values())


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="conditioner"):
        ResidualConditionalGenerator(conditioner="nope")
    with pytest.raises(ValueError, match="channels"):
        GdnEncoder(channels=0)
