"""Training throughput and peak memory: G step, D step and whole step, per precision, Lightning vs bare.

The step is ``MultiRealismModule``'s: a generator update on rate + MSE + β·(LPIPS + GAN), a
discriminator update (hific, as in configs/tiny.yaml and configs/paper.yaml) and the entropy
bottleneck's auxiliary update. LPIPS runs on a random AlexNet (``lpips-random-test-only``: the same
cost as the real one, nothing to download). The bare loop calls the module's own loss code with
plain optimizers and ``torch.autocast``; the Lightning loop runs ``Trainer.fit`` on the same data.
Both are timed the same way: per whole iteration, from one batch's fetch (from an in-memory
tensor dataset) to the next, step and logging included. The difference is what the framework costs.

Bare and Lightning run in alternating blocks (``--rounds`` of each, order swapped every round:
bare, Lightning, Lightning, bare, ...), each block dropping its first ``--warmup`` steps, so load
from other processes on a shared machine falls on both alike; the figures are medians over all
timed steps of all blocks. ``median_round_overhead_pct`` is the median over rounds of each round's
Lightning/bare ratio: a burst of load that lasts a whole block moves it less than the pooled medians.
``--isolate`` runs every block in a fresh process (new model, optimizers and heap) instead: at paper
scale in fp32, repeated ``Trainer.fit`` calls in one process ran slower than the first one, which a real
training run (one fit) never sees.

Peak memory: on CPU the growth of the resident set (Linux ``VmHWM``, reset before the timed steps);
on CUDA ``torch.cuda.max_memory_allocated`` above what was allocated before them. Both are taken
from the first block of each loop.

    python benchmarks/train_speed.py                          # tiny and paper, CPU (and CUDA if present)
    python benchmarks/train_speed.py --scales tiny --steps 24 4 --rounds 4 --out train_speed.json
    python benchmarks/train_speed.py --scales paper --crop 128 256 --steps 24 24 --rounds 6 --warmup 1 --isolate
    python benchmarks/train_speed.py --small-vs-msh --threads 2     # rate+MSE: small codec vs MeanScaleHyperprior(64, 96)

``--small-vs-msh`` times instead bare rate + 150·MSE steps (fp32, Adam, aux update) of the ``small`` codec
(the ``small`` preset) and CompressAI's ``MeanScaleHyperprior(64, 96)``, interleaved per round
(order reversed every round): only their ratio is meaningful on a loaded machine.
"""

from __future__ import annotations

import argparse
import functools
import json
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SCALES, build_codec, devices, discriminator_spec, machine, median, print_table, synchronize, write_json  # noqa: E402,E501

from multirealism.training import DiscriminatorSettings, MultiRealismModule, Objective, discriminator_loss  # noqa: E402
from multirealism.training.initialization import quantile_parameters  # noqa: E402

CPU_PRECISIONS = ("32-true", "bf16-mixed")
GPU_PRECISIONS = ("32-true", "16-mixed", "bf16-mixed")


def make_module(scale: str, seed: int = 0) -> MultiRealismModule:
    codec = build_codec(scale, "hyperprior" if scale == "tiny" else "charm", seed=seed)
    spec = discriminator_spec(scale)
    spec = {"name": spec["name"], "args": {k: v for k, v in spec["args"].items() if k not in ("latent_channels", "beta_max")}}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*lpips-random-test-only.*")
        return MultiRealismModule(codec, discriminator=DiscriminatorSettings(**spec),
                                  objective=Objective(perceptual="lpips-random-test-only"))


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
class BareLoop:
    """The module's step without Lightning: plain Adam optimizers, ``torch.autocast``, the same losses,
    the same freezing (D and the quantiles take no gradient from the G step) and clipping."""

    def __init__(self, module: MultiRealismModule, device: torch.device, precision: str) -> None:
        self.module, self.device = module.to(device).train(), device
        codec = module.codec
        self.quantiles = quantile_parameters(codec)
        ids = {id(p) for p in self.quantiles}
        self.main = [p for p in codec.parameters() if id(p) not in ids]
        settings, optimization = module.discriminator_settings, module.optimization
        self.opt_g = torch.optim.Adam(self.main, lr=optimization.lr)
        self.opt_d = torch.optim.Adam(module.discriminator.parameters(), lr=settings.lr, betas=settings.betas)
        self.opt_aux = torch.optim.Adam(self.quantiles, lr=optimization.aux_lr)
        self.dtype = {"16-mixed": torch.float16, "bf16-mixed": torch.bfloat16}.get(precision)
        self.scaler = torch.amp.GradScaler(device.type) if precision == "16-mixed" else None

    def _autocast(self) -> Any:
        return torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype is not None)

    def _update(self, optimizer: torch.optim.Optimizer, loss: torch.Tensor, params: List[torch.Tensor],
                clip: bool) -> None:
        scaler, clip_val = self.scaler, self.module.gradient_clip_val
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
        else:
            loss.backward()
        if clip and clip_val is not None:
            torch.nn.utils.clip_grad_norm_(params, clip_val)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def _frozen(self, frozen: bool) -> None:
        self.module.discriminator.requires_grad_(not frozen)
        for p in self.quantiles:
            p.requires_grad_(not frozen)

    def run(self, loader: DataLoader, warmup: int) -> Dict[str, Any]:
        """One block: G, D and whole-step seconds of the steps after ``warmup``, and peak MiB."""
        module, codec, device = self.module, self.module.codec, self.device
        g_times: List[float] = []
        d_times: List[float] = []
        whole: List[float] = []
        memory = _PeakMemory(device)
        iterator = iter(loader)
        step = 0
        last = time.perf_counter()
        while True:
            if step == warmup:
                memory.start()
                last = time.perf_counter()
            try:
                (x,) = next(iterator)
            except StopIteration:
                break
            x = x.to(device)
            beta = module.beta_sampler(x.shape[0], x.shape[-2], x.shape[-1], device=device)
            t0 = time.perf_counter()
            self._frozen(True)
            with self._autocast():
                out = codec(x, beta)
                terms = module.generator_terms(x, out, beta)
            self._update(self.opt_g, terms["loss"], self.main, clip=True)
            self._frozen(False)
            synchronize(device)
            t1 = time.perf_counter()
            with self._autocast():
                y_hat, x_hat = out.y_hat.detach(), out.x_hat.detach()
                d_loss = discriminator_loss(module.discriminator(x, y_hat, beta),
                                            module.discriminator(x_hat, y_hat, beta))
            self._update(self.opt_d, d_loss, list(module.discriminator.parameters()), clip=True)
            synchronize(device)
            t2 = time.perf_counter()
            self._update(self.opt_aux, codec.entropy_model.aux_loss(), [], clip=False)
            float(terms["loss"].detach())  # what logging reads back
            synchronize(device)
            t3 = time.perf_counter()
            if step >= warmup:
                g_times.append(t1 - t0)
                d_times.append(t2 - t1)
                whole.append(t3 - last)
            last = t3
            step += 1
        return {"g": g_times, "d": d_times, "step": whole, "peak_mb": memory.stop()}


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


def lightning_block(module: MultiRealismModule, loader: DataLoader, device: torch.device, precision: str,
                    warmup: int) -> Dict[str, Any]:
    """One block: ``Trainer.fit`` over ``loader`` (a fresh Trainer, the same module every block)."""
    timer = _StepTimer(device, warmup)
    trainer = L.Trainer(
        accelerator=device.type, devices=1, precision=precision, max_steps=len(loader), max_epochs=1,
        logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        limit_val_batches=0, num_sanity_val_steps=0, callbacks=[timer],
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(num_workers|does not have many workers).*")
        trainer.fit(module, train_dataloaders=loader)
    return {"step": timer.times, "peak_mb": timer.peak_mb}


def isolated_block(kind: str, scale: str, device: torch.device, precision: str, batch: int, crop: int,
                   batches: int, warmup: int) -> Dict[str, Any]:
    """One block in a fresh Python process (new model, optimizers and heap), so neither loop inherits
    the state the other, or an earlier ``Trainer.fit`` in the same process, left behind."""
    spec = dict(kind=kind, scale=scale, device=str(device), precision=precision, batch=batch, crop=crop,
                batches=batches, warmup=warmup, threads=torch.get_num_threads())
    command = [sys.executable, __file__, "--block-worker", json.dumps(spec)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{kind} block failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def block_worker(spec_json: str) -> None:
    spec = json.loads(spec_json)
    torch.set_num_threads(spec["threads"])
    device = torch.device(spec["device"])
    loader = make_loader(spec["batch"], spec["crop"], spec["batches"])
    module = make_module(spec["scale"])
    if spec["kind"] == "bare":
        result = BareLoop(module, device, spec["precision"]).run(loader, spec["warmup"])
    else:
        result = lightning_block(module, loader, device, spec["precision"], spec["warmup"])
    print(json.dumps(result))


def compare(scale: str, device: torch.device, precision: str, batch: int, crop: int, steps: int, warmup: int,
            rounds: int, isolate: bool = False) -> Dict[str, Any]:
    """Bare and Lightning in ``rounds`` alternating blocks of ``warmup`` + ``steps / rounds`` steps, in this
    process or (``isolate``) each block in a fresh one."""
    per_block = max(1, -(-steps // rounds))
    if isolate:
        run = {kind: functools.partial(isolated_block, kind, scale, device, precision, batch, crop,
                                       warmup + per_block, warmup) for kind in ("bare", "lightning")}
    else:
        loader = make_loader(batch, crop, warmup + per_block)
        bare, lit_module = BareLoop(make_module(scale), device, precision), make_module(scale)
        run = {"bare": functools.partial(bare.run, loader, warmup),
               "lightning": functools.partial(lightning_block, lit_module, loader, device, precision, warmup)}
    times: Dict[str, List[float]] = {"g": [], "d": [], "bare": [], "lightning": []}
    peaks: Dict[str, float] = {}
    ratios: List[float] = []
    for r in range(rounds):
        order = ("bare", "lightning") if r % 2 == 0 else ("lightning", "bare")
        block: Dict[str, float] = {}
        for kind in order:
            result = run[kind]()
            if kind == "bare":
                times["g"] += result["g"]
                times["d"] += result["d"]
            times[kind] += result["step"]
            peaks.setdefault(kind, result["peak_mb"])
            block[kind] = median(result["step"])
        ratios.append(block["lightning"] / block["bare"])
        print(f"    round {r + 1}/{rounds}: bare {block['bare']:.3g}s, lightning {block['lightning']:.3g}s", flush=True)
    bare_s, lit_s = median(times["bare"]), median(times["lightning"])
    return {
        "device": device.type, "scale": scale, "batch": batch, "crop": crop, "precision": precision,
        "g_step_s": median(times["g"]), "d_step_s": median(times["d"]), "bare_step_s": bare_s,
        "lightning_step_s": lit_s, "bare_img_per_s": batch / bare_s, "lightning_img_per_s": batch / lit_s,
        "lightning_overhead_pct": 100 * (lit_s / bare_s - 1),
        "round_overhead_pct": [round(100 * (q - 1), 2) for q in ratios],
        "median_round_overhead_pct": 100 * (median(ratios) - 1),
        "bare_peak_mb": peaks["bare"], "lightning_peak_mb": peaks["lightning"],
        "steps": len(times["bare"]), "rounds": rounds, "isolated": isolate,
    }


# ---------------------------------------------------------------------------- small codec vs MeanScaleHyperprior
def _rd_step(model: torch.nn.Module, x: torch.Tensor, forward: Any, aux_loss: Any) -> Any:
    """A closure running one rate + 150·MSE step with Adam and the auxiliary quantile update."""
    main = [p for n, p in model.named_parameters() if not n.endswith("quantiles")]
    quantiles = [p for n, p in model.named_parameters() if n.endswith("quantiles")]
    opt, opt_aux = torch.optim.Adam(main, lr=1e-4), torch.optim.Adam(quantiles, lr=1e-3)
    pixels = x.shape[0] * x.shape[2] * x.shape[3]

    def step() -> None:
        x_hat, likelihoods = forward(x)
        bpp = sum(l.log2().sum() for l in likelihoods) / -pixels
        loss = bpp + 150 * (x_hat - x).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        opt_aux.zero_grad()
        aux_loss().backward()
        opt_aux.step()

    return step


def small_vs_msh(batch: int, crop: int, steps: int, warmup: int, rounds: int) -> List[Dict[str, Any]]:
    """Interleaved bare rate+MSE steps of the small codec and MeanScaleHyperprior(64, 96) on CPU."""
    from compressai.models import MeanScaleHyperprior

    from multirealism import create_codec

    torch.manual_seed(0)
    x = torch.rand(batch, 3, crop, crop)
    small = create_codec("small").train()
    msh = MeanScaleHyperprior(64, 96).train()

    def small_forward(images: torch.Tensor) -> Any:
        out = small(images, 2.56)
        return out.x_hat, list(out.likelihoods.values())

    def msh_forward(images: torch.Tensor) -> Any:
        out = msh(images)
        return out["x_hat"], list(out["likelihoods"].values())

    runs = {
        "small (gdn + hyperprior + residual_cond)": _rd_step(small, x, small_forward, small.entropy_model.aux_loss),
        "compressai MeanScaleHyperprior(64,96)": _rd_step(msh, x, msh_forward, msh.aux_loss),
    }
    times: Dict[str, List[float]] = {name: [] for name in runs}
    for r in range(rounds):
        for name in (list(runs) if r % 2 == 0 else list(runs)[::-1]):
            for i in range(warmup + steps):
                start = time.perf_counter()
                runs[name]()
                if i >= warmup:
                    times[name].append(time.perf_counter() - start)
    reference = median(times["compressai MeanScaleHyperprior(64,96)"])
    return [
        {"model": name, "batch": batch, "crop": crop, "precision": "32-true", "step_s": median(t),
         "crops_per_s": batch / median(t), "speed_vs_msh": reference / median(t)}
        for name, t in times.items()
    ]


def main(argv: "List[str] | None" = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", nargs="+", choices=SCALES, default=list(SCALES))
    parser.add_argument("--batch-size", type=int, nargs=2, default=[8, 2], metavar=("TINY", "PAPER"),
                        help="images per step for the tiny and paper configs")
    parser.add_argument("--crop", type=int, nargs=2, default=[128, 128], metavar=("TINY", "PAPER"))
    parser.add_argument("--steps", type=int, nargs=2, default=[20, 4], metavar=("TINY", "PAPER"),
                        help="timed steps per loop, split over --rounds blocks (each after --warmup)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps at the start of every block")
    parser.add_argument("--rounds", type=int, default=4,
                        help="alternating blocks of bare and Lightning steps (order swapped each round)")
    parser.add_argument("--precisions", nargs="+", help="default: 32-true bf16-mixed on CPU, plus 16-mixed on CUDA")
    parser.add_argument("--devices", default="auto", help="auto (CPU, plus CUDA if present) or e.g. cpu,cuda")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--isolate", action="store_true",
                        help="run every block in a fresh process instead of both loops in this one")
    parser.add_argument("--out", help="write all figures as JSON here")
    parser.add_argument("--small-vs-msh", action="store_true",
                        help="only the rate+MSE comparison of the small codec with MeanScaleHyperprior(64, 96)")
    parser.add_argument("--block-worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.block_worker:
        block_worker(args.block_worker)
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.warmup < 1 or min(args.steps) < 1 or args.rounds < 1:
        parser.error("--warmup, --steps and --rounds must be at least 1")
    if args.small_vs_msh:
        rows = small_vs_msh(args.batch_size[0], args.crop[0], args.steps[1], args.warmup, args.rounds)
        print("\nRate+MSE training step, CPU, interleaved (medians; seconds, crops/s)")
        table = print_table(rows, ["model", "batch", "crop", "precision", "step_s", "crops_per_s", "speed_vs_msh"])
        write_json(args.out, {"machine": machine(), "rows": rows, "table": table})
        return 0

    rows: List[Dict[str, Any]] = []
    for device in devices(args.devices):
        precisions = args.precisions or (GPU_PRECISIONS if device.type == "cuda" else CPU_PRECISIONS)
        for scale in args.scales:
            i = SCALES.index(scale)
            batch, crop, steps = args.batch_size[i], args.crop[i], args.steps[i]
            for precision in precisions:
                row = compare(scale, device, precision, batch, crop, steps, args.warmup, args.rounds, args.isolate)
                rows.append(row)
                print(f"  {device.type} {scale} {precision}: bare {row['bare_step_s']:.3g}s, "
                      f"lightning {row['lightning_step_s']:.3g}s ({row['lightning_overhead_pct']:+.1f} %; "
                      f"median over rounds {row['median_round_overhead_pct']:+.1f} %)", flush=True)
    print("\nTraining step (medians; seconds, images/s, MiB)")
    table = print_table(rows, ["device", "scale", "batch", "crop", "precision", "g_step_s", "d_step_s", "bare_step_s",
                               "lightning_step_s", "bare_img_per_s", "lightning_img_per_s", "lightning_overhead_pct",
                               "median_round_overhead_pct", "bare_peak_mb", "lightning_peak_mb"])
    write_json(args.out, {"machine": machine(), "rows": rows, "table": table})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
