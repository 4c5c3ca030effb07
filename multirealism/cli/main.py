"""Entry point of the ``multirealism`` command.

``fit``, ``validate`` and ``test`` are handed to LightningCLI unchanged; every other subcommand is
an argparse parser contributed by the module listed in ``SUBCOMMAND_MODULES`` (each exposes
``add_parser(subparsers)`` and sets ``func`` on its parser).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import List, Optional

from multirealism.errors import MultiRealismError

LIGHTNING_SUBCOMMANDS = ("fit", "validate", "test")
SUBCOMMAND_MODULES = (
    "multirealism.cli.codec_commands",
    "multirealism.evaluation.cli",
    "multirealism.data.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="multirealism",
        description="Learned image compression with a realism weight chosen at decode time. "
        "Training: multirealism {fit,validate,test} --config configs/X.yaml (LightningCLI).",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in SUBCOMMAND_MODULES:
        importlib.import_module(module_name).add_parser(subparsers)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in LIGHTNING_SUBCOMMANDS:
        from multirealism.training.cli import run_lightning_cli

        run_lightning_cli(argv)
        return 0
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except MultiRealismError as err:
        print(f"multirealism {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
