"""DDP on two CPU processes (gloo): training finishes and both ranks hold identical weights."""

import subprocess
import sys
import textwrap

import pytest
import torch

SCRIPT = textwrap.dedent(
    """
    import sys
    import lightning as L
    import torch
    from torch.utils.data import DataLoader
    from multirealism import MultiRealismCodec
    from multirealism.presets import tiny_config
    from multirealism.training import MultiRealismModule

    torch.manual_seed(0)
    config = tiny_config()
    config["discriminator"] = {"name": "hific", "args": {"latent_channels": 16, "channels": [8, 16, 16, 16]}}
    module = MultiRealismModule(MultiRealismCodec.from_config(config), perceptual="none", lr=1e-3)
    data = torch.rand(16, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    trainer = L.Trainer(
        accelerator="cpu", devices=2, strategy="ddp_find_unused_parameters_true", max_steps=3,
        logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        limit_val_batches=0,
    )
    trainer.fit(module, DataLoader(data, batch_size=4))
    torch.save({"step": trainer.global_step, "state": module.codec.state_dict()},
               f"{sys.argv[1]}/rank{trainer.global_rank}.pt")
    """
)


@pytest.mark.slow
def test_ddp_two_cpu_processes_end_with_identical_weights(tmp_path):
    script = tmp_path / "ddp_fit.py"
    script.write_text(SCRIPT)
    result = subprocess.run(
        [sys.executable, str(script), str(tmp_path)], capture_output=True, text=True, timeout=400, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert ranks[0]["step"] == ranks[1]["step"] == 3
    for key, value in ranks[0]["state"].items():
        assert torch.equal(value, ranks[1]["state"][key]), key
