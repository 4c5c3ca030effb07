"""Which part of a source each DDP rank and DataLoader worker reads, and the base class of sources.

Every source is a list of *units* (embedded images, files or shards). For an epoch the list is permuted
with a generator seeded by ``(seed, epoch, pass)``, identical on all ranks, then unit ``i`` goes to rank
``i % world_size`` and, within a rank, to worker ``(i // world_size) % num_workers``. The parts cover
the whole list; when it does not divide evenly over the ranks, the ranks that come short take units from
its start again (the only overlap), so every rank has the same number.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from typing import Iterator, List, Optional, Sequence, Tuple, TypeVar

import numpy as np
import torch
from PIL import Image

T = TypeVar("T")


def resolve_rank(rank: Optional[int] = None, world_size: Optional[int] = None) -> Tuple[int, int]:
    """Explicit values first, then an initialised torch.distributed group, then ``RANK``/``WORLD_SIZE``."""
    if rank is not None and world_size is not None:
        found = (rank, world_size)
    elif torch.distributed.is_available() and torch.distributed.is_initialized():
        found = (torch.distributed.get_rank(), torch.distributed.get_world_size())
    else:
        found = (int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)))
    if not 0 <= found[0] < found[1]:
        raise ValueError(f"rank {found[0]} is outside world size {found[1]}")
    return found


def worker_slot() -> Tuple[int, int]:
    """(worker id, number of workers) of the current DataLoader worker; (0, 1) in the main process."""
    info = torch.utils.data.get_worker_info()
    return (0, 1) if info is None else (info.id, info.num_workers)


def rank_units(units: Sequence[T], rank: int, world_size: int) -> List[T]:
    """This rank's units: every ``world_size``-th, the list wrapped around (as torch's DistributedSampler
    pads) so every rank gets ``ceil(len(units) / world_size)``, also ranks beyond the number of units."""
    per_rank = -(-len(units) // world_size)
    return [units[i % len(units)] for i in range(rank, per_rank * world_size, world_size)]


def partition(units: Sequence[T], rank: int, world_size: int, worker: int, num_workers: int) -> List[T]:
    """This rank's and worker's units: rank-strided (padded, see :func:`rank_units`), then worker-strided."""
    return rank_units(units, rank, world_size)[worker::num_workers]


def epoch_order(units: Sequence[T], seed: int, epoch: int, pass_index: int, shuffle: bool) -> List[T]:
    """The units in this epoch's order; the same on every rank for the same (seed, epoch, pass)."""
    if not shuffle:
        return list(units)
    permutation = np.random.default_rng([seed, epoch, pass_index]).permutation(len(units))
    return [units[i] for i in permutation]


class ImageSource(ABC):
    """A list of units that decode to images. Subclasses implement ``read`` for a list of their units.

    ``read`` yields ``(key, image)`` pairs; ``image`` is None for a unit that could not be decoded, so the
    caller can count it instead of stopping.
    """

    units: Sequence
    #: images in each unit (1 for a file); None where it is unknown until read (a shard)
    images_per_unit: Optional[int] = 1

    def __len__(self) -> int:
        return len(self.units)

    @abstractmethod
    def read(self, units: Sequence, rng: np.random.Generator) -> Iterator[Tuple[str, Optional[Image.Image]]]:
        """Decode the given units (this worker's part) in order, or in a buffered shuffle for streams."""
