"""Mixed precision in MultiRealismModule (issue 14): gradients are clipped after the scaler
unscales them, and validation metrics are float32 under bf16 autocast."""

from typing import List

import lightning as L
import pytest
import torch
from lightning.pytorch.plugins.precision import MixedPrecision
from torch.utils.data import DataLoader

from multirealism import MultiRealismCodec
from multirealism.zoo import tiny_config
from multirealism.training import DiscriminatorSettings, FixedLambda, MultiRealismModule, Objective, Optimization

SCALE = 1024.0


class FakeScaler:
    """A GradScaler stand-in with a fixed scale that records each optimizer's gradient norm at step time."""

    def __init__(self) -> None:
        self.step_norms: List[float] = []

    def scale(self, loss: torch.Tensor) -> torch.Tensor:
        return loss * SCALE

    def unscale_(self, optimizer: torch.optim.Optimizer) -> None:
        for group in optimizer.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.grad.div_(SCALE)

    def step(self, optimizer: torch.optim.Optimizer, **kwargs):
        grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        self.step_norms.append(float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))))
        return optimizer.step()

    def update(self) -> None:
        pass

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def tiny_module(perceptual: str, gradient_clip_val: "float | None" = 1.0, **kwargs) -> MultiRealismModule:
    torch.manual_seed(0)
    discriminator = DiscriminatorSettings(args={"channels": [8, 16, 16, 16]})
    return MultiRealismModule(MultiRealismCodec.from_config(tiny_config()), discriminator=discriminator,
                              objective=Objective(perceptual=perceptual),
                              optimization=Optimization(lr=1e-3, gradient_clip_val=gradient_clip_val), **kwargs)


def test_gradients_are_clipped_after_the_scaler_unscales_them():
    clip = 1e-4  # far below the true gradient norms, so every clipped update ends exactly at this norm
    module = tiny_module(perceptual="none", rate_weight=FixedLambda(0.01), gradient_clip_val=clip)
    scaler = FakeScaler()
    trainer = L.Trainer(
        accelerator="cpu", devices=1, max_steps=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
        plugins=[MixedPrecision("16-mixed", device="cpu", scaler=scaler)],
    )
    trainer.fit(module, DataLoader(torch.rand(4, 3, 32, 32), batch_size=4))
    generator_norm, discriminator_norm, aux_norm = scaler.step_norms
    # clipping scaled gradients would leave clip / SCALE after unscaling
    assert generator_norm == pytest.approx(clip, rel=1e-3)
    assert discriminator_norm == pytest.approx(clip, rel=1e-3)
    assert aux_norm > clip  # the auxiliary update is not clipped


def test_validation_metrics_are_float32_under_bf16_autocast():
    module = tiny_module(perceptual="lpips-random-test-only").eval()
    torch.manual_seed(1)
    x = torch.rand(2, 3, 32, 32)
    x_hat = (x + 0.05 * torch.randn_like(x)).clamp(0, 1)
    reference = module.image_metrics(x_hat, x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = module.image_metrics(x_hat.bfloat16(), x)
        assert torch.is_autocast_enabled("cpu")
    for name, value in mixed.items():
        assert value.dtype == torch.float32, name
        # only the bf16 rounding of x_hat remains, far below what bf16 arithmetic in the metric would add
        assert value.item() == pytest.approx(reference[name].item(), rel=2e-2), name
    assert set(mixed) == {"psnr", "lpips"}


def test_beta_streams_differ_per_rank_and_repeat_per_seed():
    module = tiny_module(perceptual="none")
    draws = {}
    for rank in (0, 1):
        torch.manual_seed(5)
        module._beta_generator = None
        module._trainer = type("RankOnly", (), {"global_rank": rank})()
        draws[rank] = module.beta_sampler(8, 4, 4, generator=module.beta_generator(torch.device("cpu")))
    module._trainer = None
    torch.manual_seed(5)
    module._beta_generator = None
    again = module.beta_sampler(8, 4, 4, generator=module.beta_generator(torch.device("cpu")))
    assert torch.equal(again, draws[0])
    assert not torch.allclose(draws[0], draws[1])
    assert bool(((draws[1] >= 0) & (draws[1] <= 5.12)).all())
