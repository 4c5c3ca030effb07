"""Training a rate-controlled codec: λ ladder, a level per image, per-level validation logs."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from multirealism import MultiRealismCodec
from multirealism.zoo import tiny_config
from multirealism.training import DiscriminatorSettings, MultiRealismModule, Objective, Optimization, RateLadder
from multirealism.cli.lightning_commands import run_lightning_cli
from multirealism.training.initialization import load_codec_weights


def rate_module(gan: bool, ladder: RateLadder, levels: int = 3) -> MultiRealismModule:
    torch.manual_seed(0)
    config = {**tiny_config(), "rate_control": {"name": "gain", "args": {"latent_channels": 16, "num_levels": levels}}}
    discriminator = DiscriminatorSettings(args={"channels": [8, 16, 16, 16]}) if gan else None
    codec = MultiRealismCodec.from_config(config)
    return MultiRealismModule(codec, discriminator=discriminator, optimization=Optimization(lr=1e-3),
                              objective=Objective(perceptual="none"), rate_ladder=ladder, val_real_bpp_batches=1)


def test_fixed_ladder_weights_each_image_by_its_levels_lambda():
    ladder = RateLadder(lambdas=[4.0, 2.0, 1.0])
    bpp = torch.tensor([1.0, 1.0, 3.0, 5.0])
    levels = torch.tensor([0.0, 2.0, 1.0, 0.0])
    loss, mean_lambda = ladder.rate_loss(bpp, levels)
    assert loss.item() == pytest.approx((4 * 1 + 1 * 1 + 2 * 3 + 4 * 5) / 4)
    assert mean_lambda.item() == pytest.approx((4 + 1 + 2 + 4) / 4)


def test_hific_ladder_compares_each_level_with_its_own_target():
    ladder = RateLadder(target_bpps=[0.1, 0.5], lambda_a=[2.0, 1.0], lambda_b=0.01)
    bpp = torch.tensor([0.2, 0.4])  # level 0 above its target (λ_a), level 1 below (λ_b)
    loss, _ = ladder.rate_loss(bpp, torch.tensor([0.0, 1.0]))
    assert loss.item() == pytest.approx((2.0 * 0.2 + 0.01 * 0.4) / 2)


def test_sampling_covers_every_level():
    torch.manual_seed(0)
    levels = RateLadder(lambdas=[1.0, 0.5, 0.25]).sample(300)
    assert set(levels.tolist()) == {0.0, 1.0, 2.0}


@pytest.mark.parametrize("kwargs,match", [
    ({}, "exactly one"),
    ({"lambdas": [1.0], "target_bpps": [0.1]}, "exactly one"),
    ({"target_bpps": [0.5, 0.1]}, "strictly increase"),
    ({"target_bpps": [0.1, 0.5], "lambda_a": [1.0]}, "lambda_a"),
    ({"lambdas": [1.0]}, "at least 2"),
    ({"lambdas": [1.0, 0.5], "realism_scales": [1.0]}, "1 realism_scales for 2 rate levels"),
    ({"lambdas": [1.0, 0.5], "realism_scales": [1.0, 0.0]}, "positive"),
    ({"lambdas": [1.0, 0.5], "realism_scales": [1.0, float("nan")]}, "positive"),
])
def test_bad_ladders_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RateLadder(**kwargs)


def test_realism_scales_multiply_beta_by_each_images_level():
    ladder = RateLadder(lambdas=[1.0, 0.5, 0.25], realism_scales=[2.0, 1.0, 0.5])
    beta = torch.tensor([1.0, 2.0, 4.0, 4.0])
    levels = torch.tensor([0.0, 1.0, 2.0, 0.0])
    assert torch.equal(ladder.loss_beta(beta, levels), torch.tensor([2.0, 2.0, 2.0, 8.0]))
    beta_map = beta.view(4, 1, 1, 1).expand(4, 1, 3, 5)  # spatial β: one scale per image
    assert torch.equal(ladder.loss_beta(beta_map, levels), torch.tensor([2.0, 2.0, 2.0, 8.0]).view(4, 1, 1, 1).expand(4, 1, 3, 5))
    assert ladder.loss_beta(beta, levels) is not beta and RateLadder(lambdas=[1.0, 0.5]).loss_beta(beta, levels) is beta


def test_realism_scales_weigh_the_adversarial_term_but_not_the_codecs_beta():
    from multirealism.training.losses import generator_adversarial_loss

    module = rate_module(True, RateLadder(lambdas=[0.5, 0.1, 0.02], realism_scales=[3.0, 1.0, 0.5]))
    module.discriminator.eval()  # spectral norm's power iteration would move the logits between the two calls
    torch.manual_seed(2)
    x = torch.rand(3, 3, 32, 32)
    beta, levels = torch.tensor([1.0, 2.0, 4.0]), torch.tensor([0.0, 1.0, 2.0])
    out = module.codec(x, beta, quality=levels)
    terms = module.generator_terms(x, out, beta, quality=levels)
    logits = module.discriminator(out.x_hat, out.y_hat, beta)  # the discriminator sees the drawn β
    expected = generator_adversarial_loss(logits, torch.tensor([3.0, 2.0, 2.0]))
    assert terms["adversarial"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert terms["adversarial"].item() != pytest.approx(generator_adversarial_loss(logits, beta).item(), rel=1e-3)


def test_ladder_must_match_the_codecs_levels():
    with pytest.raises(ValueError, match="3 rate levels but rate_ladder gives 2"):
        rate_module(False, RateLadder(lambdas=[1.0, 0.5]))
    with pytest.raises(ValueError, match="rate levels but rate_ladder gives none"):
        rate_module(False, None)


def test_ladder_is_stored_in_class_path_form_for_resume():
    module = rate_module(False, RateLadder(target_bpps=[0.1, 0.2, 0.4], lambda_a=[2.0, 1.0, 0.5],
                                           realism_scales=[1.5, 1.0, 0.5]))
    stored = module.hparams["rate_ladder"]
    assert stored["class_path"] == "multirealism.training.quality.RateLadder"
    assert stored["init_args"]["realism_scales"] == [1.5, 1.0, 0.5]
    rebuilt = RateLadder(**stored["init_args"])
    assert rebuilt.config() == module.rate_ladder.config()
    assert torch.equal(rebuilt.realism_scales, module.rate_ladder.realism_scales)


class Logged(L.Callback):
    def __init__(self) -> None:
        self.metrics = {}

    def on_validation_epoch_end(self, trainer, module) -> None:
        self.metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})


@pytest.mark.parametrize("gan,precision", [(False, "32-true"), (True, "bf16-mixed")])
def test_training_updates_gains_and_logs_every_level(gan, precision):
    module = rate_module(gan, RateLadder(lambdas=[0.5, 0.1, 0.02]))
    gains = module.codec.rate_control.log_gain.detach().clone()
    torch.manual_seed(1)
    x = torch.rand(4, 3, 32, 32)
    logged = Logged()
    trainer = L.Trainer(
        accelerator="cpu", devices=1, max_steps=2, limit_val_batches=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0, precision=precision,
        callbacks=[logged],
    )
    trainer.fit(module, DataLoader(x, batch_size=4), DataLoader(x, batch_size=4))
    assert not torch.equal(module.codec.rate_control.log_gain.detach(), gains)
    for level in range(3):
        assert logged.metrics[f"val/bpp_q{level}"] > 0 and logged.metrics[f"val/psnr_q{level}"] > 0
    assert logged.metrics["val/bpp_q0"] < logged.metrics["val/bpp_q2"]  # initial gains: 0.25 vs 1


def test_validation_logs_each_levels_perceptual_distance_at_beta_zero_and_max():
    from multirealism.training.quality import level_metrics

    from helpers import natural_image, small_rate_codec_config

    torch.manual_seed(0)
    codec = MultiRealismCodec.from_config(small_rate_codec_config(
        "residual_cond_rate_gated", refiner_channels=8, refiner_mid_channels=4, base_beta=0.0))
    torch.nn.init.normal_(codec.generator.refiner.to_image.weight, std=0.2)  # a head whose β acts
    module = MultiRealismModule(codec, objective=Objective(perceptual="lpips-random-test-only"),
                                optimization=Optimization(lr=1e-3),
                                rate_ladder=RateLadder(lambdas=[0.5, 0.1, 0.02]), val_betas=[0.0, 2.56, 5.12])
    x = natural_image("coffee", 64).unsqueeze(0)
    logged = Logged()
    L.Trainer(accelerator="cpu", limit_val_batches=1, logger=False, enable_checkpointing=False,
              enable_progress_bar=False, enable_model_summary=False, callbacks=[logged]).validate(
        module, DataLoader(x, batch_size=1), verbose=False)
    module.eval()
    with torch.no_grad():
        for level in range(3):
            for beta, suffix in ((0.0, f"_q{level}"), (5.12, f"_q{level}_beta5.12")):
                out = module.codec(x, beta, quality=float(level)).x_hat.clamp(0, 1)
                assert logged.metrics[f"val/lpips{suffix}"] == pytest.approx(float(module.perceptual(out, x).mean()), rel=1e-4)
                assert logged.metrics[f"val/psnr{suffix}"] == pytest.approx(
                    float(-10 * torch.log10(((out - x) ** 2).mean())), rel=1e-4)
            # the head acts at every level (a random head: its sign on PSNR is chance)
            assert logged.metrics[f"val/psnr_q{level}_beta5.12"] != pytest.approx(logged.metrics[f"val/psnr_q{level}"])
        assert "val/lpips_q0_beta2.56" not in logged.metrics  # only β = 0 and the largest β, per level
        only_zero = level_metrics(module.codec, x, "val", module.image_metrics)
    assert set(only_zero) == {f"val/{k}_q{level}" for k in ("bpp", "psnr", "lpips") for level in range(3)}


def test_a_fixed_rate_checkpoint_initialises_a_rate_controlled_run(tmp_path):
    torch.manual_seed(5)
    fixed = MultiRealismCodec.from_config(tiny_config())
    fixed.save(tmp_path / "warmup.safetensors")
    module = rate_module(False, RateLadder(lambdas=[1.0, 0.5, 0.25]))
    gains = module.codec.rate_control.log_gain.detach().clone()
    load_codec_weights(module.codec, None, str(tmp_path / "warmup.safetensors"))
    for mine, theirs in zip(module.codec.encoder.parameters(), fixed.encoder.parameters()):
        assert torch.equal(mine, theirs)
    assert torch.equal(module.codec.rate_control.log_gain, gains)


def test_lightning_cli_accepts_a_rate_control_and_a_ladder(capsys):
    config = Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml"
    gains = '{"class_path": "multirealism.components.GainUnits", "init_args": {"latent_channels": 16, "num_levels": 3}}'
    ladder = '{"class_path": "multirealism.training.RateLadder", "init_args": {"target_bpps": [0.2, 0.4, 0.8]}}'
    with pytest.raises(SystemExit) as exit_info:
        run_lightning_cli(["fit", "--config", str(config), f"--model.codec.init_args.rate_control={gains}",
                           f"--model.rate_ladder={ladder}", "--print_config"])
    assert exit_info.value.code in (0, None)
    printed = capsys.readouterr().out
    assert "multirealism.components.GainUnits" in printed and "num_levels: 3" in printed
    assert "multirealism.training.RateLadder" in printed and "- 0.8" in printed

