"""``multirealism fit --config configs/tiny.yaml`` through LightningCLI, and ``--print_config``."""

from pathlib import Path

import pytest
import torch
import yaml

from multirealism import MultiRealismCodec
from multirealism.cli.lightning_commands import run_lightning_cli

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


@pytest.mark.parametrize("name", ["small", "small_realism", "medium", "medium_realism"])
def test_preset_recipe_configs_parse_and_build(name, capsys):
    """The two stages of the `small` and the shipped `medium` model: preset codecs, a rate ladder, held-out
    validation."""
    from multirealism.zoo import create_codec

    config = yaml.safe_load(printed_config(capsys, name))
    model = config["model"]
    assert model["codec"]["class_path"] == "multirealism.zoo.create_codec"
    assert model["rate_ladder"]["init_args"]["lambdas"] and config["data"]["init_args"]["val"] == "samples"
    codec = create_codec(**model["codec"]["init_args"])
    assert codec.num_levels == len(model["rate_ladder"]["init_args"]["lambdas"])


@pytest.mark.parametrize("warmup", ["small", "medium"])
def test_the_realism_stage_trains_a_branch_beside_the_frozen_base(warmup, capsys):
    """`<preset>_realism` builds the preset's architecture: the warm-up's codec plus a realism synthesis, which
    starts as a copy of the warm-up's and is all that trains, against the projected discriminator, with no batch
    wasted at β = 0. The shipped model is `medium_realism`'s."""
    from multirealism import MultiRealismCodec
    from multirealism.zoo import create_codec, default_pretrained

    stage1 = yaml.safe_load(printed_config(capsys, warmup))["model"]
    model = yaml.safe_load(printed_config(capsys, f"{warmup}_realism"))["model"]
    assert model["init"]["trainable"] == ["generator.realism"]
    assert model["init"]["copy_parts"] == {"generator.realism": "generator"}
    assert model["objective"]["perceptual"] == "stlpips-alex" and model["objective"]["adversarial_weight"] > 0
    assert model["discriminator"]["name"] == "projected"
    assert model["beta_sampler"]["init_args"]["zero_fraction"] == 0.0
    assert model["rate_ladder"] == stage1["rate_ladder"]
    codec = create_codec(**model["codec"]["init_args"])
    assert codec.config() == create_codec(warmup).config()
    base = set(create_codec(**stage1["codec"]["init_args"]).state_dict())
    assert set(codec.state_dict()) - base == {k for k in codec.state_dict() if k.startswith("generator.realism.")}
    assert base <= set(codec.state_dict())
    if warmup == default_pretrained():
        assert codec.config() == MultiRealismCodec.pretrained().config()
