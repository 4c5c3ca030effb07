"""``multirealism fit --config configs/tiny.yaml`` through LightningCLI, and ``--print_config``."""

from pathlib import Path

import pytest
import torch
import yaml

from multirealism import MultiRealismCodec
from multirealism.training.cli import run_lightning_cli

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def printed_config(capsys, *names: str) -> str:
    """What ``fit --print_config`` prints for ``configs/<name>.yaml`` stacked in order; it must exit cleanly."""
    with pytest.raises(SystemExit) as exit_info:
        run_lightning_cli(["fit", *(f"--config={CONFIGS / name}.yaml" for name in names), "--print_config"])
    assert exit_info.value.code in (0, None)
    return capsys.readouterr().out


@pytest.mark.parametrize("name", ["tiny", "paper", "hific_like", "mse_only", "warmup"])
def test_print_config(name, capsys):
    printed = printed_config(capsys, name)
    assert "multirealism.components.ElicConditionalGenerator" in printed
    assert "mse_weight: 150.0" in printed


@pytest.mark.slow
def test_fit_tiny_config_for_two_steps(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_lightning_cli(
        [
            "fit", "--config", str(CONFIGS / "tiny.yaml"),
            "--trainer.max_steps=2", "--trainer.val_check_interval=2",
            "--trainer.enable_progress_bar=false", "--data.init_args.crop_size=32", "--data.init_args.val_crop=64",
            "--data.init_args.batch_size=2", "--data.init_args.num_workers=0",
        ],
        save_config_callback=None,
    )
    checkpoint = tmp_path / "runs" / "tiny" / "checkpoints" / "last.ckpt"
    stored = torch.load(checkpoint, weights_only=True)
    assert stored["global_step"] == 2
    codec = MultiRealismCodec.from_checkpoint(checkpoint)
    assert codec.decompress(codec.compress(torch.rand(3, 40, 48)), beta=5.12).shape == (1, 3, 40, 48)
    assert (tmp_path / "runs" / "tiny" / "version_0" / "metrics.csv").is_file()


@pytest.mark.parametrize("name", ["small_warmup", "small_warmup_long", "small_warmup_decay", "small", "small_realism"])
def test_default_model_recipe_configs_parse(name, capsys):
    printed = printed_config(capsys, name)
    assert "multirealism.presets.create_codec" in printed and "name: small" in printed
    assert "lambdas:" in printed and "val: samples" in printed  # held-out validation, rate ladder


def test_vgg_head_config_stacks_on_the_realism_recipe(capsys):
    """configs/small_realism_vgg.yaml (small-v4) overrides the head stage's perceptual term, steps and run folder."""
    printed = printed_config(capsys, "small_realism", "small_realism_vgg")
    assert "perceptual: stlpips-vgg" in printed and "max_steps: 1000" in printed
    assert "dirpath: runs/small_realism_vgg/checkpoints" in printed and "trainable:" in printed


def test_level_scaled_head_config_stacks_on_the_vgg_head(capsys):
    """configs/small_realism_levels.yaml adds per-level realism scales to the vgg head stage."""
    printed = printed_config(capsys, "small_realism", "small_realism_vgg", "small_realism_levels")
    assert "perceptual: stlpips-vgg" in printed and "dirpath: runs/small_realism_levels/checkpoints" in printed
    assert "realism_scales:" in printed and "- 0.585" in printed and "- 0.04" in printed  # λ ladder kept


def test_rate_aware_head_config_stacks_on_the_vgg_head(capsys):
    """configs/small_rate_head.yaml: a new, wider head that reads the rate, trained alone on all nine levels."""
    printed = printed_config(capsys, "small_realism", "small_realism_vgg", "small_rate_head")
    assert "refiner_reads_rate: true" in printed and "refiner_channels: 64" in printed and "num_levels: 9" in printed
    assert "- generator.refiner" in printed and "perceptual: stlpips-vgg" in printed
    assert "- 2.257" in printed and "- 10.24" in printed and "dirpath: runs/small_rate_head/checkpoints" in printed


def test_warm_rate_aware_head_config_keeps_the_stored_head(capsys):
    """configs/small_rate_head_warm.yaml: the 32-channel head stays, only its rate MLP is new."""
    printed = printed_config(capsys, "small_realism", "small_realism_vgg", "small_rate_head", "small_rate_head_warm")
    assert "refiner_channels: 32" in printed and "refiner_reads_rate: true" in printed and "max_steps: 700" in printed
    assert "- generator.refiner.from_rate" in printed and "dirpath: runs/small_rate_head_warm/checkpoints" in printed


def test_lower_levels_config_extends_the_ladder_of_the_default_model(capsys):
    """configs/small_levels.yaml (small-v6 stage 1): 9 levels, 3 extrapolated below the stored ones."""
    printed = printed_config(capsys, "small_levels")
    assert "num_levels: 9" in printed and "init_levels_below: 3" in printed and "- 10.24" in printed
    assert "- rate_control" in printed and "val: samples" in printed


def test_rate_gate_config_trains_only_the_gate(capsys):
    """configs/small_rate_gate.yaml: small-v6's head frozen, a gain per rate level on its residual learns."""
    printed = printed_config(capsys, "small_realism", "small_realism_vgg", "small_rate_gate")
    assert "refiner_rate_gate: true" in printed and "refiner_channels: 32" in printed and "num_levels: 9" in printed
    assert "- generator.rate_gate" in printed and "lr: 0.01" in printed and "perceptual: stlpips-vgg" in printed
    assert "- 2.257" in printed and "dirpath: runs/small_rate_gate/checkpoints" in printed


def test_head_and_gate_config_trains_both_from_the_stored_weights(capsys):
    """configs/small_head_gate.yaml (small-v8): small-v7's head and gate train on, nothing starts afresh."""
    printed = printed_config(capsys, "small_realism", "small_realism_vgg", "small_rate_gate", "small_head_gate")
    assert "refiner_rate_gate: true" in printed and "init_new: []" in printed and "lr: 0.0003" in printed
    assert "- generator.refiner\n" in printed and "- generator.rate_gate\n" in printed and "max_steps: 600" in printed
    assert "- 2.257" in printed and "dirpath: runs/small_head_gate/checkpoints" in printed


def test_gan_head_config_warms_the_discriminator_up_before_the_head_stage(capsys):
    """configs/small_gan_head.yaml: 1 500 discriminator-only steps, then small-v8's head stage at 8x the GAN weight."""
    stack = ("small_realism", "small_realism_vgg", "small_rate_gate", "small_head_gate", "small_gan_head")
    model = yaml.safe_load(printed_config(capsys, *stack))["model"]
    assert model["discriminator_warmup_steps"] == 1500 and model["discriminator_lr"] == 0.0002
    assert model["adversarial_weight"] == pytest.approx(8 * 0.05 / 2.56) and model["lr"] == 0.0003
    assert model["trainable"] == ["generator.refiner", "generator.rate_gate"] and model["gan"] is True


def test_deep_head_config_grows_small_v8s_head_by_one_block(capsys):
    """configs/small_deep_head.yaml: small-v8's codec with one more head block, started afresh and trained with
    the head and gate; the stacked options build the deep generator, whose only new weights are that block's."""
    from multirealism.presets import create_codec

    stack = ("small_realism", "small_realism_vgg", "small_rate_gate", "small_head_gate", "small_deep_head")
    model = yaml.safe_load(printed_config(capsys, *stack))["model"]
    assert model["init_new"] == ["generator.refiner.extra"] and model["lr"] == 0.0003
    assert model["trainable"] == ["generator.refiner", "generator.rate_gate"]
    codec = create_codec(**model["codec"]["init_args"])
    shallow = create_codec("small_realism", num_levels=9, refiner_channels=32, refiner_rate_gate=True)
    assert codec.config()["generator"]["name"] == "residual_cond_rate_gated_deep"
    new = set(codec.state_dict()) - set(shallow.state_dict())
    assert new and all(k.startswith("generator.refiner.extra.0.") for k in new)
    assert set(shallow.state_dict()) <= set(codec.state_dict())


def test_multiscale_head_config_is_small_v8s_stage_with_three_scales(capsys):
    """configs/small_multiscale_head.yaml: small-v8's head-and-gate stage, the perceptual term at three scales."""
    stack = ("small_realism", "small_realism_vgg", "small_rate_gate", "small_head_gate", "small_multiscale_head")
    model = yaml.safe_load(printed_config(capsys, *stack))["model"]
    assert model["perceptual_scales"] == [1, 2, 4] and model["perceptual"] == "stlpips-vgg"
    assert model["trainable"] == ["generator.refiner", "generator.rate_gate"] and model["init_new"] == []
    assert model["lr"] == 0.0003


def test_multiscale_gate_config_trains_only_the_gate_on_three_scales(capsys):
    """configs/small_multiscale_gate.yaml (small-v9's second stage): only the gate, nothing new, three scales."""
    stack = ("small_realism", "small_realism_vgg", "small_rate_gate", "small_multiscale_gate")
    config = yaml.safe_load(printed_config(capsys, *stack))
    model = config["model"]
    assert model["perceptual_scales"] == [1, 2, 4] and model["perceptual"] == "stlpips-vgg"
    assert model["trainable"] == ["generator.rate_gate"] and model["init_new"] == [] and model["lr"] == 0.003
    assert model["rate_ladder"]["init_args"]["realism_scales"][:2] == [2.257, 1.69]
    assert config["trainer"]["max_steps"] == 300


def test_encoder_ends_config_trains_only_the_encoder_at_the_two_ends(capsys):
    """configs/small_encoder_ends.yaml: the analysis transform alone, β = 0 or β_max (half each), no GAN."""
    stack = ("small_realism", "small_realism_vgg", "small_rate_gate", "small_multiscale_gate", "small_encoder_ends")
    model = yaml.safe_load(printed_config(capsys, *stack))["model"]
    assert model["trainable"] == ["encoder"] and model["init_new"] == [] and model["gan"] is False
    sampler = model["beta_sampler"]["init_args"]
    assert (sampler["zero_fraction"], sampler["max_fraction"]) == (0.5, 0.5)
    assert model["perceptual_scales"] == [1, 2, 4] and model["lr"] == 0.0001


def test_higher_levels_config_extends_the_shipped_model_upwards(capsys, tmp_path):
    """configs/small_levels_high.yaml: small-v8 with two levels above its highest; built from the printed config
    with small-v8's weights, its nine stored levels keep their gains and the two new ones continue the line."""

    from multirealism.presets import create_codec
    from multirealism.training import MultiRealismModule, RateLadder

    printed = yaml.safe_load(printed_config(capsys, "small_levels_high"))["model"]
    assert printed["init_levels_above"] == 2 and printed["trainable"] is None
    assert printed["beta_sampler"]["init_args"]["zero_fraction"] == 1.0  # β = 0: the realism head gets no gradient
    v8 = MultiRealismCodec.pretrained("small-v8")
    weights = tmp_path / "small-v8.safetensors"
    v8.save(weights)
    module = MultiRealismModule(
        create_codec(**printed["codec"]["init_args"]), gan=printed["gan"], perceptual=printed["perceptual"],
        rate_ladder=RateLadder(**printed["rate_ladder"]["init_args"]), init_from=str(weights),
        init_levels_above=printed["init_levels_above"],
    )
    stored, grown = v8.rate_control.log_gain, module.codec.rate_control.log_gain
    assert grown.shape == (11, stored.shape[1]) and torch.equal(grown[:9], stored)
    assert torch.allclose(grown[10] - grown[9], stored[8] - stored[7]) and torch.allclose(grown[9] - grown[8], stored[8] - stored[7])
    assert torch.equal(module.codec.generator.refiner.to_image.weight, v8.generator.refiner.to_image.weight)
