"""A deeper realism head: conditioned blocks appended to a trained rate-gated head start as the identity, so
a shipped model grows into a deeper one with the same output, and a stage can train only what it added."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from multirealism import MultiRealismCodec
from multirealism.checkpoint import save_weights
from multirealism.components import DeepRateGatedRefinedGenerator, RateGatedRefinedGenerator, RealismRefiner
from multirealism.components.generator import ConditionedBottleneck
from multirealism.presets import codec_config
from multirealism.training import MultiRealismModule, RateLadder

from helpers import SMALL_GENERATOR_ARGS, small_rate_codec_config

HEAD = {"refiner_channels": 8, "refiner_mid_channels": 4, "base_beta": 0.0}


def test_a_dilated_block_sees_further_at_the_same_size() -> None:
    torch.manual_seed(0)
    near, far = ConditionedBottleneck(4, 4, 2), ConditionedBottleneck(4, 4, 2, dilation=2)
    far.load_state_dict(near.state_dict())  # the same weights: only the taps' spacing differs
    x, cond = torch.zeros(1, 4, 9, 9), torch.zeros(1, 2, 9, 9)
    x[..., 4, 4] = 1.0
    with torch.no_grad():
        out_near, out_far = near(x, cond) - near(0 * x, cond), far(x, cond) - far(0 * x, cond)
    assert out_far.shape == x.shape
    assert out_near[..., 4, 6].abs().max() == 0 and out_far[..., 4, 6].abs().max() > 0  # two pixels away
    assert out_far[..., 4, 5].abs().max() == 0  # dilated taps skip the neighbour
    with pytest.raises(ValueError, match="dilation must be positive"):
        ConditionedBottleneck(4, 4, 2, dilation=0)


def gated_and_deep(dilation: int = 1) -> "tuple[RateGatedRefinedGenerator, DeepRateGatedRefinedGenerator]":
    """A gated head whose output layer and gate act, and a deeper generator holding the same weights."""
    torch.manual_seed(0)
    gated = RateGatedRefinedGenerator(**SMALL_GENERATOR_ARGS, **HEAD).eval()
    torch.nn.init.normal_(gated.refiner.to_image.weight, std=0.2)
    torch.nn.init.normal_(gated.rate_gate.net[2].weight, std=0.5)
    deep = DeepRateGatedRefinedGenerator(**SMALL_GENERATOR_ARGS, **HEAD, refiner_extra_blocks=2,
                                         refiner_dilation=dilation).eval()
    missing, unexpected = deep.load_state_dict(gated.state_dict(), strict=False)
    assert missing and all(k.startswith("refiner.extra.") for k in missing) and not unexpected
    return gated, deep


@pytest.mark.parametrize("dilation", [1, 2])
def test_added_blocks_start_as_the_identity_and_then_act_only_at_beta_above_zero(dilation: int) -> None:
    gated, deep = gated_and_deep(dilation)
    y_hat = torch.randn(2, 16, 4, 4).round()
    steps = torch.tensor([-0.5, 1.5])
    assert len(deep.refiner.extra) == 2 and deep.refiner.extra[0].convs[1].dilation == (dilation, dilation)
    with torch.no_grad():
        for beta in (0.0, 1.28, 5.12):
            assert torch.equal(deep(y_hat, beta, steps), gated(y_hat, beta, steps))
        for block in deep.refiner.extra:  # once trained, the blocks change the head's output
            torch.nn.init.normal_(block.convs[-1].weight, std=0.3)
        assert torch.equal(deep(y_hat, 0.0, steps), gated(y_hat, 0.0, steps))  # β = 0 stays the base image
        assert (deep(y_hat, 5.12, steps) - gated(y_hat, 5.12, steps)).abs().max() > 1e-4


def test_deepen_refuses_no_blocks_and_the_preset_names_the_deep_generator() -> None:
    with pytest.raises(ValueError, match="at least one block"):
        RealismRefiner(12, 8, 4, 16).deepen(0)
    config = codec_config("small_realism", refiner_rate_gate=True, refiner_extra_blocks=2, refiner_dilation=2)
    assert config["generator"]["name"] == "residual_cond_rate_gated_deep"
    shallow = codec_config("small_realism", refiner_rate_gate=True)["generator"]["args"]
    assert config["generator"]["args"] == {**shallow, "refiner_extra_blocks": 2, "refiner_dilation": 2}
    # the shallow generators' recorded arguments have no new keys, so shipped models keep their fingerprints
    assert "refiner_extra_blocks" not in MultiRealismCodec.from_config(
        small_rate_codec_config("residual_cond_rate_gated", **HEAD)).config()["generator"]["args"]
    with pytest.raises(ValueError, match="deepens a rate-gated head"):
        codec_config("small_realism", refiner_extra_blocks=1)
    with pytest.raises(ValueError, match="set refiner_extra_blocks"):  # a dilation nothing would use
        codec_config("small_realism", refiner_rate_gate=True, refiner_dilation=2)


def test_a_stage_trains_only_the_added_blocks_from_a_gated_checkpoint(tmp_path) -> None:
    torch.manual_seed(0)
    gated = MultiRealismCodec.from_config(small_rate_codec_config("residual_cond_rate_gated", **HEAD))
    torch.nn.init.normal_(gated.generator.refiner.to_image.weight, std=0.2)
    stored = tmp_path / "gated.safetensors"
    save_weights(stored, gated.config(), gated.state_dict())
    torch.manual_seed(1)
    deep = MultiRealismCodec.from_config(
        small_rate_codec_config("residual_cond_rate_gated_deep", **HEAD, refiner_extra_blocks=1))
    module = MultiRealismModule(deep.train(), gan=False, perceptual="lpips-random-test-only", lr=1e-1,
                                rate_ladder=RateLadder([0.04, 0.02, 0.01], realism_scales=[2.0, 1.5, 1.0]),
                                init_from=str(stored), init_new=["generator.refiner.extra"],
                                trainable=["generator.refiner.extra"])
    y_hat, beta = torch.randn(1, 16, 4, 4).round(), [torch.full((1, 1, 1, 1), 5.12)]
    with torch.no_grad():  # the deep codec starts as the stored gated one
        torch.testing.assert_close(module.codec.synthesize(y_hat, beta, 0.0)[0],
                                   gated.eval().synthesize(y_hat, beta, 0.0)[0])
    before = {k: v.clone() for k, v in module.codec.state_dict().items()}
    x = torch.rand(4, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    L.Trainer(accelerator="cpu", max_steps=3, logger=False, enable_checkpointing=False, enable_progress_bar=False,
              enable_model_summary=False, limit_val_batches=0).fit(module, DataLoader(x, batch_size=4))
    changed = {k for k, v in module.codec.state_dict().items() if not torch.equal(v, before[k])}
    assert changed and all(k.startswith("generator.refiner.extra.") for k in changed)
