"""Entry point of the ``multirealism`` command.

``fit``, ``validate`` and ``test`` are handed to LightningCLI unchanged; every other subcommand is an
argparse parser contributed by the module listed in ``SUBCOMMANDS`` (each exposes
``add_parser(subparsers)`` and sets ``func`` on its parser). Only the module of the subcommand being
run is imported, so ``multirealism --help`` and argument errors answer without loading torch.

Every error the user can cause (bad arguments, files, images, bitstreams, checkpoints) is one line on
stderr and exit code 2; warnings are plain ``multirealism CMD: warning: ...`` lines.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from typing import Dict, List, NoReturn, Optional, Tuple

from multirealism.errors import MultiRealismError

LIGHTNING_SUBCOMMANDS = {
    "fit": "train a model (LightningCLI; --config configs/X.yaml)",
    "validate": "validate a checkpoint (LightningCLI)",
    "test": "test a checkpoint (LightningCLI)",
}
#: subcommand -> (module contributing its parser, one-line help)
SUBCOMMANDS: Dict[str, Tuple[str, str]] = {
    "compress": ("multirealism.cli.codec_commands", "image file -> .mrc bitstream"),
    "decompress": ("multirealism.cli.codec_commands", ".mrc bitstream -> images at one or more realism weights"),
    "info": ("multirealism.cli.codec_commands", "describe a .mrc bitstream"),
    "evaluate": ("multirealism.evaluation.cli", "rate, distortion and realism of codecs over a β sweep"),
    "data": ("multirealism.data.cli", "prepare training data"),
    "models": ("multirealism.cli.model_commands", "list the models shipped in the package"),
    "export": ("multirealism.cli.model_commands", "training checkpoint -> inference .safetensors"),
}


class OneLineParser(argparse.ArgumentParser):
    """argparse whose errors are one line (no usage block), exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser(command: Optional[str] = None) -> argparse.ArgumentParser:
    """The parser with ``command``'s real sub-parser; the other subcommands are listed by name only."""
    parser = OneLineParser(
        prog="multirealism",
        description="Learned image compression with a realism weight chosen at decode time.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=OneLineParser)
    if command in SUBCOMMANDS:
        importlib.import_module(SUBCOMMANDS[command][0]).add_parser(subparsers)
    registered = set(subparsers.choices)
    for name, help_text in {**LIGHTNING_SUBCOMMANDS, **{k: v[1] for k, v in SUBCOMMANDS.items()}}.items():
        if name not in registered:
            subparsers.add_parser(name, help=help_text, add_help=False)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    """Warnings reach command-line users as plain lines, not Python warning records."""
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    print(f"multirealism {command}: warning: {message}".replace("  ", " "), file=sys.stderr)


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in LIGHTNING_SUBCOMMANDS:
        from multirealism.training.cli import run_lightning_cli

        run_lightning_cli(argv)
        return 0
    args = build_parser(argv[0] if argv else None).parse_args(argv)
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        try:
            return int(args.func(args) or 0)
        except MultiRealismError as err:
            print(f"multirealism {args.command}: error: {err}", file=sys.stderr)
        except OSError as err:  # unreadable input, unwritable output, disk full, ...
            where = f" {err.filename!r}" if err.filename else ""
            print(f"multirealism {args.command}: error:{where} {err.strerror or err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
