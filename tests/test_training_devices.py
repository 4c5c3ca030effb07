"""Logged values live on the module's device, gradients are clipped after unscaling, metrics and rates are
float32 under mixed precision, and DDP ranks draw different β."""

from typing import Any, Dict, List

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.plugins.precision import MixedPrecision
from torch.utils.data import DataLoader

from multirealism import MultiRealismCodec
from multirealism.presets import tiny_config
from multirealism.training import MultiRealismModule


def tiny_module(**kwargs: Any) -> MultiRealismModule:
    torch.manual_seed(0)
    config = tiny_config()
    config["discriminator"] = {"name": "hific", "args": {"latent_channels": 16, "channels": [8, 16, 16, 16]}}
    kwargs.setdefault("perceptual", "none")
    return MultiRealismModule(MultiRealismCodec.from_config(config), lr=1e-3, **kwargs)


def trainer(max_steps: int = 1, **kwargs: Any) -> L.Trainer:
    return L.Trainer(
        accelerator="cpu", max_steps=max_steps, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0, **kwargs,
    )


def data(n: int = 4) -> DataLoader:
    return DataLoader(torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(1)), batch_size=2)


class RecordLogs(Callback):
    """Records every value the module logs; during steps, tensors created without an explicit device land on
    ``meta``, so a value built on the host by accident (NCCL cannot reduce it) is caught on a CPU-only machine."""

    def __init__(self, module: MultiRealismModule) -> None:
        self.values: List[Any] = []
        log = module.log

        def recording_log(name: str, value: Any, *args: Any, **kwargs: Any) -> None:
            self.values.append((name, value))
            if torch.is_tensor(value) and value.device.type == "meta":
                return  # recorded; Lightning cannot aggregate meta tensors
            torch.set_default_device(None)  # Lightning's own bookkeeping is not under test
            try:
                log(name, value, *args, **kwargs)
            finally:
                torch.set_default_device("meta")

        module.log = recording_log  # log_dict goes through log
        compress = module.codec.compress

        def host_compress(x: torch.Tensor) -> bytes:  # entropy coding happens on the host by design
            torch.set_default_device(None)
            try:
                return compress(x)
            finally:
                torch.set_default_device("meta")

        module.codec.compress = host_compress

    def _enter(self, *args: Any) -> None:
        torch.set_default_device("meta")

    def _exit(self, *args: Any) -> None:
        torch.set_default_device(None)

    on_train_batch_start = on_validation_batch_start = _enter
    on_train_batch_end = on_validation_batch_end = _exit


def test_every_logged_value_lives_on_the_module_device():
    module = tiny_module(val_real_bpp_batches=1)
    recorder = RecordLogs(module)
    try:
        trainer(2, callbacks=[recorder], limit_val_batches=1, val_check_interval=2).fit(module, data(), data(2))
    finally:
        torch.set_default_device(None)
    names = {name for name, _ in recorder.values}
    assert {"train/lambda", "train/nonfinite_skipped", "val/bpp_real", "val/psnr_beta0"} <= names
    wrong = [name for name, value in recorder.values if torch.is_tensor(value) and value.device != module.device]
    assert wrong == []


class OrderedScaler(torch.amp.GradScaler):
    """A GradScaler on the CPU that records when it unscales."""

    def __init__(self, events: List[str]) -> None:
        super().__init__("cpu", init_scale=2.0**16)
        self.events = events

    def unscale_(self, optimizer: torch.optim.Optimizer) -> None:
        self.events.append("unscale")
        super().unscale_(optimizer)


def test_gradients_are_clipped_after_the_scaler_unscales_them():
    events: List[str] = []
    module = tiny_module(gradient_clip_val=1.0)
    norms: List[float] = []
    clip = module.clip_gradients

    def recording_clip(optimizer: torch.optim.Optimizer, **kwargs: Any) -> None:
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        norms.append(float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))))
        events.append("clip")
        clip(optimizer, **kwargs)

    module.clip_gradients = recording_clip
    precision = MixedPrecision("16-mixed", "cpu", scaler=OrderedScaler(events))
    trainer(1, plugins=[precision]).fit(module, data(2))
    # G and D are clipped, each after its unscale; the aux step is neither clipped nor left scaled
    assert events[:4] == ["unscale", "clip", "unscale", "clip"]
    # the norms the clip sees are unscaled, not 65536 times too large (an fp16 overflow of the G step shows as
    # inf: the scaler then skips that step and lowers its scale)
    finite = [n for n in norms if n == n and n != float("inf")]
    assert finite and all(n < 2.0**16 / 100 for n in finite)


def test_validation_metrics_and_real_bpp_are_float32_under_bf16_autocast():
    module = tiny_module(perceptual="lpips-random-test-only", val_real_bpp_batches=1)
    seen: List[torch.dtype] = []
    perceptual_forward = module.perceptual.forward

    def spy(x_hat: torch.Tensor, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        seen.append(torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else x_hat.dtype)
        return perceptual_forward(x_hat, x, *args, **kwargs)

    module.perceptual.forward = spy
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    fp32 = trainer(precision="32-true").validate(module, DataLoader(x, batch_size=1), verbose=False)[0]
    bf16 = trainer(precision="bf16-mixed").validate(module, DataLoader(x, batch_size=1), verbose=False)[0]
    assert seen and set(seen) == {torch.float32}
    assert bf16["val/bpp_real"] == fp32["val/bpp_real"]  # the same bitstream, whatever the precision
    module.codec.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        with torch.autocast("cpu", enabled=False):
            aux = module.codec.entropy_model.aux_loss()
    assert aux.dtype == torch.float32


def test_ranks_draw_different_beta_and_a_resumed_step_draws_the_same():
    module = tiny_module()

    class FakeTrainer:
        def __init__(self, rank: int, step: int) -> None:
            self.global_rank, self.global_step = rank, step

    def draw(rank: int, step: int) -> torch.Tensor:
        module._trainer = FakeTrainer(rank, step)
        return module.beta_sampler(8, 32, 32, generator=module._beta_generator())

    torch.manual_seed(0)
    rank0, rank1 = draw(0, 5), draw(1, 5)
    assert not torch.equal(rank0, rank1)
    torch.manual_seed(0)
    assert torch.equal(draw(0, 5), rank0) and not torch.equal(draw(0, 6), rank0)
