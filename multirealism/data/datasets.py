"""Torch datasets over any ``ImageSource``: random training crops and full-resolution evaluation images.

Both are ``IterableDataset``s that split their source themselves (see ``sharding``), so the same code
serves one GPU, DDP, and any number of DataLoader workers. ``EpochDataLoader`` tells the training
dataset which epoch starts, so every epoch gets a new, reproducible order.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Callable, Iterator, Optional

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset

from multirealism.data.errors import DataSourceError
from multirealism.data.sharding import ImageSource, epoch_order, partition, resolve_rank, worker_slot
from multirealism.data.transforms import RandomCropFlip, center_crop, to_tensor

logger = logging.getLogger(__name__)


def worker_quota(epoch_length: int, units_on_rank: int, world_size: int, worker: int, num_workers: int) -> int:
    """Crops this worker yields: ``epoch_length // world_size`` per rank, split over the rank's busy workers.

    Workers without units (fewer units on the rank than workers) get none; every rank yields the same
    number, which keeps DDP ranks in step.
    """
    per_rank = epoch_length // world_size
    busy = min(num_workers, units_on_rank)
    if worker >= busy:
        return 0
    return per_rank // busy + (1 if worker < per_rank % busy else 0)


class TrainCrops(IterableDataset):
    """Random crops (B, 3, crop, crop) in [0, 1] from a source, split across ranks and workers.

    ``epoch_length`` None: one pass over this rank's units per epoch, one crop per image. Otherwise an
    epoch is ``epoch_length`` crops in total over all ranks (rounded down to a multiple of the world size):
    each worker cycles its units, reshuffled each pass, until its quota is met. Crop positions and flips
    come from a generator seeded by ``(seed, epoch, rank, worker)``, so a seed fixes them.
    """

    def __init__(
        self,
        source: ImageSource,
        transform: RandomCropFlip,
        seed: int = 0,
        epoch_length: Optional[int] = None,
        rank: Optional[int] = None,
        world_size: Optional[int] = None,
    ) -> None:
        if epoch_length is not None and epoch_length < 1:
            raise ValueError(f"epoch_length must be positive, got {epoch_length}")
        self.source = source
        self.transform = transform
        self.seed = seed
        self.epoch_length = epoch_length
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[torch.Tensor]:
        rank, world_size = resolve_rank(self.rank, self.world_size)
        worker, num_workers = worker_slot()
        units_on_rank = len(self.source.units[rank::world_size])
        quota = None
        if self.epoch_length is not None:
            quota = worker_quota(self.epoch_length, units_on_rank, world_size, worker, num_workers)
        rng = np.random.default_rng([self.seed, self.epoch, rank, worker])
        skipped: Counter = Counter()
        produced, pass_index = 0, 0
        while quota is None or produced < quota:
            order = epoch_order(self.source.units, self.seed, self.epoch, pass_index, shuffle=True)
            mine = partition(order, rank, world_size, worker, num_workers)
            if not mine:
                break
            produced_before = produced
            for _, image in self.source.read(mine, rng):
                crop = None if image is None else self.transform(image, rng)
                if crop is None:
                    skipped["undecodable" if image is None else "smaller than crop"] += 1
                    continue
                yield crop
                produced += 1
                if quota is not None and produced >= quota:
                    break
            if produced == produced_before:
                raise DataSourceError(
                    f"rank {rank} worker {worker}: none of its {len(mine)} units gave a crop ({dict(skipped)})"
                )
            if quota is None:
                break
            pass_index += 1
        if skipped:
            logger.warning("rank %d worker %d skipped %s in epoch %d", rank, worker, dict(skipped), self.epoch)


class EvalImages(IterableDataset):
    """Full-resolution (optionally centre-cropped) images in the source's fixed order, split across ranks
    and workers without shuffling. Undecodable images are skipped with a warning."""

    def __init__(
        self,
        source: ImageSource,
        crop: Optional[int] = None,
        rank: Optional[int] = None,
        world_size: Optional[int] = None,
    ) -> None:
        self.source = source
        self.crop = crop
        self.rank = rank
        self.world_size = world_size

    def __iter__(self) -> Iterator[torch.Tensor]:
        rank, world_size = resolve_rank(self.rank, self.world_size)
        worker, num_workers = worker_slot()
        mine = partition(self.source.units, rank, world_size, worker, num_workers)
        for _, image in self.source.read(mine, np.random.default_rng(0)):
            if image is not None:
                yield to_tensor(center_crop(image, self.crop))


class EpochDataLoader(DataLoader):
    """A DataLoader that calls ``dataset.set_epoch`` each time it is iterated.

    ``epoch_fn`` gives the epoch (the trainer's current epoch, which survives a checkpoint resume); without
    it the loader counts its own iterations. Workers must not be persistent, so each epoch's workers get
    the dataset with its new epoch.
    """

    def __init__(self, dataset: TrainCrops, *args, epoch_fn: Optional[Callable[[], int]] = None, **kwargs) -> None:
        if kwargs.get("persistent_workers"):
            raise ValueError("EpochDataLoader needs non-persistent workers to pass each epoch to them")
        super().__init__(dataset, *args, **kwargs)
        self.epoch_fn = epoch_fn
        self.iterations = 0

    def __iter__(self):  # type: ignore[override]
        epoch = self.epoch_fn() if self.epoch_fn is not None else self.iterations
        self.iterations += 1
        self.dataset.set_epoch(epoch)
        return super().__iter__()
