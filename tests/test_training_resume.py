"""Resuming training (issue 14): ``multirealism fit --ckpt_path last.ckpt`` through the real CLI and
``Trainer.fit(ckpt_path=...)``, after a validation has resized the entropy coders' tables."""

import json
from pathlib import Path

import pytest
import torch

from multirealism.cli.lightning_commands import run_lightning_cli

CONFIGS = Path(__file__).resolve().parents[1] / "configs"

ENTROPY_MODELS = {
    "hyperprior": None,  # tiny.yaml's own
    "charm": {
        "class_path": "multirealism.components.ChannelAutoregressive",
        "init_args": {"latent_channels": 16, "hyper_channels": 8, "num_slices": 2, "max_support_slices": 1,
                      "transform_channels": [8, 8]},
    },
}


def tiny_args(entropy: str, max_steps: int) -> list:
    args = [
        "fit", "--config", str(CONFIGS / "tiny.yaml"),
        f"--trainer.max_steps={max_steps}", "--trainer.val_check_interval=2", "--trainer.limit_val_batches=1",
        "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
        "--model.objective.perceptual=none", "--model.val_real_bpp_batches=1",
        "--data.init_args.crop_size=32", "--data.init_args.val_crop=32",
        "--data.init_args.batch_size=2", "--data.init_args.num_workers=0",
    ]
    if ENTROPY_MODELS[entropy] is not None:
        args.append("--model.codec.init_args.entropy_model=" + json.dumps(ENTROPY_MODELS[entropy]))
    return args


@pytest.mark.slow
@pytest.mark.parametrize("entropy", ["hyperprior", "charm"])
def test_cli_fit_resumes_from_last_checkpoint_after_validation(entropy, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_lightning_cli(tiny_args(entropy, max_steps=2), save_config_callback=None)
    last = tmp_path / "runs" / "tiny" / "checkpoints" / "last.ckpt"
    stored = torch.load(last, weights_only=True)
    assert stored["global_step"] == 2
    # validation built the coder tables, so the checkpoint's buffers differ from a fresh module's
    offsets = [k for k in stored["state_dict"] if k.endswith("entropy_bottleneck._offset")]
    assert offsets and all(stored["state_dict"][k].numel() > 0 for k in offsets)
    assert stored["hyper_parameters"]["rate_weight"]["class_path"].endswith("HiFiCLambdaSchedule")

    cli = run_lightning_cli(tiny_args(entropy, max_steps=4) + ["--ckpt_path", str(last)], save_config_callback=None)
    assert cli.trainer.global_step == 4
    assert torch.load(last, weights_only=True)["global_step"] == 4

    # the same checkpoint through Trainer.fit on a freshly built module and trainer
    cli = run_lightning_cli(tiny_args(entropy, max_steps=6)[1:], save_config_callback=None, run=False)
    assert cli.model.global_step == 0
    cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=str(last))
    assert cli.trainer.global_step == 6


@pytest.mark.parametrize("gan", [False, True])
def test_a_run_stopped_off_the_checkpoint_interval_leaves_last_at_its_final_step(gan, tmp_path):
    """ModelCheckpoint(every_n_train_steps=2, save_last=True) alone leaves last.ckpt at step 2 when a run stops
    at step 3 (max_time, or max_steps off the grid); the module writes it at step 3, and the run resumes there."""
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint
    from torch.utils.data import DataLoader

    from multirealism import MultiRealismCodec
    from multirealism.zoo import tiny_config
    from multirealism.training import DiscriminatorSettings, MultiRealismModule, Objective, Optimization

    def fit(max_steps: int, ckpt_path=None) -> L.Trainer:
        torch.manual_seed(0)
        discriminator = DiscriminatorSettings(args={"channels": [8, 16, 16, 16]}) if gan else None
        module = MultiRealismModule(MultiRealismCodec.from_config(tiny_config()), discriminator=discriminator,
                                    objective=Objective(perceptual="none"), optimization=Optimization(lr=1e-3))
        checkpoints = ModelCheckpoint(dirpath=tmp_path, filename="step{step}", auto_insert_metric_name=False,
                                      every_n_train_steps=2, save_last=True)
        trainer = L.Trainer(accelerator="cpu", max_steps=max_steps, logger=False, callbacks=[checkpoints],
                            enable_progress_bar=False, enable_model_summary=False)
        trainer.fit(module, DataLoader(torch.rand(8, 3, 32, 32), batch_size=2), ckpt_path=ckpt_path)
        return trainer

    trainer = fit(3)
    last = tmp_path / "last.ckpt"
    assert torch.load(last, weights_only=True)["global_step"] == trainer.global_step == 3
    assert sorted(p.name for p in tmp_path.glob("step*.ckpt")) == ["step2.ckpt"]
    trainer = fit(4, ckpt_path=str(last))
    assert trainer.global_step == 4 and torch.load(last, weights_only=True)["global_step"] == 4


def test_checkpoint_with_longer_coder_tables_loads_into_a_codec_whose_tables_are_built():
    """Starting from a warm-up builds the coder tables; a later ``fit --ckpt_path`` must still load a
    checkpoint whose validation rebuilt them with another length (CompressAI resizes empty ones only)."""
    from multirealism import MultiRealismCodec
    from multirealism.zoo import tiny_config
    from multirealism.training import MultiRealismModule, Objective

    def module(seed: int, widen: float) -> MultiRealismModule:
        torch.manual_seed(seed)
        codec = MultiRealismCodec.from_config(tiny_config())
        for name, param in codec.named_parameters():
            if name.endswith("entropy_bottleneck.quantiles"):
                param.data[..., 0] -= widen
                param.data[..., 2] += widen
        codec.update(force=True)
        return MultiRealismModule(codec, objective=Objective(perceptual="none"))

    target, stored = module(0, widen=0.0), module(1, widen=6.0)
    key = next(k for k in stored.state_dict() if k.endswith("entropy_bottleneck._quantized_cdf"))
    assert stored.state_dict()[key].shape[1] > target.state_dict()[key].shape[1]

    target.load_state_dict(stored.state_dict())
    for name, value in stored.state_dict().items():
        assert torch.equal(target.state_dict()[name], value), name
    image = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    target.codec.update(force=True)
    assert target.codec.compress(image) == stored.codec.compress(image)
