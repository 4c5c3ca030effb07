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


class CheckpointError(MultiRealismError, ValueError):
    """A checkpoint or weights file cannot be loaded safely or does not match the model."""


class ModelOutputError(MultiRealismError, RuntimeError):
    """The model computed non-finite values (broken weights): refused rather than coded or returned."""
