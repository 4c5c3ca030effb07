"""Exceptions raised by multirealism, so callers can catch the library's failures precisely."""

from __future__ import annotations


class MultiRealismError(Exception):
    """Base class of every error the library raises on purpose."""


class BitstreamError(MultiRealismError, ValueError):
    """The bytes are not a valid multirealism bitstream (truncated, corrupted, wrong magic or format)."""


class ModelMismatchError(BitstreamError):
    """The bitstream was written by a different model than the one asked to decode it."""


class ImageInputError(MultiRealismError, ValueError):
    """An input image cannot be used: unsupported mode, wrong shape, not an image, too large."""


class OutputPathError(MultiRealismError, OSError):
    """An output cannot be written: it exists (and ``force`` is off), is the input, or its folder is missing."""


class CheckpointError(MultiRealismError, ValueError):
    """A checkpoint or weights file cannot be loaded safely or does not match the model."""


class ModelOutputError(MultiRealismError, RuntimeError):
    """The model computed non-finite values (broken weights): refused rather than coded or returned."""


def require_finite(tensor: "object", what: str) -> None:
    """Raise :class:`ModelOutputError` if the tensor ``tensor`` holds NaN or infinity (no torch import here:
    this module stays cheap for the command line)."""
    if not bool(tensor.isfinite().all()):  # type: ignore[attr-defined]
        raise ModelOutputError(f"{what} has non-finite values: the model's weights are unusable (diverged?)")
