"""Shared helpers for the benchmark scripts: codec builders, timing, machine description, JSON output.

Run the scripts from the repository root (``python benchmarks/<name>.py``); nothing here downloads
anything, and every model has random weights (speed and size do not depend on training).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from typing import Any, Callable, Dict, List, Mapping, Optional

import torch

from multirealism import MultiRealismCodec
from multirealism.zoo import codec_config as preset_config
from multirealism.registry import REGISTRIES


SCALES = ("tiny", "paper")
ENTROPY_MODELS = ("hyperprior", "charm")


def discriminator_spec(scale: str) -> Dict[str, Any]:
    """The hific discriminator as configs/tiny.yaml and configs/paper.yaml build it."""
    if scale == "tiny":
        return {"name": "hific", "args": {"latent_channels": 16, "channels": [16, 32, 32, 32], "beta_max": 5.12}}
    return {"name": "hific", "args": {"latent_channels": 320, "beta_max": 5.12}}


def codec_config(scale: str, entropy_model: str) -> Dict[str, Any]:
    """Config of the registered preset for ``scale`` in SCALES (multirealism.zoo)."""
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    if entropy_model not in ENTROPY_MODELS:
        raise ValueError(f"entropy model must be one of {ENTROPY_MODELS}, got {entropy_model!r}")
    return preset_config(scale, entropy_model=entropy_model)


def build_codec(scale: str, entropy_model: str, seed: int = 0) -> MultiRealismCodec:
    """A random-weight codec from a preset (train mode; call ``.eval().update()`` for coding)."""
    torch.manual_seed(seed)
    return MultiRealismCodec.from_config(codec_config(scale, entropy_model))


def build_discriminator(scale: str) -> torch.nn.Module:
    """The training discriminator for ``scale`` (it lives in the training module, not in the codec)."""
    spec = discriminator_spec(scale)
    return REGISTRIES["discriminator"].build(spec["name"], **spec["args"])


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], Any], device: torch.device) -> float:
    """Wall seconds of one call, with the device synchronised on both sides."""
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def median(values: List[float]) -> float:
    return float(statistics.median(values))


def devices(requested: str) -> List[torch.device]:
    """``auto``: CPU, plus CUDA when present; or a comma list such as ``cpu,cuda``."""
    if requested == "auto":
        names = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    else:
        names = [n.strip() for n in requested.split(",") if n.strip()]
    for name in names:
        if name.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"device {name!r} requested but CUDA is not available")
    return [torch.device(n) for n in names]


def machine() -> Dict[str, Any]:
    """What the figures were measured on (load average included: these machines may be shared)."""
    info: Dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    if hasattr(os, "getloadavg"):
        info["load_average_1min"] = round(os.getloadavg()[0], 2)
    return info


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def print_table(rows: List[Mapping[str, Any]], columns: List[str]) -> str:
    """A GitHub-markdown table of ``rows`` (floats to 3 significant digits); printed and returned."""

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.3g}"
        return "" if value is None else str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c)) for c in columns) + " |" for row in rows]
    text = "\n".join(lines)
    print(text, flush=True)
    return text


def write_json(path: Optional[str], payload: Mapping[str, Any]) -> None:
    if path:
        with open(path, "w") as f:
            json.dump(payload, f, indent=2)
        print(f"wrote {path}")
