"""Reading and writing codec weights without unpickling code.

Three formats are read: a Lightning checkpoint written by :class:`~multirealism.training.module.
MultiRealismModule` (``state_dict`` keys prefixed ``codec.``), a plain file written by
:meth:`MultiRealismCodec.save`, and a ``.safetensors`` file whose metadata holds the config.
Torch files are opened with ``weights_only=True``, so a crafted pickle is refused, not run.
"""

from __future__ import annotations

import errno
import io
import json
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import torch
from torch import Tensor

from multirealism.errors import CheckpointError

#: key under which the codec's architecture config is stored in any checkpoint we write
CONFIG_KEY = "multirealism"
LIGHTNING_PREFIX = "codec."


def atomic_write_bytes(path: "str | os.PathLike[str]", data: bytes, overwrite: bool = True) -> None:
    """Write ``data`` to ``path`` via a temp file and rename, so a crash never leaves half a file.

    With ``overwrite=False`` the temp file is hard-linked into place, which fails atomically with
    :class:`FileExistsError` if ``path`` appeared meanwhile (a check before writing would race another
    writer). Where the filesystem has no hard links, an existence check just before the rename is used.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent or ".", prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the mode open() would
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            _link_new(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _umask() -> int:
    """The process umask, read without changing it where Linux reports it (setting and restoring it
    would briefly apply 022 to files other threads create)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _link_new(tmp: str, path: Path) -> None:
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError:  # no hard links here (some network and FAT filesystems)
        if path.exists():
            raise FileExistsError(errno.EEXIST, "file exists", str(path)) from None
        os.replace(tmp, path)


def save_weights(path: "str | os.PathLike[str]", config: Dict[str, Any], state_dict: Dict[str, Tensor]) -> None:
    """Save a plain weights file (``.safetensors`` by suffix, else a torch file), atomically."""
    path = Path(path)
    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    if path.suffix == ".safetensors":
        from safetensors.torch import save

        atomic_write_bytes(path, save(tensors, metadata={CONFIG_KEY: json.dumps(config)}))
        return
    buffer = io.BytesIO()
    torch.save({CONFIG_KEY: {"config": config}, "state_dict": tensors}, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_weights(path: "str | os.PathLike[str]") -> Tuple[Optional[Dict[str, Any]], Dict[str, Tensor]]:
    """Return ``(config or None, codec state_dict)`` from any supported file, safely."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"cannot load {str(path)!r}: it is a folder, not a weights file")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    if path.stat().st_size == 0:
        raise CheckpointError(f"cannot load {str(path)!r}: it is empty (0 bytes)")
    if path.suffix == ".safetensors":
        config, state = _load_safetensors(path)
        return config, _finite(state, path)
    with open(path, "rb") as handle:
        head = handle.read(4)
    if not (head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"):  # torch's zip format, or a legacy pickle
        raise CheckpointError(
            f"cannot load {str(path)!r}: it is not a torch checkpoint (neither a torch zip archive nor a pickle)"
        )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        # torch's own message is several lines and suggests weights_only=False, which would run the file's code
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if "weights only load failed" in reason.lower() or "unsupported global" in str(err).lower():
            reason = "it holds pickled code or objects, not plain weights"
        raise CheckpointError(f"refusing {str(path)!r}: {reason} (files are read with weights_only=True)") from None
    except Exception as err:  # a text file, a truncated zip, ...: not a torch checkpoint
        raise CheckpointError(
            f"cannot load {str(path)!r}: it is not a readable torch checkpoint ({type(err).__name__}: "
            f"{(str(err).strip().splitlines() or ['no detail'])[0]})"
        ) from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{str(path)!r} holds a {type(obj).__name__}, not a checkpoint dict")
    meta = obj.get(CONFIG_KEY)
    config = meta.get("config") if isinstance(meta, dict) else None
    state = obj.get("state_dict", obj)
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise CheckpointError(f"{str(path)!r} has no tensor state_dict")
    if any(k.startswith(LIGHTNING_PREFIX) for k in state):
        state = {k[len(LIGHTNING_PREFIX):]: v for k, v in state.items() if k.startswith(LIGHTNING_PREFIX)}
    return config, _finite(state, path)


def _finite(state: Dict[str, Tensor], path: Path) -> Dict[str, Tensor]:
    """Refuse weights with NaN or infinity (a diverged run writes such a last.ckpt): with them the entropy
    coder would receive garbage symbols and the generator black images."""
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        listed = ", ".join(bad[:3]) + (f" (+{len(bad) - 3} more)" if len(bad) > 3 else "")
        raise CheckpointError(f"{str(path)!r} has non-finite (NaN or infinite) weights in {listed}")
    return state


def _load_safetensors(path: Path) -> Tuple[Optional[Dict[str, Any]], Dict[str, Tensor]]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            state = {k: handle.get_tensor(k) for k in handle.keys()}
    except Exception as err:
        raise CheckpointError(f"cannot read safetensors file {str(path)!r}: {err}") from err
    try:
        config = json.loads(metadata[CONFIG_KEY]) if CONFIG_KEY in metadata else None
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{str(path)!r} has a malformed config in its metadata: {err}") from err
    return config, state
