"""Training a rate-controlled codec: λ ladder, a level per image, per-level validation logs."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from multirealism import MultiRealismCodec
from multirealism.presets import tiny_config
from multirealism.training import MultiRealismModule, RateLadder
from multirealism.training.cli import run_lightning_cli


def rate_module(gan: bool, ladder: RateLadder, levels: int = 3) -> MultiRealismModule:
    torch.manual_seed(0)
    config = {**tiny_config(), "rate_control": {"name": "gain", "args": {"latent_channels": 16, "num_levels": levels}}}
    discriminator = {"name": "hific", "args": {"channels": [8, 16, 16, 16]}} if gan else None
    codec = MultiRealismCodec.from_config(config)
    return MultiRealismModule(codec, discriminator=discriminator, gan=gan, lr=1e-3, perceptual="none",
                              rate_ladder=ladder, val_real_bpp_batches=1)


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
        "residual_cond_refined", refiner_channels=8, refiner_mid_channels=4, base_beta=0.0))
    torch.nn.init.normal_(codec.generator.refiner.to_image.weight, std=0.2)  # a head whose β acts
    module = MultiRealismModule(codec, gan=False, perceptual="lpips-random-test-only", lr=1e-3,
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
            assert logged.metrics[f"val/psnr_q{level}_beta5.12"] < logged.metrics[f"val/psnr_q{level}"]
        assert "val/lpips_q0_beta2.56" not in logged.metrics  # only β = 0 and the largest β, per level
        only_zero = level_metrics(module.codec, x, "val", module.image_metrics)
    assert set(only_zero) == {f"val/{k}_q{level}" for k in ("bpp", "psnr", "lpips") for level in range(3)}


def test_a_fixed_rate_checkpoint_initialises_a_rate_controlled_run(tmp_path):
    torch.manual_seed(5)
    fixed = MultiRealismCodec.from_config(tiny_config())
    fixed.save(tmp_path / "warmup.safetensors")
    module = rate_module(False, RateLadder(lambdas=[1.0, 0.5, 0.25]))
    gains = module.codec.rate_control.log_gain.detach().clone()
    module.load_codec_weights(str(tmp_path / "warmup.safetensors"))
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


def grown_two_level_codec(tmp_path, offset: float, spacing: float, lambdas, below: int = 0, above: int = 0):
    """A 2-level codec with distinct per-channel gains (as a trained rate control has), saved, and the codec
    of a ``len(lambdas)``-level run started from it with ``below`` / ``above`` levels added; both ready to code."""
    from multirealism.checkpoint import save_weights

    old = rate_module(False, RateLadder(lambdas=[0.5, 0.1]), levels=2).codec
    with torch.no_grad():
        channels = torch.linspace(offset, offset + 1.0, 16)
        old.rate_control.log_gain.copy_(torch.stack([channels, channels + spacing]))
    path = tmp_path / "two_levels.safetensors"
    save_weights(path, old.config(), old.state_dict())
    module = rate_module(False, RateLadder(lambdas=lambdas), levels=len(lambdas))
    module.load_codec_weights(str(path), levels_below=below, levels_above=above)
    for codec in (old, module.codec):
        codec.update(force=True)
        codec.eval()
    return old, module.codec, path


def assert_stored_levels_code_alike(old, new, below: int, beta: float) -> torch.Tensor:
    """The stored levels 0 and 1 are ``new``'s ``below`` and ``below + 1``: the same symbols and pixels (only the
    header's quality differs). Returns the 64² test image."""
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    for q_old in (0, 1):
        data_new, data_old = new.compress(x, quality=q_old + below), old.compress(x, quality=q_old)
        assert len(data_new) == len(data_old)
        assert torch.equal(new.decompress(data_new, beta), old.decompress(data_old, beta))
    return x


def test_init_levels_above_keeps_the_stored_levels_and_adds_higher_rates(tmp_path):
    """A 2-level checkpoint starts a 5-level run with one level below and two above: stored levels become 1
    and 2 (same bytes and pixels), and the levels above code more bits than the stored top."""
    old, new, _ = grown_two_level_codec(tmp_path, -0.5, 0.4, [1.0, 0.5, 0.1, 0.05, 0.025], below=1, above=2)
    x = assert_stored_levels_code_alike(old, new, below=1, beta=0.0)
    sizes = [len(new.compress(x, quality=q)) for q in range(5)]
    assert sizes[2] < sizes[3] < sizes[4]
    with torch.no_grad():
        step = old.rate_control.log_gain[1] - old.rate_control.log_gain[0]
        assert torch.allclose(new.rate_control.log_gain[4], old.rate_control.log_gain[1] + 2 * step)
        assert torch.allclose(new.rate_control.log_inverse_gain[3], old.rate_control.log_inverse_gain[1]
                              + old.rate_control.log_inverse_gain[1] - old.rate_control.log_inverse_gain[0])


def test_init_levels_below_keeps_the_stored_levels_and_adds_lower_rates(tmp_path):
    """A 2-level checkpoint starts a 4-level run: stored levels become 2 and 3, levels 0 and 1 code fewer bits."""
    from multirealism.checkpoint import save_weights
    from multirealism.errors import CheckpointError

    old, new, path = grown_two_level_codec(tmp_path, 1.0, 0.5, [2.0, 1.0, 0.5, 0.1], below=2)
    x = assert_stored_levels_code_alike(old, new, below=2, beta=2.56)
    sizes = [len(new.compress(x, quality=q)) for q in range(4)]
    assert sizes[0] < sizes[1] < sizes[2]
    with torch.no_grad():
        step = old.rate_control.log_gain[1] - old.rate_control.log_gain[0]
        assert torch.allclose(new.rate_control.log_gain[0], old.rate_control.log_gain[0] - 2 * step)
        assert torch.equal(new.rate_control.scale(torch.ones(1, 16, 1, 1), 2.5), old.rate_control.scale(torch.ones(1, 16, 1, 1), 0.5))

    with pytest.raises(CheckpointError, match=r"has \[2\] rate levels; with init_levels_below=1 and init_levels_above=0 this codec \(4 levels\) needs 3"):
        rate_module(False, RateLadder(lambdas=[2.0, 1.0, 0.5, 0.1]), levels=4).load_codec_weights(str(path), levels_below=1)
    for name in ("init_levels_below", "init_levels_above"):
        for bad, match in ((-1, "non-negative integer"), (True, "non-negative integer"), (2, "give init_from")):
            with pytest.raises(ValueError, match=f"{name}.*{match}"):
                MultiRealismModule(MultiRealismCodec.from_config(old.config()), gan=False, perceptual="none",
                                   rate_ladder=RateLadder(lambdas=[0.5, 0.1]), **{name: bad})
    fixed = tmp_path / "fixed.safetensors"
    plain = MultiRealismCodec.from_config(tiny_config())
    save_weights(fixed, plain.config(), plain.state_dict())
    with pytest.raises(CheckpointError, match="no rate control"):
        rate_module(False, RateLadder(lambdas=[2.0, 1.0, 0.5, 0.1]), levels=4).load_codec_weights(str(fixed), levels_below=2)
