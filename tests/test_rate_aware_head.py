"""The rate-aware realism head: the codec tells it how coarse the latent is (the mean log quantisation step
of the rate level), at training, decoding and refinement alike, so one head can act differently per level."""

from __future__ import annotations

import math

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from multirealism import MultiRealismCodec
from multirealism.checkpoint import save_weights
from multirealism.components import GainUnits, QuantizationStep, RateAwareRefinedGenerator, RefinedResidualGenerator
from multirealism.components.rate_control import latent_log_step
from multirealism.presets import codec_config
from multirealism.training import MultiRealismModule, RateLadder

from helpers import SMALL_GENERATOR_ARGS, natural_image, small_rate_codec_config

HEAD = {"refiner_channels": 8, "refiner_mid_channels": 4, "base_beta": 0.0}


def rate_codec(seed: int = 0, levels: int = 3, head_channels: int = 8) -> MultiRealismCodec:
    """A test-width ``small`` codec with a rate-aware head that acts (its output layers no longer zero)."""
    torch.manual_seed(seed)
    config = small_rate_codec_config("residual_cond_rate_refined", levels, **{**HEAD, "refiner_channels": head_channels})
    codec = MultiRealismCodec.from_config(config)
    trained_as_if(codec.generator)
    return codec.eval()


def trained_as_if(generator: RateAwareRefinedGenerator) -> None:
    """Give a fresh head's zero-initialised output layers values, as training would."""
    torch.nn.init.normal_(generator.refiner.to_image.weight, std=0.2)
    torch.nn.init.normal_(generator.refiner.from_rate[2].weight, std=0.5)


def test_log_step_is_the_mean_log_of_what_unscale_multiplies_by() -> None:
    torch.manual_seed(0)
    gains = GainUnits(latent_channels=4, num_levels=3, min_gain=0.25)
    with torch.no_grad():
        gains.log_inverse_gain.add_(torch.randn_like(gains.log_inverse_gain))
    q = torch.tensor([0.0, 1.5, 2.0])
    step = gains.unscale(torch.ones(3, 4, 1, 1), q)
    torch.testing.assert_close(gains.log_step(q, 3, torch.device("cpu")), step.log().flatten(1).mean(1))
    qvrf = QuantizationStep(num_levels=2, min_gain=0.25)  # Δ = 1 / gain: 4 at level 0, 1 at level 1
    torch.testing.assert_close(latent_log_step(qvrf, 0.0, 2, torch.device("cpu")), torch.full((2,), math.log(4.0)))
    torch.testing.assert_close(latent_log_step(qvrf, 1.0, 1, torch.device("cpu")), torch.zeros(1), atol=1e-6, rtol=0)
    assert torch.equal(latent_log_step(None, 0.0, 2, torch.device("cpu")), torch.zeros(2))
    with pytest.raises(ValueError, match="quality must lie in"):
        latent_log_step(gains, 3.0, 1, torch.device("cpu"))


def test_the_head_reads_the_rate_and_beta_zero_ignores_it() -> None:
    torch.manual_seed(0)
    generator = RateAwareRefinedGenerator(**SMALL_GENERATOR_ARGS, **HEAD).eval()
    blind = RefinedResidualGenerator(**SMALL_GENERATOR_ARGS, **HEAD).eval()
    blind.load_state_dict(generator.state_dict(), strict=False)
    y_hat = torch.randn(2, 16, 4, 4).round()
    torch.nn.init.normal_(generator.refiner.to_image.weight, std=0.2)
    blind.refiner.to_image.weight.data.copy_(generator.refiner.to_image.weight)
    with torch.no_grad():  # a fresh rate input changes nothing: a trained blind head starts a rate-aware one as it was
        assert torch.equal(generator(y_hat, 5.12, torch.full((2,), 1.0)), blind(y_hat, 5.12))
    trained_as_if(generator)
    assert generator.reads_rate and not RefinedResidualGenerator.reads_rate
    fine, coarse = torch.full((2,), -1.0), torch.full((2,), 1.0)
    with torch.no_grad():
        assert torch.equal(generator(y_hat, 0.0, fine), generator(y_hat, 0.0, coarse))  # β = 0: the base image
        assert (generator(y_hat, 5.12, fine) - generator(y_hat, 5.12, coarse)).abs().max() > 1e-4
        mixed = generator(y_hat, 5.12, torch.tensor([-1.0, 1.0]))  # one value per image
        torch.testing.assert_close(mixed[1:], generator(y_hat[1:], 5.12, coarse[1:]))
        betas = generator.forward_betas(y_hat, [0.0, 5.12], log_step=coarse)
        assert torch.equal(betas[1], generator(y_hat, 5.12, coarse))
    for bad in (None, torch.zeros(3)):
        with pytest.raises(ValueError, match="needs log_step of shape"):
            generator(y_hat, 5.12, bad)


def test_the_codec_passes_each_quality_to_the_head_when_coding_and_training() -> None:
    codec = rate_codec()
    codec.update(force=True)
    x = natural_image("coffee", 64).unsqueeze(0)
    with torch.no_grad():
        for quality in (0.0, 1.5, 2.0):
            data = codec.compress(x, quality=quality)
            decoded = codec.decompress(data, beta=5.12)
            forward = codec(x, 5.12, quality).x_hat.clamp(0, 1)
            torch.testing.assert_close(decoded, forward, atol=1e-5, rtol=0)
        # the same latent decoded as if coded at another level gives another image: the level reaches the head
        y_hat, stream = codec.decode_latent(codec.compress(x, quality=0.0))
        beta = torch.full((1, 1, 1, 1), 5.12)
        at_0, at_2 = codec.synthesize(y_hat, [beta], 0.0)[0], codec.synthesize(y_hat, [beta], 2.0)[0]
        assert (at_0 - at_2).abs().max() > 1e-4
        per_image = codec.forward_betas(x.repeat(2, 1, 1, 1), [5.12], quality=torch.tensor([0.0, 2.0]))[0].x_hat
        torch.testing.assert_close(per_image[1:], codec(x, 5.12, 2.0).x_hat)


def test_presets_and_a_new_head_replacing_a_stored_one(tmp_path) -> None:
    config = codec_config("small_realism", refiner_reads_rate=True)
    assert config["generator"]["name"] == "residual_cond_rate_refined"
    plain_head = codec_config("small_realism")
    assert {k: v for k, v in config.items() if k != "generator"} == {k: v for k, v in plain_head.items() if k != "generator"}
    assert config["generator"]["args"] == plain_head["generator"]["args"]
    with pytest.raises(ValueError, match="needs a realism head"):
        codec_config("small", refiner_reads_rate=True)
    # a run with a wider, rate-aware head starts from a checkpoint with a narrower, blind one: the stored head
    # is left out (whatever its shape), everything else is loaded, and only the head trains
    torch.manual_seed(0)
    blind = MultiRealismCodec.from_config(small_rate_codec_config("residual_cond_refined", **HEAD))
    stored = tmp_path / "blind.safetensors"
    save_weights(stored, blind.config(), blind.state_dict())
    codec = rate_codec(seed=5, head_channels=12)
    fresh = {k: v.clone() for k, v in codec.generator.refiner.state_dict().items()}
    module = MultiRealismModule(codec.train(), gan=False, perceptual="lpips-random-test-only", lr=1e-2,
                                rate_ladder=RateLadder([0.04, 0.02, 0.01], realism_scales=[2.0, 1.5, 1.0]),
                                init_from=str(stored), init_new=["generator.refiner"], trainable=["generator.refiner"])
    for name, value in module.codec.state_dict().items():
        if name.startswith("generator.refiner."):
            assert torch.equal(value, fresh[name[len("generator.refiner."):]])
        elif name in blind.state_dict():
            assert torch.equal(value, blind.state_dict()[name]), name
    rate = module.codec.generator.refiner.from_rate[0].weight
    before = rate.clone()
    x = torch.rand(4, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    L.Trainer(accelerator="cpu", max_steps=3, logger=False, enable_checkpointing=False, enable_progress_bar=False,
              enable_model_summary=False, limit_val_batches=0).fit(module, DataLoader(x, batch_size=4))
    assert not torch.equal(rate, before)  # the rate input gets gradients in training
