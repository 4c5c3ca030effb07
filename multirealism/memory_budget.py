"""Whether this machine has the memory an encode or decode of a given size needs, asked before allocating.

A 567-byte bitstream may declare 8192x8192 pixels and a 211 KB PNG may hold as many: both are within
``max_pixels`` but the generator's activations for them need tens of GB. :func:`check_memory` compares
an estimate (pixels x bytes per pixel, measured with the shipped model: see ``benchmarks/cli_memory.py``)
with what the process may still allocate (``MemAvailable``, the cgroup limit, ``RLIMIT_AS``; on CUDA the
device's free memory) and refuses with :class:`ResourceLimitError` instead of letting the allocator fail
or the kernel's OOM killer end the process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch

from multirealism.errors import ResourceLimitError

#: peak resident memory per padded pixel of ``decompress`` at one β, the shipped model on CPU: the measured
#: slope between 1 and 4 MP (546 bytes; benchmarks/README.md) with a 20 % margin
DECODE_BYTES_PER_PIXEL = 660
#: the same for ``compress`` without latent refinement (measured 223 bytes)
ENCODE_BYTES_PER_PIXEL = 270
#: the same for ``compress --refine`` at realism 0 (measured 1266 bytes from 0.25 to 0.5 MP: autograd keeps the
#: synthesis activations); a perceptual term (realism > 0) adds its network's, not counted here
REFINE_BYTES_PER_PIXEL = 1600
#: each extra β keeps one more float32 RGB image
BYTES_PER_OUTPUT_PIXEL = 12


def _meminfo_available() -> Optional[int]:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_available() -> Optional[int]:
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit == "max":
            return None
        return int(limit) - int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
    except (OSError, ValueError):
        return None


def _address_space_available() -> Optional[int]:
    try:
        import resource  # Unix only
    except ImportError:
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                return soft - int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def available_bytes(device: "torch.device | str" = "cpu") -> Optional[int]:
    """Bytes this process can still allocate on ``device`` (None when nothing says)."""
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    if device.type != "cpu":
        return None
    known = [v for v in (_meminfo_available(), _cgroup_available(), _address_space_available()) if v is not None]
    return max(0, min(known)) if known else None


def check_memory(pixels: int, bytes_per_pixel: int, what: str, device: "torch.device | str" = "cpu") -> None:
    """Refuse ``what`` (e.g. "decoding the bitstream's 8192x8192 image") when ``pixels * bytes_per_pixel``
    exceeds what :func:`available_bytes` reports."""
    needed = pixels * bytes_per_pixel
    available = available_bytes(device)
    if available is not None and needed > available:
        raise ResourceLimitError(
            f"{what} needs about {needed / 2**30:.1f} GiB of memory ({pixels} pixels at ~{bytes_per_pixel} bytes "
            f"each), and only {available / 2**30:.1f} GiB is available"
        )
