"""The data side's exception: a source, shard set or ID list that cannot be used."""

from __future__ import annotations

from multirealism.errors import MultiRealismError


class DataSourceError(MultiRealismError, ValueError):
    """A data source cannot be used: unknown spec, no usable images, unreadable list or bad options."""
