"""The rate gate: a gain per rate level on the realism head's residual, so one trained head can act more
strongly at the low rates without changing what it adds; β = 0 and the head's β path within a level stay."""

from __future__ import annotations

import copy

import pytest
import torch

from multirealism import MultiRealismCodec
from multirealism.checkpoint import save_weights
from multirealism.components import RateGate, RateGatedRefinedGenerator
from multirealism.training import Initialization, MultiRealismModule, Objective, Optimization, RateLadder

from helpers import SMALL_GENERATOR_ARGS, entries_moved_by_fit, natural_image, small_rate_codec_config

HEAD = {"refiner_channels": 8, "refiner_mid_channels": 4, "base_beta": 0.0}


def gate_acts(gate: RateGate) -> None:
    """Give a fresh gate's zero-initialised last layer values, as training would."""
    torch.nn.init.normal_(gate.net[2].weight, std=0.5)


def blind_and_gated(seed: int = 0) -> "tuple[RateGatedRefinedGenerator, RateGatedRefinedGenerator]":
    """A head whose output layer acts under a fresh gate (gain 1 at every rate: blind to the rate), and a copy
    whose gate will be changed."""
    torch.manual_seed(seed)
    blind = RateGatedRefinedGenerator(**SMALL_GENERATOR_ARGS, **HEAD).eval()
    torch.nn.init.normal_(blind.refiner.to_image.weight, std=0.2)
    return blind, copy.deepcopy(blind)


def test_a_fresh_gate_is_one_and_a_trained_one_is_positive_and_smooth() -> None:
    torch.manual_seed(0)
    gate = RateGate(hidden=4)
    steps = torch.linspace(-1.0, 2.0, 7)
    assert torch.equal(gate(steps, 7), torch.ones(7))
    gate_acts(gate)
    gains = gate(steps, 7)
    assert (gains > 0).all() and (gains - 1).abs().max() > 1e-3
    halfway = gate(torch.tensor([0.5, 0.5 + 1e-4]), 2)  # a smooth function: no jump between near steps
    assert (halfway[0] - halfway[1]).abs() < 1e-3
    for bad in (None, torch.zeros(3), torch.zeros(7, 1)):
        with pytest.raises(ValueError, match="needs log_step of shape"):
            gate(bad, 7)
    with pytest.raises(ValueError, match="hidden must be positive"):
        RateGate(hidden=0)


def test_the_gain_scales_only_the_heads_residual() -> None:
    blind, gated = blind_and_gated()
    y_hat = torch.randn(2, 16, 4, 4).round()
    fine, coarse = torch.full((2,), -0.5), torch.full((2,), 1.5)
    with torch.no_grad():  # a fresh gate leaves the trained head as it was
        for beta in (0.0, 2.56, 5.12):
            assert torch.equal(gated(y_hat, beta, coarse), blind(y_hat, beta, fine))
        gate_acts(gated.rate_gate)
        base = blind(y_hat, 0.0, fine)
        assert torch.equal(gated(y_hat, 0.0, coarse), base)  # β = 0: the base image whatever the rate
        for steps in (fine, coarse):
            gain = gated.rate_gate(steps, 2).view(-1, 1, 1, 1)
            for beta in (1.28, 5.12):  # x̂(β) = x̂₀ + gain · (the blind head's residual)
                torch.testing.assert_close(gated(y_hat, beta, steps) - base, gain * (blind(y_hat, beta, steps) - base))
        assert (gated(y_hat, 5.12, fine) - gated(y_hat, 5.12, coarse)).abs().max() > 1e-4
        mixed = gated(y_hat, 5.12, torch.tensor([-0.5, 1.5]))  # one gain per image
        torch.testing.assert_close(mixed[1:], gated(y_hat[1:], 5.12, coarse[1:]))
        assert torch.equal(gated.forward_betas(y_hat, [0.0, 5.12], log_step=fine)[1], gated(y_hat, 5.12, fine))
    assert gated.reads_rate
    with pytest.raises(ValueError, match="rate-gated realism head needs log_step"):
        gated(y_hat, 5.12)


def gated_codec(seed: int = 0) -> MultiRealismCodec:
    torch.manual_seed(seed)
    codec = MultiRealismCodec.from_config(small_rate_codec_config("residual_cond_rate_gated", **HEAD))
    torch.nn.init.normal_(codec.generator.refiner.to_image.weight, std=0.2)
    gate_acts(codec.generator.rate_gate)
    return codec.eval()


def test_a_stream_decodes_with_its_levels_gain() -> None:
    codec = gated_codec()
    codec.update(force=True)
    x = natural_image("coffee", 64).unsqueeze(0)
    with torch.no_grad():
        for quality in (0.0, 1.5, 2.0):
            decoded = codec.decompress(codec.compress(x, quality=quality), beta=[0.0, 5.12])
            for beta, image in zip((0.0, 5.12), decoded):
                torch.testing.assert_close(image, codec(x, beta, quality).x_hat.clamp(0, 1), atol=1e-5, rtol=0)
        y_hat, _ = codec.decode_latent(codec.compress(x, quality=0.0))
        beta = torch.full((1, 1, 1, 1), 5.12)
        assert (codec.synthesize(y_hat, [beta], 0.0)[0] - codec.synthesize(y_hat, [beta], 2.0)[0]).abs().max() > 1e-4


def test_training_only_the_gate_from_a_trained_head(tmp_path) -> None:
    torch.manual_seed(0)
    blind = MultiRealismCodec.from_config(small_rate_codec_config("residual_cond_rate_gated", **HEAD))
    torch.nn.init.normal_(blind.generator.refiner.to_image.weight, std=0.2)
    stored = tmp_path / "blind.safetensors"
    save_weights(stored, blind.config(), blind.state_dict())
    torch.manual_seed(1)
    codec = MultiRealismCodec.from_config(small_rate_codec_config("residual_cond_rate_gated", **HEAD))
    module = MultiRealismModule(codec.train(), objective=Objective(perceptual="lpips-random-test-only"),
                                optimization=Optimization(lr=1e-1),
                                rate_ladder=RateLadder([0.04, 0.02, 0.01], realism_scales=[2.0, 1.5, 1.0]),
                                init=Initialization(str(stored), trainable=["generator.rate_gate"],
                                                    new_parts=["generator.rate_gate"]))
    x = torch.rand(4, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    y_hat = torch.randn(1, 16, 4, 4).round()
    with torch.no_grad():  # the gated codec starts as the blind one
        torch.testing.assert_close(module.codec.synthesize(y_hat, [torch.full((1, 1, 1, 1), 5.12)], 0.0)[0],
                                   blind.eval().synthesize(y_hat, [torch.full((1, 1, 1, 1), 5.12)], 0.0)[0])
    changed = entries_moved_by_fit(module, x)
    assert changed and all(k.startswith("generator.rate_gate.") for k in changed)  # quantiles too stay as stored
