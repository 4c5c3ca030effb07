"""Resuming through the real CLI and through Trainer.fit after validations have built the coder tables."""

from pathlib import Path
from typing import List

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader

from multirealism import MultiRealismCodec
from multirealism.presets import tiny_config
from multirealism.training import MultiRealismModule
from multirealism.training.cli import run_lightning_cli

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
CHARM = (
    '--model.codec.init_args.entropy_model={"class_path": "multirealism.components.ChannelAutoregressive", '
    '"init_args": {"latent_channels": 16, "hyper_channels": 8, "num_slices": 4, "max_support_slices": 2, '
    '"transform_channels": [16]}}'
)


def cli_fit(max_steps: int, entropy_model: str, ckpt_path: "str | None" = None) -> None:
    argv = [
        "fit", "--config", str(CONFIGS / "tiny.yaml"), f"--trainer.max_steps={max_steps}",
        "--trainer.val_check_interval=2", "--trainer.limit_val_batches=1", "--trainer.enable_progress_bar=false",
        "--model.perceptual=none", "--model.val_real_bpp_batches=1", "--data.init_args.crop_size=32",
        "--data.init_args.val_crop=64", "--data.init_args.batch_size=2", "--data.init_args.num_workers=0",
    ]
    if entropy_model == "charm":
        argv.append(CHARM)
    if ckpt_path is not None:
        argv.append(f"--ckpt_path={ckpt_path}")
    run_lightning_cli(argv, save_config_callback=None)


@pytest.mark.slow
@pytest.mark.parametrize("entropy_model", ["hyperprior", "charm"])
def test_cli_fit_resumes_from_last_ckpt_written_after_a_validation(tmp_path, monkeypatch, entropy_model):
    monkeypatch.chdir(tmp_path)
    cli_fit(2, entropy_model)
    last = tmp_path / "runs" / "tiny" / "checkpoints" / "last.ckpt"
    stored = torch.load(last, weights_only=True)
    assert stored["global_step"] == 2
    # the validation built the coder tables: the checkpoint holds resized CDF buffers
    offsets = [v for k, v in stored["state_dict"].items() if k.endswith("entropy_bottleneck._offset")]
    assert offsets and offsets[0].numel() > 1
    assert stored["hyper_parameters"]["rate_weight"]["class_path"].endswith("HiFiCLambdaSchedule")

    cli_fit(4, entropy_model, ckpt_path=str(last))
    resumed = torch.load(last, weights_only=True)
    assert resumed["global_step"] == 4
    # Adam's step count continued from the checkpoint instead of restarting
    assert resumed["optimizer_states"][0]["state"][0]["step"].item() == 4.0


def tiny_module(entropy_model: str) -> MultiRealismModule:
    torch.manual_seed(0)
    config = tiny_config(entropy_model)
    config["discriminator"] = {"name": "hific", "args": {"latent_channels": 16, "channels": [8, 16, 16, 16]}}
    return MultiRealismModule(MultiRealismCodec.from_config(config), perceptual="none", lr=1e-3)


@pytest.mark.parametrize("entropy_model", ["hyperprior", "charm"])
def test_trainer_fit_resumes_after_validation_built_the_coder_tables(tmp_path, entropy_model):
    data = DataLoader(torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0)), batch_size=2)

    def run(max_steps: int, **kwargs) -> L.Trainer:
        trainer = L.Trainer(
            accelerator="cpu", max_steps=max_steps, logger=False, enable_progress_bar=False,
            enable_model_summary=False, num_sanity_val_steps=0, val_check_interval=2, limit_val_batches=1,
            callbacks=[ModelCheckpoint(dirpath=tmp_path, save_last=True)],
        )
        trainer.fit(kwargs.pop("module"), data, val_dataloaders=data, **kwargs)
        return trainer

    run(2, module=tiny_module(entropy_model))
    steps: List[int] = []
    module = tiny_module(entropy_model)
    module.on_train_start = lambda: steps.append(module.trainer.global_step)
    assert run(4, module=module, ckpt_path=str(tmp_path / "last.ckpt")).global_step == 4
    assert steps == [2]
