"""Reading and writing codec weights without unpickling code, and the models shipped in the package.

Three formats are read: a Lightning checkpoint written by :class:`~multirealism.training.module.
MultiRealismModule` (``state_dict`` keys prefixed ``codec.``), a plain file written by
:meth:`MultiRealismCodec.save`, and a ``.safetensors`` file whose metadata holds the config and the
training objective (:class:`~multirealism.objective.RateDistortionObjective`).
Torch files are opened with ``weights_only=True``, so a crafted pickle is refused, not run.
:func:`load_codec` builds a codec from such a file behind guards: the config is checked against
the weights on the meta device first, every weight must be finite, and any failure is a one-line
:class:`CheckpointError`.

The shipped models are listed in ``multirealism/weights/models.json`` (:mod:`multirealism.weights`);
:func:`load_shipped` loads one after checking its file's SHA-256 and its fingerprint.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import pickle
import tempfile
import threading
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Mapping, Optional, Tuple, Type

import torch
from torch import Tensor, nn
from torch.nn.modules.module import register_module_module_registration_hook

from multirealism import weights
from multirealism.errors import CheckpointError
from multirealism.objective import RateDistortionObjective
from multirealism.weights import shipped_entry

if TYPE_CHECKING:
    from multirealism.codec import MultiRealismCodec

#: key under which the codec's architecture config is stored in any checkpoint we write
CONFIG_KEY = "multirealism"
#: key under which the training objective is stored beside the config
OBJECTIVE_KEY = "objective"
LIGHTNING_PREFIX = "codec."


def atomic_write_bytes(path: "str | os.PathLike[str]", data: bytes, overwrite: bool = True) -> None:
    """Write ``data`` to ``path`` via a temp file and rename, so a crash never leaves half a file.

    With ``overwrite=False`` the temp file is hard-linked into place, which fails atomically with
    :class:`FileExistsError` if ``path`` appeared meanwhile (a check before writing would race another
    writer). Where the filesystem has no hard links, an existence check just before the rename is used.
    """
    path = Path(path)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent or ".", prefix=f".{path.name}.", suffix=".tmp")
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the mode open() would
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            _link_new(tmp, path)
    except OSError as err:  # read-only folder, disk full, ...: name the file asked for, not the temp file
        raise OSError(err.errno, err.strerror or str(err), str(path)) from err
    finally:
        if tmp is not None:
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


def save_weights(
    path: "str | os.PathLike[str]", config: Dict[str, Any], state_dict: Dict[str, Tensor],
    objective: Optional[RateDistortionObjective] = None,
) -> None:
    """Save a plain weights file (``.safetensors`` by suffix, else a torch file), atomically."""
    data = weights_bytes(config, state_dict, safetensors=Path(path).suffix == ".safetensors", objective=objective)
    atomic_write_bytes(Path(path), data)


def half_kernels(state_dict: Mapping[str, Tensor]) -> Dict[str, Tensor]:
    """``state_dict`` with its convolution kernels (4-D float tensors, nearly all of a codec's weights) in
    float16, for a file half the size; loading casts them back to the parameters' float32. Biases, GDN and
    entropy-model parameters keep full precision. A kernel float16 cannot hold is a CheckpointError."""
    halved = {}
    for name, tensor in state_dict.items():
        if tensor.is_floating_point() and tensor.dim() == 4:
            if bool((tensor.abs() > torch.finfo(torch.float16).max).any()):
                raise CheckpointError(f"weight {name} exceeds the float16 range; export it at full precision")
            tensor = tensor.half()
        halved[name] = tensor
    return halved


def weights_bytes(
    config: Dict[str, Any], state_dict: Mapping[str, Tensor], safetensors: bool = True,
    objective: Optional[RateDistortionObjective] = None,
) -> bytes:
    """The bytes of a plain weights file: safetensors with the config (and the objective, if any) in its
    metadata, or a torch file."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    stored = {"config": config, **({} if objective is None else {OBJECTIVE_KEY: objective.to_dict()})}
    if safetensors:
        from safetensors.torch import save

        return save(tensors, metadata={CONFIG_KEY if k == "config" else k: json.dumps(v) for k, v in stored.items()})
    buffer = io.BytesIO()
    torch.save({CONFIG_KEY: stored, "state_dict": tensors}, buffer)
    return buffer.getvalue()


def load_weights(path: "str | os.PathLike[str]") -> Tuple[Optional[Dict[str, Any]], Dict[str, Tensor]]:
    """Return ``(config or None, codec state_dict)`` from any supported file, safely; NaN or infinite weights
    are refused."""
    config, state, _ = _read_checkpoint(path)
    _check_finite(state, os.fspath(path))
    return config, state


def check_resumable(path: "str | os.PathLike[str]") -> None:
    """Refuse, with one :class:`CheckpointError` line, a checkpoint ``fit --ckpt_path`` should not resume
    from: missing, not a torch checkpoint, truncated, a pickle holding code, or NaN/infinite weights."""
    load_weights(path)  # refuses each of those with one line


def _read_checkpoint(
    path: "str | os.PathLike[str]",
) -> Tuple[Optional[Dict[str, Any]], Dict[str, Tensor], Optional[Any]]:
    """``(config or None, codec state_dict, stored objective data or None)`` of any supported file."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"checkpoint {str(path)!r} is a directory, not a file")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {str(path)!r} is an empty file")
    if path.suffix == ".safetensors":
        return _load_safetensors(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's pickle-protocol warnings say nothing to our users
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a refused pickle, a text file, an image, a truncated zip ...
        with open(path, "rb") as handle:
            head = handle.read(2)
        pickled = head == b"PK" or head[:1] == b"\x80"  # a torch zip archive or a raw pickle
        if pickled and isinstance(err, pickle.UnpicklingError):
            # One line of our own: torch's text advises weights_only=False, which would run the file's code.
            raise CheckpointError(
                f"cannot load {str(path)!r}: refused, it holds pickled objects other than tensors, "
                "and loading those could run code"
            ) from err
        raise CheckpointError(
            f"cannot load {str(path)!r}: it is not a torch checkpoint or a .safetensors file ({type(err).__name__})"
        ) from err
    if not isinstance(obj, dict):
        raise CheckpointError(f"{str(path)!r} holds a {type(obj).__name__}, not a checkpoint dict")
    meta = obj.get(CONFIG_KEY)
    config = meta.get("config") if isinstance(meta, dict) else None
    objective = meta.get(OBJECTIVE_KEY) if isinstance(meta, dict) else None
    state = obj.get("state_dict", obj)
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise CheckpointError(f"{str(path)!r} has no tensor state_dict")
    if any(k.startswith(LIGHTNING_PREFIX) for k in state):
        state = {k[len(LIGHTNING_PREFIX):]: v for k, v in state.items() if k.startswith(LIGHTNING_PREFIX)}
    return config, state, objective


def _load_safetensors(path: Path) -> Tuple[Optional[Dict[str, Any]], Dict[str, Tensor], Optional[Any]]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            state = {k: handle.get_tensor(k) for k in handle.keys()}
    except Exception as err:
        raise CheckpointError(f"cannot read safetensors file {str(path)!r}: {err}") from err
    try:
        config = json.loads(metadata[CONFIG_KEY]) if CONFIG_KEY in metadata else None
        objective = json.loads(metadata[OBJECTIVE_KEY]) if OBJECTIVE_KEY in metadata else None
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{str(path)!r} has malformed metadata: {err}") from err
    except RecursionError:
        raise CheckpointError(f"{str(path)!r} has a config nested too deeply to read in its metadata") from None
    return config, state, objective


#: entropy-coder tables whose size follows the trained weights; ``load_state_dict`` resizes them
RESIZED_BUFFERS = ("_quantized_cdf", "_offset", "_cdf_length", "scale_table")


@contextlib.contextmanager
def _module_budget(limit: int, source: str) -> Iterator[None]:
    """Raise CheckpointError as soon as this thread registers more than ``limit`` submodules in the block
    (the hook is global; other threads' modules are not counted)."""
    count = 0
    thread = threading.get_ident()

    def hook(module: nn.Module, name: str, submodule: Optional[nn.Module]) -> None:
        nonlocal count
        if threading.get_ident() != thread:
            return
        count += 1
        if count > limit:
            raise CheckpointError(
                f"{source!r}: its config builds more than {limit} modules, far more than its weights belong to"
            )

    handle = register_module_module_registration_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def _first_names(names: List[str]) -> str:
    return ", ".join(names[:3]) + (f" (+{len(names) - 3} more)" if len(names) > 3 else "")


def _check_state_matches(skeleton: nn.Module, state: Mapping[str, Any], source: str) -> None:
    """Refuse weights whose names or shapes differ from the config's architecture, before the real build
    allocates it (the stored weights, already in memory, then bound what building costs)."""
    expected = skeleton.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(
        name
        for name, tensor in expected.items()
        if name in state
        and not name.endswith(RESIZED_BUFFERS)
        and tuple(getattr(state[name], "shape", ())) != tuple(tensor.shape)
    )
    if missing or unexpected or wrong:
        problems = [f"{label}: {_first_names(names)}" for label, names in
                    (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)) if names]
        raise CheckpointError(
            f"{source!r}: weights do not match the architecture its config describes ({'; '.join(problems)})"
        )


def _check_finite(state: Mapping[str, Tensor], source: str) -> None:
    """NaN/inf weights make the rANS encoder spin forever and the generator return black images."""
    broken = [name for name, tensor in state.items() if tensor.is_floating_point() and not bool(tensor.isfinite().all())]
    if broken:
        raise CheckpointError(f"{source!r}: weights hold NaN or infinite values ({_first_names(broken)})")


def load_codec(
    cls: "Type[MultiRealismCodec]",
    path: "str | os.PathLike[str]",
    config: Optional[Mapping[str, Any]] = None,
    map_location: "str | torch.device" = "cpu",
) -> "MultiRealismCodec":
    """Build ``cls`` from a checkpoint file (the body of ``MultiRealismCodec.from_checkpoint``)."""
    source = os.fspath(path)
    stored, state, stored_objective = _read_checkpoint(path)
    config = config or stored
    if config is None:
        raise CheckpointError(f"{source!r} holds no multirealism config; pass config=")
    if not isinstance(config, Mapping):
        raise CheckpointError(f"{source!r} holds a config that is not a mapping")
    # Checkpoints written before the discriminator moved to the training module carry its config and
    # weights; an inference codec has no use for either, so both are dropped here, in one place.
    config = {k: v for k, v in config.items() if k != "discriminator"}
    state = {k: v for k, v in state.items() if not k.startswith("discriminator.")}
    _check_finite(state, source)
    try:
        # Shapes only: a config claiming huge widths allocates nothing, and one claiming huge depths
        # is stopped once it builds more modules than the stored weights could belong to.
        with torch.device("meta"), _module_budget(2 * len(state) + 256, source):
            skeleton = cls.from_config(config)
        _check_state_matches(skeleton, state, source)
        codec = cls.from_config(config)
    except CheckpointError:
        raise
    except Exception as err:  # any bad value in a stored config (negative widths, 1e9 channels, NaN β_max ...)
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{source!r} holds an unusable codec config: {message[:200]}") from err
    try:
        objective = None if stored_objective is None else RateDistortionObjective.from_dict(stored_objective)
    except ValueError as err:
        raise CheckpointError(f"{source!r} holds an unusable training objective: {err}") from None
    if objective is not None and objective.num_levels != codec.num_levels:
        raise CheckpointError(f"{source!r}: its training objective has {objective.num_levels} λ values for a model "
                              f"of {codec.num_levels} rate levels")
    codec.load_state_dict(state)
    codec.to(map_location).eval()
    codec.update()
    codec.objective = objective
    return codec


def shipped_weights(name: Optional[str] = None) -> Path:
    """The installed weight file of shipped model ``name``, checked against its SHA-256."""
    name, entry = shipped_entry(name)
    path = weights.SHIPPED_DIR / entry["file"]
    if not path.is_file():
        raise CheckpointError(f"shipped model {name!r}: weight file {str(path)!r} is not installed; reinstall multirealism")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != entry["sha256"]:
        raise CheckpointError(
            f"shipped model {name!r}: {str(path)!r} is damaged or replaced (sha256 {digest[:16]}..., "
            f"expected {entry['sha256'][:16]}...); reinstall multirealism"
        )
    return path


def load_shipped(
    cls: "Type[MultiRealismCodec]", name: Optional[str] = None, map_location: "str | torch.device" = "cpu"
) -> "MultiRealismCodec":
    """Shipped model ``name`` (None: the default) built as ``cls``, its file and fingerprint checked, so a
    damaged install fails here, not mid-decode (the body of ``MultiRealismCodec.pretrained``)."""
    name, entry = shipped_entry(name)
    codec = load_codec(cls, shipped_weights(name), map_location=map_location)
    if codec.fingerprint.hex() != entry["fingerprint"]:
        raise CheckpointError(
            f"shipped model {name!r} loads with fingerprint {codec.fingerprint.hex()}, not the registered "
            f"{entry['fingerprint']}: its bitstreams would not match; reinstall multirealism"
        )
    return codec
