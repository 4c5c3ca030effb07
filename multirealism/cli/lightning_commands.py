"""``multirealism fit|validate|test --config configs/X.yaml``: LightningCLI over :class:`MultiRealismModule`.

The model is fixed (``model.*`` are :class:`MultiRealismModule`'s arguments; components inside
``model.codec`` are chosen with ``class_path``/``init_args`` or registry names); the data module
is any ``LightningDataModule`` given by ``class_path`` (the configs use
``multirealism.data.MultiRealismDataModule``). ``--print_config`` prints the resolved config.
"""

from __future__ import annotations

import sys
from typing import Any, List, Optional

import lightning as L
from lightning.pytorch.cli import LightningCLI

from multirealism.checkpoint import check_resumable
from multirealism.training.module import MultiRealismModule


#: ``--ckpt_path`` values Lightning resolves itself (no file named on the command line)
_CKPT_KEYWORDS = ("last", "best", "hpc", "registry")


def _check_resume_checkpoint(argv: List[str]) -> None:
    """Refuse a ``--ckpt_path`` file Lightning would fail on with a long traceback (a pickle holding code, a
    truncated file) or resume from silently broken (NaN weights), before anything is built."""
    for index, arg in enumerate(argv):
        if arg == "--ckpt_path" and index + 1 < len(argv):
            path = argv[index + 1]
        elif arg.startswith("--ckpt_path="):
            path = arg.split("=", 1)[1]
        else:
            continue
        if not path.startswith(_CKPT_KEYWORDS) and "://" not in path and path.lower() not in ("null", "none", ""):
            check_resumable(path)


def run_lightning_cli(argv: Optional[List[str]] = None, **kwargs: Any) -> LightningCLI:
    """Run ``fit``/``validate``/``test`` (``argv`` as on the command line, subcommand first).

    ``kwargs`` go to :class:`LightningCLI` (e.g. ``save_config_callback=None`` in tests).
    """
    _check_resume_checkpoint(list(sys.argv[1:] if argv is None else argv))
    if argv is not None and list(argv) == sys.argv[1:]:
        argv = None  # LightningCLI reads sys.argv itself and warns when given both
    kwargs.setdefault("subclass_mode_data", True)
    kwargs.setdefault("auto_configure_optimizers", False)  # the module builds its own (manual optimisation)
    return LightningCLI(MultiRealismModule, L.LightningDataModule, args=argv, **kwargs)
