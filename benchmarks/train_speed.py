"""Training throughput and peak memory: G step, D step and whole step, per precision, Lightning vs bare.

The step is ``MultiRealismModule``'s: a generator update on rate + MSE + β·(LPIPS + GAN), a
discriminator update (hific, as in configs/tiny.yaml and configs/paper.yaml) and the entropy
bottleneck's auxiliary update. LPIPS runs on a random AlexNet (``lpips-random-test-only``: the same
cost as the real one, nothing to download). The bare loop calls the module's own loss code with
plain optimizers and ``torch.autocast``; the Lightning loop runs ``Trainer.fit`` on the same data,
timed from one ``on_train_batch_start`` to the next (data fetch, step and logging included), as the
bare loop's whole step is. The difference is what the framework costs.

Peak memory: on CPU the growth of the resident set (Linux ``VmHWM``, reset before the timed steps);
on CUDA ``torch.cuda.max_memory_allocated`` above what was allocated before them.

    python benchmarks/train_speed.py                          # tiny and paper, CPU (and CUDA if present)
    python benchmarks/train_speed.py --scales tiny --steps 20 --out train_speed.json
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SCALES, build_codec, devices, machine, median, print_table, synchronize, write_json  # noqa: E402

from multirealism.training import MultiRealismModule, discriminator_loss  # noqa: E402
from multirealism.training.module import quantile_parameters  # noqa: E402

CPU_PRECISIONS = ("32-true", "bf16-mixed")
GPU_PRECISIONS = ("32-true", "16-mixed", "bf16-mixed")


def make_module(scale: str, seed: int = 0) -> MultiRealismModule:
    codec = build_codec(scale, "hyperprior" if scale == "tiny" else "charm", discriminator=True, seed=seed)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*lpips-random-test-only.*")
        return MultiRealismModule(codec, gan=True, perceptual="lpips-random-test-only")


def make_loader(batch_size: int, crop: int, batches: int) -> DataLoader:
    torch.manual_seed(1)
    images = torch.rand(batch_size * batches, 3, crop, crop)
    return DataLoader(TensorDataset(images), batch_size=batch_size, shuffle=False, drop_last=True)


class _PeakMemory:
    """Peak extra memory (MiB) between ``start()`` and ``stop()`` on ``device``."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.before = 0

    @staticmethod
    def _status_kib(field: str) -> int:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))

    def start(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.before = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
        else:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            self.before = self._status_kib("VmRSS") * 1024

    def stop(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            return (torch.cuda.max_memory_allocated() - self.before) / 2**20
        return (self._status_kib("VmHWM") * 1024 - self.before) / 2**20


# ---------------------------------------------------------------------------- bare PyTorch loop
def bare_loop(module: MultiRealismModule, loader: DataLoader, device: torch.device, precision: str,
              warmup: int) -> Dict[str, Any]:
    """The module's step without Lightning: returns median G, D and whole-step seconds and peak MiB."""
    module = module.to(device).train()
    codec = module.codec
    quantiles = {id(p) for p in quantile_parameters(codec)}
    main = [p for n, p in codec.named_parameters() if not n.startswith("discriminator.") and id(p) not in quantiles]
    opt_g = torch.optim.Adam(main, lr=module.lr)
    opt_d = torch.optim.Adam(codec.discriminator.parameters(), lr=module.discriminator_lr)
    opt_aux = torch.optim.Adam(quantile_parameters(codec), lr=module.aux_lr)
    dtype = {"16-mixed": torch.float16, "bf16-mixed": torch.bfloat16}.get(precision)
    scaler = torch.amp.GradScaler(device.type) if precision == "16-mixed" else None

    def autocast():
        return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)

    def update(optimizer: torch.optim.Optimizer, loss: torch.Tensor, params: List[torch.Tensor], clip: bool) -> None:
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
        else:
            loss.backward()
        if clip and module.gradient_clip_val is not None:
            torch.nn.utils.clip_grad_norm_(params, module.gradient_clip_val)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    g_times: List[float] = []
    d_times: List[float] = []
    whole: List[float] = []
    memory = _PeakMemory(device)
    iterator = iter(loader)
    step = 0
    start = time.perf_counter()
    while True:
        try:
            (x,) = next(iterator)
        except StopIteration:
            break
        if step == warmup:
            memory.start()
            start = time.perf_counter()
        x = x.to(device)
        beta = module.beta_sampler(x.shape[0], x.shape[-2], x.shape[-1], device=device)
        t0 = time.perf_counter()
        codec.discriminator.requires_grad_(False)
        with autocast():
            out = codec(x, beta)
            terms = module.generator_terms(x, out, beta)
        update(opt_g, terms["loss"], main, clip=True)
        codec.discriminator.requires_grad_(True)
        synchronize(device)
        t1 = time.perf_counter()
        with autocast():
            y_hat, x_hat = out.y_hat.detach(), out.x_hat.detach()
            d_loss = discriminator_loss(codec.discriminator(x, y_hat, beta), codec.discriminator(x_hat, y_hat, beta))
        update(opt_d, d_loss, list(codec.discriminator.parameters()), clip=True)
        synchronize(device)
        t2 = time.perf_counter()
        update(opt_aux, codec.entropy_model.aux_loss(), [], clip=False)
        float(terms["loss"].detach())  # what logging reads back
        synchronize(device)
        t3 = time.perf_counter()
        if step >= warmup:
            g_times.append(t1 - t0)
            d_times.append(t2 - t1)
            whole.append(t3 - start)
            start = t3
        step += 1
    return {"g_step_s": median(g_times), "d_step_s": median(d_times), "step_s": median(whole),
            "peak_mb": memory.stop(), "steps": len(whole)}


# ---------------------------------------------------------------------------- Lightning loop
class _StepTimer(L.Callback):
    """Seconds from one ``on_train_batch_start`` to the next, after ``warmup`` steps."""

    def __init__(self, device: torch.device, warmup: int) -> None:
        self.device, self.warmup = device, warmup
        self.times: List[float] = []
        self.memory = _PeakMemory(device)
        self.peak_mb: Optional[float] = None
        self._last: Optional[float] = None

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int) -> None:
        synchronize(self.device)
        now = time.perf_counter()
        if batch_idx == self.warmup:
            self.memory.start()
            now = time.perf_counter()
        elif batch_idx > self.warmup and self._last is not None:
            self.times.append(now - self._last)
        self._last = now

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        synchronize(self.device)
        if self._last is not None:
            self.times.append(time.perf_counter() - self._last)  # the last step, ended by the loop's exit
        self.peak_mb = self.memory.stop()


def lightning_loop(module: MultiRealismModule, loader: DataLoader, device: torch.device, precision: str,
                   warmup: int) -> Dict[str, Any]:
    timer = _StepTimer(device, warmup)
    trainer = L.Trainer(
        accelerator=device.type, devices=1, precision=precision, max_steps=len(loader), max_epochs=1,
        logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        limit_val_batches=0, num_sanity_val_steps=0, callbacks=[timer],
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(num_workers|does not have many workers).*")
        trainer.fit(module, train_dataloaders=loader)
    return {"step_s": median(timer.times), "peak_mb": timer.peak_mb, "steps": len(timer.times)}


def main(argv: "List[str] | None" = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", nargs="+", choices=SCALES, default=list(SCALES))
    parser.add_argument("--batch-size", type=int, nargs=2, default=[8, 2], metavar=("TINY", "PAPER"),
                        help="images per step for the tiny and paper configs")
    parser.add_argument("--crop", type=int, nargs=2, default=[128, 128], metavar=("TINY", "PAPER"))
    parser.add_argument("--steps", type=int, nargs=2, default=[20, 4], metavar=("TINY", "PAPER"),
                        help="timed steps per run (after --warmup)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--precisions", nargs="+", help="default: 32-true bf16-mixed on CPU, plus 16-mixed on CUDA")
    parser.add_argument("--devices", default="auto", help="auto (CPU, plus CUDA if present) or e.g. cpu,cuda")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--out", help="write all figures as JSON here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.warmup < 1 or min(args.steps) < 1:
        parser.error("--warmup and --steps must be at least 1")

    rows: List[Dict[str, Any]] = []
    for device in devices(args.devices):
        precisions = args.precisions or (GPU_PRECISIONS if device.type == "cuda" else CPU_PRECISIONS)
        for scale in args.scales:
            i = SCALES.index(scale)
            batch, crop, steps = args.batch_size[i], args.crop[i], args.steps[i]
            for precision in precisions:
                loader = make_loader(batch, crop, args.warmup + steps)
                bare = bare_loop(make_module(scale), loader, device, precision, args.warmup)
                lit = lightning_loop(make_module(scale), loader, device, precision, args.warmup)
                row = {
                    "device": device.type, "scale": scale, "batch": batch, "crop": crop, "precision": precision,
                    "g_step_s": bare["g_step_s"], "d_step_s": bare["d_step_s"], "bare_step_s": bare["step_s"],
                    "lightning_step_s": lit["step_s"],
                    "bare_img_per_s": batch / bare["step_s"], "lightning_img_per_s": batch / lit["step_s"],
                    "lightning_overhead_pct": 100 * (lit["step_s"] / bare["step_s"] - 1),
                    "bare_peak_mb": bare["peak_mb"], "lightning_peak_mb": lit["peak_mb"], "steps": steps,
                }
                rows.append(row)
                print(f"  {device.type} {scale} {precision}: bare {bare['step_s']:.3g}s, lightning {lit['step_s']:.3g}s",
                      flush=True)
    print("\nTraining step (medians; seconds, images/s, MiB)")
    table = print_table(rows, ["device", "scale", "batch", "crop", "precision", "g_step_s", "d_step_s", "bare_step_s",
                               "lightning_step_s", "bare_img_per_s", "lightning_img_per_s", "lightning_overhead_pct",
                               "bare_peak_mb", "lightning_peak_mb"])
    write_json(args.out, {"machine": machine(), "rows": rows, "table": table})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
