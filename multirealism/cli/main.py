"""Entry point of the ``multirealism`` command.

``fit``, ``validate`` and ``test`` are handed to LightningCLI unchanged; every other subcommand is an
argparse parser contributed by the module listed in ``SUBCOMMANDS`` (each exposes
``add_parser(subparsers)`` and sets ``func`` on its parser). Only the module of the subcommand being
run is imported, so ``multirealism --help`` and argument errors answer without loading torch.

Every error the user can cause is one line on stderr: exit code 2 for a usage error (an unknown or
malformed option, a value outside its range), 1 for a failure (a bad file, image, bitstream or
checkpoint, an I/O error, too little memory). Ctrl-C ends with one line and exit code 130, SIGTERM with
one line and 143, after the temp file of a write in progress is removed. Warnings are plain
``multirealism CMD: warning: ...`` lines.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import threading
import warnings
from typing import Callable, Dict, List, NoReturn, Optional, Tuple

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
    "evaluate": ("multirealism.cli.evaluate_command", "rate, distortion and realism of codecs over a β sweep"),
    "data": ("multirealism.cli.data_commands", "prepare training data"),
    "models": ("multirealism.cli.model_commands", "list the models shipped in the package"),
    "export": ("multirealism.cli.model_commands", "training checkpoint -> inference .safetensors"),
}


#: exit codes: a usage error (as argparse's), a failure, and 128 + the signal that ended the command
USAGE, FAILURE, INTERRUPTED, TERMINATED = 2, 1, 128 + signal.SIGINT, 128 + signal.SIGTERM


class CommandLineError(Exception):
    """A usage error a command finds after parsing (an option's value that does not fit): exit code 2."""


class Terminated(BaseException):
    """Raised by the SIGTERM handler so ``finally`` blocks (temp-file removal) run before the exit."""


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
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
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


def _version() -> str:
    from multirealism import __version__

    return __version__


def _terminate(signum: int, frame: object) -> None:
    raise Terminated()


def _out_of_memory(err: BaseException) -> bool:
    return isinstance(err, MemoryError) or (
        isinstance(err, RuntimeError) and any(s in str(err) for s in ("can't allocate memory", "out of memory"))
    )


def run_reporting_errors(command: str, body: Callable[[], int]) -> int:
    """``body()``'s exit code, or the one-line report and exit code of what it raised."""
    def fail(message: str, code: int = FAILURE) -> int:
        print(f"multirealism {command}: {message}", file=sys.stderr)
        return code

    try:
        return int(body() or 0)
    except CommandLineError as err:
        return fail(f"error: {err} (see multirealism {command} --help)", USAGE)
    except MultiRealismError as err:
        return fail(f"error: {err.for_command_line()}")
    except OSError as err:  # unreadable input, unwritable output, disk full, a closed pipe ...
        where = f" {err.filename!r}:" if err.filename else ""
        return fail(f"error:{where} {err.strerror or err}")
    except KeyboardInterrupt:
        return fail("interrupted", INTERRUPTED)
    except Terminated:
        return fail("terminated", TERMINATED)
    except (MemoryError, RuntimeError) as err:
        if not _out_of_memory(err):
            raise
        return fail(f"error: out of memory ({type(err).__name__}); try a smaller image or a machine with more memory")


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in LIGHTNING_SUBCOMMANDS:
        from multirealism.cli.lightning_commands import run_lightning_cli

        return run_reporting_errors(argv[0], lambda: run_lightning_cli(argv) and 0)
    args = build_parser(argv[0] if argv else None).parse_args(argv)
    in_main_thread = threading.current_thread() is threading.main_thread()  # signal handlers live there only
    previous = signal.signal(signal.SIGTERM, _terminate) if in_main_thread else None
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            return run_reporting_errors(args.command, lambda: args.func(args))
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
