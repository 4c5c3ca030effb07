"""Checkpoint writing that never leaves a half-written file at the checkpoint's path.

Lightning's ``TorchCheckpointIO`` writes through an fsspec transaction whose local temp file is
made by ``tempfile.mkstemp()`` in the system temp directory and then moved; when that directory
is on another filesystem the move is a copy, so a crash can leave a truncated ``last.ckpt``.
Here the bytes go to a temp file beside the target and are renamed into place (``os.replace``).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Dict, Optional

import torch
from lightning.fabric.utilities.cloud_io import get_filesystem
from lightning.pytorch.plugins.io import TorchCheckpointIO

from multirealism.checkpoint import atomic_write_bytes


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` with same-directory temp file + rename for local paths."""

    def save_checkpoint(self, checkpoint: Dict[str, Any], path: Any, storage_options: Optional[Any] = None) -> None:
        fs = get_filesystem(path)
        if storage_options is not None or "file" not in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, buffer.getvalue())
