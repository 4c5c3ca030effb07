"""Data for multi-realism training: embedded samples, local folders and webdataset shards (local, S3, HTTPS)."""

from multirealism.data.datamodule import MultiRealismDataModule
from multirealism.data.errors import DataSourceError

__all__ = ["DataSourceError", "MultiRealismDataModule"]
