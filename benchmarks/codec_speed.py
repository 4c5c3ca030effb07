"""Encode/decode wall time and peak memory of our codecs next to CompressAI's, and the multi-β gain.

Models (random weights, ``update()`` done, eval mode): ours at paper width with the ``hyperprior``
and ``charm`` entropy models, CompressAI's ``Elic2022Official`` and ``MeanScaleHyperprior(192, 320)``,
and ``Elic2022Official`` converted to channels-last (weights and input), the memory layout our codec
runs its analysis and synthesis transforms in, so the ratios can be read against either.
Every model pads the image to its multiple (replicate) and crops back, as ours does. Timings are
medians of ``--repeats`` rounds after one warm-up round; within a round the models alternate, so
on a shared machine each sees the same background load. CPU peak memory is the growth of the
resident set (Linux ``VmHWM`` after a reset) over one call in a fresh subprocess per model and
phase, after a small warm-up; on CUDA it is
``torch.cuda.max_memory_allocated`` above what was allocated before the call.

Rate control: ``ours-*-rc`` is the same codec plus 4-level gain units (``rate_control: gain``), coding at
its top level (gain 1, so the same symbols as without): its rows against ``ours-*`` in the same rounds show
what the per-level scaling costs in encode and decode.

Multi-β: ``decompress(data, beta=[b] * K)`` (one entropy decode, K generator passes) against K
separate single-β decodes (K times the single-decode median of the same rounds).

    python benchmarks/codec_speed.py --sizes 768x512 --repeats 3 --out codec_speed.json
    python benchmarks/codec_speed.py --sizes 768x512 1920x1080 --devices cpu,cuda
"""

from __future__ import annotations

import argparse
import json
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, List, Sequence, Tuple

import torch
import torch.nn.functional as F

from multirealism import MultiRealismCodec

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import build_codec, devices, machine, median, print_table, time_call, write_json  # noqa: E402

OURS = {"ours-hyperprior": "hyperprior", "ours-charm": "charm", "ours-hyperprior-rc": "hyperprior", "ours-charm-rc": "charm"}
RATE_LEVELS = 4
REFERENCES = ("compressai-elic2022", "compressai-elic2022-cl", "compressai-msh")
MODELS = (*OURS, *REFERENCES)
BETA = 2.56


class Runner:
    """One model behind a common interface: ``encode(x) -> stream``, ``decode(stream) -> image``."""

    def __init__(self, name: str, device: torch.device) -> None:
        self.name = name
        self.device = device
        self.quality = None
        if name in OURS:
            self.codec = build_codec("paper", OURS[name])
            if name.endswith("-rc"):
                config = {**self.codec.config(), "rate_control": {"name": "gain", "args": {
                    "latent_channels": self.codec.entropy_model.latent_channels, "num_levels": RATE_LEVELS}}}
                torch.manual_seed(0)
                self.codec = MultiRealismCodec.from_config(config)
                self.quality = float(RATE_LEVELS - 1)
            self.codec = self.codec.to(device).eval()
            self.codec.update()
            self.model = None
        else:
            from compressai.models import Elic2022Official, MeanScaleHyperprior

            torch.manual_seed(0)
            self.model = MeanScaleHyperprior(192, 320) if name == "compressai-msh" else Elic2022Official()
            self.model = self.model.to(device).eval()
            self.memory_format = torch.channels_last if name.endswith("-cl") else torch.contiguous_format
            self.model = self.model.to(memory_format=self.memory_format)
            self.model.update(force=True)
            self.multiple = 64

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> Any:
        if self.model is None:
            return self.codec.compress(x, quality=self.quality)
        h, w = x.shape[-2:]
        padded = F.pad(x, (0, (-w) % self.multiple, 0, (-h) % self.multiple), mode="replicate")
        out = self.model.compress(padded.contiguous(memory_format=self.memory_format))
        return {"strings": out["strings"], "shape": out["shape"], "size": (h, w)}

    @torch.no_grad()
    def decode(self, stream: Any, betas: "Sequence[float] | None" = None) -> Any:
        if self.model is None:
            return self.codec.decompress(stream, BETA if betas is None else list(betas))
        h, w = stream["size"]
        return self.model.decompress(stream["strings"], stream["shape"])["x_hat"][..., :h, :w].clamp_(0, 1)

    def stream_bytes(self, stream: Any) -> int:
        if self.model is None:
            return len(stream)
        return sum(len(s) for group in stream["strings"] for s in group)


def test_image(width: int, height: int, device: torch.device) -> torch.Tensor:
    """A natural image (scikit-image's astronaut) resized to ``width`` x ``height``."""
    from skimage import data

    img = torch.from_numpy(data.astronaut()).permute(2, 0, 1).float().div(255).unsqueeze(0)
    return F.interpolate(img, size=(height, width), mode="bilinear", align_corners=False).clamp(0, 1).to(device)


def parse_size(text: str) -> Tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 768x512, got {text!r}") from None
    if width < 1 or height < 1:
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    return width, height


# ---------------------------------------------------------------------------- memory
def peak_memory_mb(runner: Runner, phase: str, x: torch.Tensor, stream: Any, stream_path: Path) -> float:
    """Extra memory (MiB) one encode or decode call needs at its peak."""
    if runner.device.type == "cuda":
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        runner.encode(x) if phase == "encode" else runner.decode(stream)
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - before) / 2**20
    with open(stream_path, "wb") as f:
        pickle.dump(stream, f)
    height, width = x.shape[-2:]
    command = [sys.executable, __file__, "--memory-worker", runner.name, phase, f"{width}x{height}", str(stream_path)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"memory worker for {runner.name} {phase} failed:\n{result.stderr[-2000:]}")
    return float(json.loads(result.stdout.strip().splitlines()[-1])["peak_mb"])


def _proc_status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def memory_worker(name: str, phase: str, size: str, stream_path: str) -> None:
    """Fresh process: build the model, warm it up on a small image, reset the peak resident set
    (Linux ``/proc/self/clear_refs``) and report its growth over one call at full size."""
    width, height = parse_size(size)
    runner = Runner(name, torch.device("cpu"))
    x = test_image(width, height, torch.device("cpu"))
    small = test_image(64, 64, torch.device("cpu"))
    runner.decode(runner.encode(small))  # one-off library initialisation is not the call's cost
    stream = None
    if phase == "decode":
        with open(stream_path, "rb") as f:
            stream = pickle.load(f)  # written by the parent process a moment ago
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM (the peak RSS) to the current RSS
    before = _proc_status_kib("VmRSS")
    runner.encode(x) if phase == "encode" else runner.decode(stream)
    peak = _proc_status_kib("VmHWM")
    print(json.dumps({"peak_mb": (peak - before) / 1024}))


# ---------------------------------------------------------------------------- timing
def run_size(
    device: torch.device, width: int, height: int, models: Sequence[str], args: argparse.Namespace
) -> Tuple[List[Dict[str, Any]], List[Dict[str, Any]]]:
    x = test_image(width, height, device)
    runners = [Runner(name, device) for name in models]
    streams = {r.name: r.encode(x) for r in runners}  # warm-up encode
    for r in runners:
        r.decode(streams[r.name])  # warm-up decode
    times: Dict[str, Dict[str, List[float]]] = {r.name: {"encode": [], "decode": []} for r in runners}
    ours = [r for r in runners if r.model is None]
    multi: Dict[str, Dict[str, List[float]]] = {
        r.name: {**{f"k{k}": [] for k in args.k}, "entropy": [], "generator": []} for r in ours
    }
    for round_index in range(args.repeats):
        for r in runners:
            times[r.name]["encode"].append(time_call(lambda: r.encode(x), device))
            times[r.name]["decode"].append(time_call(lambda: r.decode(streams[r.name]), device))
        for r in ours:
            data = streams[r.name]
            y_hat, stream = r.codec.decode_latent(data)
            y_hat = y_hat.contiguous(memory_format=torch.channels_last)  # as decompress runs the generator
            beta_map = torch.full((y_hat.shape[0], 1, 1, 1), BETA, device=y_hat.device)
            multi[r.name]["entropy"].append(time_call(lambda: r.codec.decode_latent(data), device))
            with torch.no_grad():
                multi[r.name]["generator"].append(
                    time_call(lambda: r.codec.synthesize(y_hat, [beta_map], stream.quality), device)
                )
            for k in args.k:
                if k > 1:
                    multi[r.name][f"k{k}"].append(time_call(lambda: r.decode(data, [BETA] * k), device))
        print(f"  {device.type} {width}x{height}: round {round_index + 1}/{args.repeats} done", flush=True)

    rows: List[Dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in runners:
            row: Dict[str, Any] = {
                "device": device.type,
                "size": f"{width}x{height}",
                "model": r.name,
                "encode_s": median(times[r.name]["encode"]),
                "decode_s": median(times[r.name]["decode"]),
                "bytes": r.stream_bytes(streams[r.name]),
                "encode_runs_s": times[r.name]["encode"],
                "decode_runs_s": times[r.name]["decode"],
            }
            if args.memory:
                for phase in ("encode", "decode"):
                    row[f"{phase}_peak_mb"] = peak_memory_mb(r, phase, x, streams[r.name], Path(tmp) / "stream.pkl")
            rows.append(row)
    reference = next((row for row in rows if row["model"] == "compressai-elic2022"), None)
    if reference is not None:
        for row in rows:
            row["encode_vs_elic"] = row["encode_s"] / reference["encode_s"]
            row["decode_vs_elic"] = row["decode_s"] / reference["decode_s"]

    multi_rows: List[Dict[str, Any]] = []
    for r in ours:
        single = median(times[r.name]["decode"])
        generator = median(multi[r.name]["generator"])
        for k in args.k:
            one_stream = single if k == 1 else median(multi[r.name][f"k{k}"])
            multi_rows.append(
                {
                    "device": device.type,
                    "size": f"{width}x{height}",
                    "model": r.name,
                    "K": k,
                    "one_stream_s": one_stream,
                    "separate_s": k * single,
                    "ratio": one_stream / (k * single),
                    "extra_beta_s": (one_stream - single) / (k - 1) if k > 1 else None,
                    "generator_pass_s": generator,
                    "entropy_decode_s": median(multi[r.name]["entropy"]),
                }
            )
    return rows, multi_rows


def main(argv: "List[str] | None" = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", type=parse_size, default=[(768, 512), (1920, 1080)],
                        help="WIDTHxHEIGHT (1920x1080 at paper width takes minutes per round on 2 CPU cores)")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds after one warm-up round")
    parser.add_argument("--k", nargs="+", type=int, default=[1, 3, 5], help="numbers of β decoded from one stream")
    parser.add_argument("--devices", default="auto", help="auto (CPU, plus CUDA if present) or e.g. cpu,cuda")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--no-memory", dest="memory", action="store_false", help="skip the peak-memory runs")
    parser.add_argument("--out", help="write all figures as JSON here")
    parser.add_argument("--memory-worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_worker:
        memory_worker(*args.memory_worker)
        return 0
    if args.repeats < 1 or any(k < 1 for k in args.k):
        parser.error("--repeats and --k values must be at least 1")

    rows: List[Dict[str, Any]] = []
    multi_rows: List[Dict[str, Any]] = []
    for device in devices(args.devices):
        for width, height in args.sizes:
            size_rows, size_multi = run_size(device, width, height, args.models, args)
            rows += size_rows
            multi_rows += size_multi
    print("\nEncode/decode (decode at one β; medians in seconds, peak extra memory in MiB)")
    columns = ["device", "size", "model", "encode_s", "decode_s", "encode_vs_elic", "decode_vs_elic", "bytes"]
    if args.memory:
        columns += ["encode_peak_mb", "decode_peak_mb"]
    tables = {"speed": print_table(rows, columns)}
    if multi_rows:
        print("\nMulti-β: K β values from one bitstream vs K separate decodes")
        tables["multi_beta"] = print_table(
            multi_rows,
            ["device", "size", "model", "K", "one_stream_s", "separate_s", "ratio", "extra_beta_s",
             "generator_pass_s", "entropy_decode_s"],
        )
    write_json(args.out, {"machine": machine(), "repeats": args.repeats, "speed": rows, "multi_beta": multi_rows,
                          "tables": tables})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
