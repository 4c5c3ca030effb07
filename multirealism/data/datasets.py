"""Torch datasets over any ``ImageSource``: random training crops and full-resolution evaluation images.

Both are ``IterableDataset``s that split their source themselves (see ``sharding``), so the same code
serves one GPU, DDP, and any number of DataLoader workers. ``EpochDataLoader`` tells the training
dataset which epoch starts, so every epoch gets a new, reproducible order, and saves its position in
Lightning checkpoints so a run resumed mid-epoch gets the rest of that epoch's batches, in order. Every
rank yields the same number of batches per epoch, so DDP ranks never wait on each other at its end.
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
from multirealism.data.sharding import ImageSource, epoch_order, partition, rank_units, resolve_rank, worker_slot
from multirealism.data.transforms import RandomCropFlip, center_crop, to_tensor

logger = logging.getLogger(__name__)


def worker_quota(
    epoch_length: int, units_on_rank: int, world_size: int, worker: int, num_workers: int, batch_size: int = 1
) -> int:
    """Crops this worker yields: ``epoch_length // world_size`` per rank, rounded down to whole batches,
    the batches split over the rank's busy workers.

    Workers without units (fewer units on the rank than workers) get none. Every rank yields the same
    number of whole batches and no worker is left with a partial batch to drop, which keeps DDP ranks
    in step.
    """
    batches = epoch_length // world_size // batch_size
    busy = min(num_workers, units_on_rank)
    if worker >= busy:
        return 0
    return (batches // busy + (1 if worker < batches % busy else 0)) * batch_size


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

    An epoch is ``epoch_length`` crops over all ranks; None: one pass over the source, i.e. each rank's
    share of the units (padded as in :func:`~multirealism.data.sharding.rank_units`) times
    ``crops_per_image`` crops per image. Each rank's crops are rounded down to whole batches of
    ``batch_size`` and split, batch by batch, over its workers, so every rank yields the same number of
    batches and no worker drops a partial batch; a worker cycles its units, reshuffled each pass, until
    its quota is met (images skipped as unreadable or small are made up this way). Streams whose image
    count is unknown (shards) without ``epoch_length`` make one pass, whose length may differ between
    ranks (the datamodule refuses that setup under DDP).
    Each decoded image gives ``crops_per_image`` consecutive crops. Crop positions and flips come from a
    generator seeded by ``(seed, epoch, rank, worker)``, so a seed fixes them.

    The epoch and the resume position live in a small shared-memory tensor, so persistent loader
    workers see :meth:`set_epoch` and :meth:`resume_after` calls made in the main process.
    :meth:`resume_after` makes the next iteration continue an epoch after a number of batches: each
    worker replays (decodes, draws crops for, and drops) what it had delivered, and workers take over the
    roles that put the next batch first, so the batches that follow are those an uninterrupted run would
    see. Exact wherever a quota is known; for a single-pass stream, until the first worker runs out.
    """

    def __init__(
        self,
        source: ImageSource,
        transform: RandomCropFlip,
        seed: int = 0,
        epoch_length: Optional[int] = None,
        rank: Optional[int] = None,
        world_size: Optional[int] = None,
        batch_size: int = 1,
        crops_per_image: int = 1,
    ) -> None:
        if epoch_length is not None and epoch_length < 1:
            raise ValueError(f"epoch_length must be positive, got {epoch_length}")
        if batch_size < 1 or crops_per_image < 1:
            raise ValueError(f"batch_size and crops_per_image must be positive, got {batch_size}, {crops_per_image}")
        self.source = source
        self.transform = transform
        self.seed = seed
        self.epoch_length = epoch_length
        self.rank = rank
        self.world_size = world_size
        self.batch_size = batch_size
        self.crops_per_image = crops_per_image
        # epoch, batches to resume after (0: none), their batch size, drop_last
        self._shared = torch.zeros(4, dtype=torch.int64).share_memory_()

    @property
    def epoch(self) -> int:
        return int(self._shared[0])

    @property
    def resume(self) -> Optional[Tuple[int, int, bool]]:
        batches, batch_size, drop_last = (int(v) for v in self._shared[1:])
        return (batches, batch_size, bool(drop_last)) if batches > 0 else None

    def set_epoch(self, epoch: int) -> None:
        self._shared.copy_(torch.tensor([epoch, 0, 0, 0]))

    def resume_after(self, batches: int, batch_size: int, drop_last: bool) -> None:
        """Start the next iteration after the first ``batches`` batches of the epoch."""
        self._shared[1:] = torch.tensor([batches, batch_size, int(drop_last)])

    def _quota(self, rank: int, world_size: int, worker: int, num_workers: int) -> Optional[int]:
        units_on_rank = len(rank_units(self.source.units, rank, world_size))
        epoch_length = self.epoch_length
        if epoch_length is None:
            if self.source.images_per_unit is None:
                return None
            epoch_length = units_on_rank * self.source.images_per_unit * self.crops_per_image * world_size
        return worker_quota(epoch_length, units_on_rank, world_size, worker, num_workers, self.batch_size)

    def _resume_role(self, rank: int, world_size: int, slot: int, num_workers: int) -> Tuple[int, int]:
        """(worker role this slot plays, crops it replays without yielding) for a resumed epoch."""
        resume = self.resume
        if resume is None:
            return slot, 0
        batches, batch_size, drop_last = resume
        worker_batches = []
        for worker in range(num_workers):
            crops = self._quota(rank, world_size, worker, num_workers)
            if crops is None:  # a single-pass stream: its length is not known
                crops = sys.maxsize if partition(self.source.units, rank, world_size, worker, num_workers) else 0
            worker_batches.append(crops // batch_size if drop_last else -(-crops // batch_size))
        taken, next_worker = resume_point(worker_batches, batches)
        role = (slot + next_worker) % num_workers
        return role, taken[role] * batch_size

    def __iter__(self) -> Iterator[torch.Tensor]:
        rank, world_size = resolve_rank(self.rank, self.world_size)
        slot, num_workers = worker_slot()
        worker, replay = self._resume_role(rank, world_size, slot, num_workers)
        quota = self._quota(rank, world_size, worker, num_workers)
        epoch = self.epoch
        rng = np.random.default_rng([self.seed, epoch, rank, worker])
        skipped: Counter = Counter()
        produced, pass_index = 0, 0
        while quota is None or produced < quota:
            order = epoch_order(self.source.units, self.seed, epoch, pass_index, shuffle=True)
            mine = partition(order, rank, world_size, worker, num_workers)
            if not mine:
                break
            produced_before = produced
            for _, image in self.source.read(mine, rng):
                if image is None:
                    skipped["undecodable"] += 1
                    continue
                for _ in range(self.crops_per_image):
                    crop = self.transform(image, rng)
                    if crop is None:
                        skipped["smaller than crop"] += 1
                        break
                    if replay:
                        replay -= 1
                    else:
                        yield crop
                    produced += 1
                    if quota is not None and produced >= quota:
                        break
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
            logger.warning("rank %d worker %d skipped %s in epoch %d", rank, worker, dict(skipped), epoch)


class EvalImages(IterableDataset):
    """Full-resolution (optionally centre-cropped) images in the source's fixed order, split across ranks
    and workers without shuffling. As with torch's DistributedSampler, ranks that come short repeat images
    from the start of the list, so with image files every rank gets the same number of images (and
    batches); shards hold unknown numbers of images, so ranks may differ there. Undecodable images are
    skipped (the source logs them)."""

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
    those batches. Without ``progress_fn`` a resume starts the epoch over. Workers may be persistent: the
    dataset passes the epoch and resume position to them through shared memory.
    """

    def __init__(
        self,
        dataset: TrainCrops,
        *args: Any,
        epoch_fn: Optional[Callable[[], int]] = None,
        progress_fn: Optional[Callable[[], int]] = None,
        **kwargs: Any,
    ) -> None:
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
