"""DDP on two CPU processes (gloo): both ranks end at the same step with identical weights (gain units
included), draw different β and rate levels (issue 14 item 4) and run validation, whose synced logs
(per-level PSNR included) must live on the module's device."""

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

SCRIPT = textwrap.dedent(
    """
    import sys
    import lightning as L
    import torch
    from torch.utils.data import DataLoader
    from multirealism import MultiRealismCodec
    from multirealism.zoo import tiny_config
    from multirealism.training import (
        BetaSampler, DiscriminatorSettings, MultiRealismModule, Objective, Optimization, RateLadder,
    )

    class RecordingSampler(BetaSampler):
        def __init__(self):
            super().__init__(5.12)
            self.drawn = []

        def __call__(self, *args, **kwargs):
            beta = super().__call__(*args, **kwargs)
            self.drawn.append(beta.clone())
            return beta

    class RecordingLadder(RateLadder):
        def __init__(self):
            super().__init__(lambdas=[1.0, 0.1, 0.01])
            self.drawn = []

        def sample(self, *args, **kwargs):
            levels = super().sample(*args, **kwargs)
            self.drawn.append(levels.clone())
            return levels

    class CountValidation(L.Callback):
        batches = 0

        def on_validation_batch_end(self, *args, **kwargs):
            self.batches += 1

    L.seed_everything(0)
    discriminator = DiscriminatorSettings(args={"channels": [8, 16, 16, 16]})
    sampler, ladder, counter = RecordingSampler(), RecordingLadder(), CountValidation()
    config = {**tiny_config(), "rate_control": {"name": "gain", "args": {"latent_channels": 16, "num_levels": 3}}}
    module = MultiRealismModule(MultiRealismCodec.from_config(config), discriminator=discriminator,
                                objective=Objective(perceptual="none"), optimization=Optimization(lr=1e-3),
                                beta_sampler=sampler, rate_ladder=ladder, val_real_bpp_batches=1)
    data = torch.rand(16, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    trainer = L.Trainer(
        accelerator="cpu", devices=2, strategy="ddp_find_unused_parameters_true", max_steps=3,
        logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        val_check_interval=3, check_val_every_n_epoch=None, num_sanity_val_steps=0, callbacks=[counter],
    )
    trainer.fit(module, DataLoader(data, batch_size=4), DataLoader(data[:3], batch_size=1))
    torch.save({"step": trainer.global_step, "state": module.codec.state_dict(),
                "betas": torch.cat(sampler.drawn), "levels": torch.cat(ladder.drawn), "val_batches": counter.batches,
                "val_psnr_q2": float(trainer.callback_metrics["val/psnr_q2"])},
               f"{sys.argv[1]}/rank{trainer.global_rank}.pt")
    """
)


def run_two_ranks(script: str, tmp_path: Path) -> None:
    """Run a 2-process DDP script (it launches its second rank itself) on this checkout's package."""
    path = tmp_path / "ddp_script.py"
    path.write_text(script)
    repo = str(Path(__file__).resolve().parents[1])  # this checkout's package, not another installed copy
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")]))}
    # its own process group: on a timeout both ranks are killed, not only rank 0 (rank 1 is its child and
    # would otherwise be left waiting on the collective, holding both cores for the rest of the suite)
    process = subprocess.Popen(
        [sys.executable, str(path), str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=tmp_path, env=env, start_new_session=True,
    )
    try:
        _, stderr = process.communicate(timeout=400)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        _, stderr = process.communicate()
        pytest.fail(f"the two DDP ranks did not finish in 400 s (both killed); rank 0's stderr: {stderr[-3000:]}")
    assert process.returncode == 0, stderr[-3000:]


@pytest.mark.slow
def test_ddp_two_cpu_processes_agree_on_weights_and_draw_their_own_betas_and_levels(tmp_path):
    run_two_ranks(SCRIPT, tmp_path)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert ranks[0]["step"] == ranks[1]["step"] == 3
    assert ranks[0]["val_batches"] > 0 and ranks[1]["val_batches"] > 0
    assert ranks[0]["betas"].shape == ranks[1]["betas"].shape == (12,)
    assert not torch.allclose(ranks[0]["betas"], ranks[1]["betas"])
    assert ranks[0]["levels"].shape == ranks[1]["levels"].shape == (12,)
    assert not torch.equal(ranks[0]["levels"], ranks[1]["levels"])
    assert ranks[0]["val_psnr_q2"] == ranks[1]["val_psnr_q2"]  # synced across ranks
    for key, value in ranks[0]["state"].items():
        assert torch.equal(value, ranks[1]["state"][key]), key


UNEVEN_SCRIPT = textwrap.dedent(
    """
    import sys
    import lightning as L
    import torch
    from multirealism import MultiRealismCodec
    from multirealism.data import MultiRealismDataModule
    from multirealism.zoo import tiny_config
    from multirealism.training import MultiRealismModule, Objective, Optimization

    class Count(L.Callback):
        val_batches = 0

        def on_validation_batch_end(self, *args, **kwargs):
            self.val_batches += 1

    L.seed_everything(0)
    root = sys.argv[1]
    module = MultiRealismModule(MultiRealismCodec.from_config(tiny_config()), objective=Objective(perceptual="none"),
                                optimization=Optimization(lr=1e-3), val_real_bpp_batches=0)
    data = MultiRealismDataModule(train=f"{root}/train", val=f"{root}/val", crop_size=32, batch_size=2,
                                  val_crop=32, num_workers=1)
    counter = Count()
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy="ddp_find_unused_parameters_true", max_epochs=1,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0, callbacks=[counter])
    trainer.fit(module, datamodule=data)
    torch.save({"step": trainer.global_step, "val_batches": counter.val_batches},
               f"{root}/rank{trainer.global_rank}.pt")
    """
)


@pytest.mark.slow
def test_ddp_ranks_with_uneven_image_counts_train_and_validate_the_same_number_of_batches(tmp_path):
    """7 training images over 2 ranks (4 + 3 crops: 2 batches and 1 under the old per-rank crop quota, a
    hang in real DDP) and 3 validation images: every rank must step and validate equally often."""
    from helpers import natural_image
    from multirealism.imageio import save_image

    for split, count in (("train", 7), ("val", 3)):
        (tmp_path / split).mkdir()
        for i in range(count):
            save_image(natural_image("astronaut", 128)[:, i * 8 : i * 8 + 64, :64], tmp_path / split / f"{i}.png")
    run_two_ranks(UNEVEN_SCRIPT, tmp_path)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert ranks[0]["step"] == ranks[1]["step"] == 2
    assert ranks[0]["val_batches"] == ranks[1]["val_batches"] == 2
