"""Exceptions raised by multirealism, so callers can catch the library's failures precisely."""

from __future__ import annotations


class MultiRealismError(Exception):
    """Base class of every error the library raises on purpose."""

    def for_command_line(self) -> str:
        """The message as the command line shows it (a subclass may name the option instead of the argument)."""
        return str(self)


class ParameterError(MultiRealismError, ValueError):
    """An argument of the Python API is out of range or of the wrong type (a quality, a β, an empty β list)."""


class BitstreamError(MultiRealismError, ValueError):
    """The bytes are not a valid multirealism bitstream (truncated, corrupted, wrong magic or format)."""


class ModelMismatchError(BitstreamError):
    """The bitstream was written by a different model than the one asked to decode it."""


class ImageInputError(MultiRealismError, ValueError):
    """An input image cannot be used: unsupported mode, wrong shape, not an image, too large."""


class OutputPathError(MultiRealismError, OSError):
    """An output cannot be written: it exists (and ``force`` is off), is the input, or its folder is missing."""


class OutputExistsError(OutputPathError):
    """The output exists and ``force`` is off; the API names ``force=True``, the command line ``--force``."""

    def __init__(self, path: str) -> None:
        super().__init__(f"{path!r} already exists; pass force=True to overwrite it")
        self.path = path

    def for_command_line(self) -> str:
        return f"{self.path!r} already exists; pass --force to overwrite it"


class ResourceLimitError(MultiRealismError, MemoryError):
    """The work asked for needs more memory than this machine can give (refused before allocating it)."""


class CheckpointError(MultiRealismError, ValueError):
    """A checkpoint or weights file cannot be loaded safely or does not match the model."""


class ModelOutputError(MultiRealismError, RuntimeError):
    """The model computed non-finite values (broken weights): refused rather than coded or returned."""


def require_finite(tensor: "object", what: str) -> None:
    """Raise :class:`ModelOutputError` if the tensor ``tensor`` holds NaN or infinity (no torch import here:
    this module stays cheap for the command line)."""
    if not bool(tensor.isfinite().all()):  # type: ignore[attr-defined]
        raise ModelOutputError(f"{what} has non-finite values: the model's weights are unusable (diverged?)")
