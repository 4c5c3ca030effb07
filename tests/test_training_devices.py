"""Every value the module logs lives on the module's device (NCCL cannot reduce host tensors)."""

from typing import Any, List

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from torch.utils.data import DataLoader

from multirealism import MultiRealismCodec
from multirealism.zoo import tiny_config
from multirealism.training import DiscriminatorSettings, MultiRealismModule, Objective, Optimization


def tiny_module(**kwargs: Any) -> MultiRealismModule:
    torch.manual_seed(0)
    discriminator = DiscriminatorSettings(args={"channels": [8, 16, 16, 16]})
    return MultiRealismModule(MultiRealismCodec.from_config(tiny_config()), discriminator=discriminator,
                              objective=Objective(perceptual="none"), optimization=Optimization(lr=1e-3), **kwargs)


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
