"""The β-gated realism head: β = 0 is the base generator's output exactly, β > 0 gets a path of its own,
and a head-only stage trained on top of a plain checkpoint leaves the bitstream and β = 0 untouched."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from multirealism import MultiRealismCodec
from multirealism.checkpoint import save_weights
from multirealism.components import RateGatedRefinedGenerator, ResidualConditionalGenerator
from multirealism.errors import CheckpointError
from multirealism.zoo import codec_config
from multirealism.training import MultiRealismModule

from helpers import SMALL_GENERATOR_ARGS, entries_moved_by_fit, natural_image, small_codec_config, staged_module


#: the mean log quantisation step the rate gate reads: 0 (a fresh gate's gain is 1 at every step)
STEP = torch.zeros(2)


def refined_with_trained_head(seed: int = 0) -> RateGatedRefinedGenerator:
    torch.manual_seed(seed)
    generator = RateGatedRefinedGenerator(**SMALL_GENERATOR_ARGS, refiner_channels=8, refiner_mid_channels=4)
    torch.nn.init.normal_(generator.refiner.to_image.weight, std=0.2)  # as if trained: no longer zero
    return generator


def test_beta_zero_is_the_base_generator_exactly_and_beta_max_is_not() -> None:
    refined = refined_with_trained_head().eval()
    base = ResidualConditionalGenerator(**SMALL_GENERATOR_ARGS).eval()
    missing, unexpected = base.load_state_dict(refined.state_dict(), strict=False)
    assert not missing and all(k.startswith(("refiner.", "rate_gate.")) for k in unexpected) and unexpected
    y_hat = torch.randn(2, 16, 4, 4).round()
    with torch.no_grad():
        assert torch.equal(refined(y_hat, 0.0, STEP), base(y_hat, 0.0))
        assert (refined(y_hat, 5.12, STEP) - base(y_hat, 5.12)).abs().max() > 1e-3
        # a spatial map: the β = 0 half stays close to the base, the β_max half takes the head's residual
        beta = torch.zeros(2, 1, 64, 64)
        beta[..., 32:] = 5.12
        split = refined(y_hat, beta, STEP) - base(y_hat, beta)
    assert split[..., :28].abs().max() < 1e-6 < split[..., 36:].abs().max()


def test_a_fresh_head_changes_nothing_and_gets_gradients_only_from_beta_above_zero() -> None:
    torch.manual_seed(0)
    generator = RateGatedRefinedGenerator(**SMALL_GENERATOR_ARGS, refiner_channels=8, refiner_mid_channels=4)
    y_hat = torch.randn(2, 16, 4, 4).round()
    base = ResidualConditionalGenerator(**SMALL_GENERATOR_ARGS)
    base.load_state_dict(generator.state_dict(), strict=False)
    for beta in (0.0, 2.56, 5.12):
        torch.testing.assert_close(generator(y_hat, beta, STEP), base(y_hat, beta), rtol=0, atol=0)
    head = generator.refiner.to_image.weight
    generator(y_hat, 0.0, STEP).square().mean().backward()
    assert head.grad is not None and head.grad.abs().sum() == 0
    generator.zero_grad()
    generator(y_hat, torch.tensor([0.0, 5.12]), STEP).square().mean().backward()
    assert head.grad.abs().sum() > 0


def test_with_base_beta_only_the_head_depends_on_beta() -> None:
    torch.manual_seed(0)
    generator = RateGatedRefinedGenerator(**SMALL_GENERATOR_ARGS, refiner_channels=8, refiner_mid_channels=4, base_beta=0.0)
    base = ResidualConditionalGenerator(**SMALL_GENERATOR_ARGS)
    base.load_state_dict(generator.state_dict(), strict=False)
    y_hat = torch.randn(2, 16, 4, 4).round()
    with torch.no_grad():
        for beta in (0.0, 2.56, 5.12):  # a fresh head: every β decodes to the base's β = 0 image
            assert torch.equal(generator(y_hat, beta, STEP), base(y_hat, 0.0))
        torch.nn.init.normal_(generator.refiner.to_image.weight, std=0.2)
        assert torch.equal(generator(y_hat, 0.0, STEP), base(y_hat, 0.0))
        assert not torch.equal(generator(y_hat, 5.12, STEP), base(y_hat, 0.0))
    with pytest.raises(ValueError, match="base_beta must lie in"):
        RateGatedRefinedGenerator(**SMALL_GENERATOR_ARGS, base_beta=6.0)


@pytest.mark.parametrize("base_beta", [None, 0.0])
def test_forward_betas_is_one_forward_per_beta(base_beta) -> None:
    """Decoding several β at once (the base synthesised once when it ignores β) gives each β's image exactly."""
    torch.manual_seed(0)
    generator = RateGatedRefinedGenerator(**SMALL_GENERATOR_ARGS, refiner_channels=8, refiner_mid_channels=4,
                                         base_beta=base_beta)
    torch.nn.init.normal_(generator.refiner.to_image.weight, std=0.2)
    y_hat = torch.randn(2, 16, 4, 4).round()
    with torch.no_grad():
        size = generator(y_hat, 0.0, STEP).shape[-2:]
        spatial = torch.linspace(0, 5.12, size[-1]).expand(2, 1, *size)
        betas = [0.0, 5.12, torch.tensor([1.0, 4.0]), spatial]
        together = generator.forward_betas(y_hat, betas, STEP)
        assert len(together) == len(betas)
        for beta, image in zip(betas, together):
            assert torch.equal(image, generator(y_hat, beta, STEP))
        assert not torch.equal(together[0], together[1])
        assert generator.forward_betas(y_hat, [], STEP) == []


@pytest.mark.parametrize("base_beta", [None, 0.0])
def test_codec_forward_betas_encodes_once_and_matches_forward(base_beta) -> None:
    """Validation's β sweep: one encoding, and at each β the same image, latent and bpp as ``codec(x, β)``."""
    torch.manual_seed(0)
    config = small_codec_config("residual_cond_rate_gated", refiner_channels=8, refiner_mid_channels=4, base_beta=base_beta)
    codec = MultiRealismCodec.from_config(config).eval()
    torch.nn.init.normal_(codec.generator.refiner.to_image.weight, std=0.2)
    encodings = []
    codec.encoder.register_forward_hook(lambda *args: encodings.append(1))
    x = natural_image(size=40)[None]  # not a multiple of the latent stride: padded, then cropped back
    betas = [0.0, 2.56, 5.12]
    with torch.no_grad():
        together = codec.forward_betas(x, betas)
        assert len(encodings) == 1 and len(together) == len(betas)
        for beta, out in zip(betas, together):
            one = codec(x, beta)
            assert out.x_hat.shape == x.shape
            assert torch.equal(out.x_hat, one.x_hat) and torch.equal(out.y_hat, one.y_hat)
            assert torch.equal(out.bpp, one.bpp)
        assert not torch.equal(together[0].x_hat, together[2].x_hat)


def test_small_preset_with_the_head_is_its_plain_base_plus_the_head() -> None:
    plain, refined = codec_config("small", realism="none"), codec_config("small", realism="head")
    assert refined["generator"]["name"] == "residual_cond_rate_gated"
    assert refined["generator"]["args"]["base_beta"] == 0.0
    extra = ("refiner_channels", "refiner_mid_channels", "base_beta")
    assert {k: v for k, v in refined["generator"]["args"].items() if k not in extra} == plain["generator"]["args"]
    assert {k: v for k, v in refined.items() if k != "generator"} == {k: v for k, v in plain.items() if k != "generator"}


def test_a_head_only_stage_from_a_plain_checkpoint_keeps_the_bitstream_and_beta_zero(tmp_path) -> None:
    torch.manual_seed(0)
    plain = MultiRealismCodec.from_config(small_codec_config("residual_cond"))
    warmup = tmp_path / "warmup.safetensors"
    save_weights(warmup, plain.config(), plain.state_dict())

    def refined_module(**kwargs: Any) -> MultiRealismModule:
        return staged_module(small_codec_config("residual_cond_rate_gated", refiner_channels=8), warmup, **kwargs)

    with pytest.raises(CheckpointError, match="generator"):
        refined_module()  # the refined generator differs from the checkpoint's: name what is new
    with pytest.raises(ValueError, match="is not a part of this codec"):
        refined_module(new_parts=["generator.head"])
    head = ["generator.refiner", "generator.rate_gate"]
    module = refined_module(new_parts=head, trainable=head)
    x = torch.rand(4, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    moved = entries_moved_by_fit(module, x)
    assert any(k.startswith("generator.refiner.") for k in moved), moved
    assert all(k.startswith(("generator.refiner.", "generator.rate_gate.")) for k in moved), moved  # the quantiles stay with their density
    for codec in (plain, module.codec):
        codec.update(force=True)
        codec.eval()
    # the same coded symbols: only the header's model fingerprint differs
    assert len(module.codec.compress(x[:1])) == len(plain.compress(x[:1]))
    y_hat = torch.randn(2, 16, 4, 4).round()
    with torch.no_grad():
        assert torch.equal(module.codec.generator(y_hat, 0.0, STEP), plain.generator(y_hat, 0.0))
        assert not torch.equal(module.codec.generator(y_hat, 5.12, STEP), plain.generator(y_hat, 5.12))
