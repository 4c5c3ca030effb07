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

from multirealism.training.module import MultiRealismModule


def run_lightning_cli(argv: Optional[List[str]] = None, **kwargs: Any) -> LightningCLI:
    """Run ``fit``/``validate``/``test`` (``argv`` as on the command line, subcommand first).

    ``kwargs`` go to :class:`LightningCLI` (e.g. ``save_config_callback=None`` in tests).
    """
    if argv is not None and list(argv) == sys.argv[1:]:
        argv = None  # LightningCLI reads sys.argv itself and warns when given both
    kwargs.setdefault("subclass_mode_data", True)
    kwargs.setdefault("auto_configure_optimizers", False)  # the module builds its own (manual optimisation)
    return LightningCLI(MultiRealismModule, L.LightningDataModule, args=argv, **kwargs)
