"""Torch datasets over any ``ImageSource``: random training crops and full-resolution evaluation images.

Both are ``IterableDataset``s that split their source themselves (see ``sharding``), so the same code
serves one GPU, DDP, and any number of DataLoader workers. ``EpochDataLoader`` tells the training
dataset which epoch starts, so every epoch gets a new, reproducible order, and saves its position in
Lightning checkpoints so a run resumed mid-epoch gets the rest of that epoch's batches, in order.
"""

from __future__ import annotations

import logging
import sys
from collections import Counter
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

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


def resume_point(worker_batches: Sequence[int], consumed: int) -> Tuple[List[int], int]:
    """(batches each worker had delivered, the worker whose batch comes next) after ``consumed`` batches.

    A DataLoader takes one batch from each of its workers in turn, passing over workers that are done.
    """
    remaining = list(worker_batches)
    taken = [0] * len(remaining)
    worker = 0
    while consumed > 0 and any(remaining):
        if remaining[worker] > 0:
            remaining[worker] -= 1
            taken[worker] += 1
            consumed -= 1
        worker = (worker + 1) % len(remaining)
    return taken, worker


class TrainCrops(IterableDataset):
    """Random crops (B, 3, crop, crop) in [0, 1] from a source, split across ranks and workers.

    ``epoch_length`` None: one pass over this rank's units per epoch, one crop per image. Otherwise an
    epoch is ``epoch_length`` crops in total over all ranks (rounded down to a multiple of the world size):
    each worker cycles its units, reshuffled each pass, until its quota is met. Crop positions and flips
    come from a generator seeded by ``(seed, epoch, rank, worker)``, so a seed fixes them.

    :meth:`resume_after` makes the next iteration continue an epoch after a number of batches: each worker
    replays (decodes, draws crops for, and drops) what it had delivered, and workers take over the roles
    that put the next batch first, so the batches that follow are those an uninterrupted run would see.
    This is exact with ``epoch_length`` set; without it, while no image of the epoch has been skipped and,
    for streams, until the first worker runs out of images.
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
        self.resume: Optional[Tuple[int, int, bool]] = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.resume = None

    def resume_after(self, batches: int, batch_size: int, drop_last: bool) -> None:
        """Start the next iteration after the first ``batches`` batches of the epoch."""
        self.resume = (batches, batch_size, drop_last)

    def _quota(self, rank: int, world_size: int, worker: int, num_workers: int) -> Optional[int]:
        if self.epoch_length is None:
            return None
        units_on_rank = len(self.source.units[rank::world_size])
        return worker_quota(self.epoch_length, units_on_rank, world_size, worker, num_workers)

    def _resume_role(self, rank: int, world_size: int, slot: int, num_workers: int) -> Tuple[int, int]:
        """(worker role this slot plays, crops it replays without yielding) for a resumed epoch."""
        if self.resume is None:
            return slot, 0
        batches, batch_size, drop_last = self.resume
        worker_batches = []
        for worker in range(num_workers):
            crops = self._quota(rank, world_size, worker, num_workers)
            if crops is None:  # one pass: a crop per image, if none is skipped; unbounded if not known
                units = len(partition(self.source.units, rank, world_size, worker, num_workers))
                per_unit = self.source.images_per_unit
                crops = units * per_unit if per_unit is not None else (sys.maxsize if units else 0)
            worker_batches.append(crops // batch_size if drop_last else -(-crops // batch_size))
        taken, next_worker = resume_point(worker_batches, batches)
        role = (slot + next_worker) % num_workers
        return role, taken[role] * batch_size

    def __iter__(self) -> Iterator[torch.Tensor]:
        rank, world_size = resolve_rank(self.rank, self.world_size)
        slot, num_workers = worker_slot()
        worker, replay = self._resume_role(rank, world_size, slot, num_workers)
        quota = self._quota(rank, world_size, worker, num_workers)
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
                if replay:
                    replay -= 1
                else:
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
    """A DataLoader that calls ``dataset.set_epoch`` each time it is iterated, and is resumable.

    ``epoch_fn`` gives the epoch (the trainer's current epoch, which survives a checkpoint resume); without
    it the loader counts its own iterations. ``progress_fn`` gives the number of batches of the current
    epoch the trainer has processed: :meth:`state_dict` records it with the epoch (Lightning stores both in
    its checkpoints) and, after :meth:`load_state_dict`, the next iteration of that epoch continues after
    those batches. Without ``progress_fn`` a resume starts the epoch over. Workers must not be persistent,
    so each epoch's workers get the dataset with its new epoch.
    """

    def __init__(
        self,
        dataset: TrainCrops,
        *args: Any,
        epoch_fn: Optional[Callable[[], int]] = None,
        progress_fn: Optional[Callable[[], int]] = None,
        **kwargs: Any,
    ) -> None:
        if kwargs.get("persistent_workers"):
            raise ValueError("EpochDataLoader needs non-persistent workers to pass each epoch to them")
        super().__init__(dataset, *args, **kwargs)
        self.epoch_fn = epoch_fn
        self.progress_fn = progress_fn
        self.iterations = 0
        self.epoch: Optional[int] = None  # of the latest iteration: the one progress_fn counts batches of
        self._resume: Optional[Dict[str, int]] = None

    def __iter__(self):  # type: ignore[override]
        epoch = self.epoch_fn() if self.epoch_fn is not None else self.iterations
        self.iterations += 1
        self.epoch = epoch
        self.dataset.set_epoch(epoch)
        if self._resume is not None and self._resume["epoch"] == epoch and self._resume["batches"] > 0:
            self.dataset.resume_after(self._resume["batches"], self.batch_size, self.drop_last)
        self._resume = None
        return super().__iter__()

    def state_dict(self) -> Dict[str, int]:
        """The epoch being iterated and how many of its batches were trained on."""
        if self.epoch is None or self.progress_fn is None:
            return {}
        return {"epoch": self.epoch, "batches": int(self.progress_fn())}

    def load_state_dict(self, state_dict: Dict[str, int]) -> None:
        """Continue after the saved position on the next iteration, if that iteration is the saved epoch."""
        self._resume = dict(state_dict) if state_dict else None
