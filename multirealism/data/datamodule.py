"""``MultiRealismDataModule``: training crops and evaluation images from samples, folders or shards."""

from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional, Tuple, Union

import lightning.pytorch as pl
from lightning.pytorch.accelerators import CUDAAccelerator
from torch.utils.data import DataLoader

from multirealism.data.datasets import EpochDataLoader, EvalImages, TrainCrops
from multirealism.data.errors import DataSourceError
from multirealism.data.folder import FolderSource, scan_folder
from multirealism.data.samples import SampleSource, available_samples, load_sample
from multirealism.data.sharding import ImageSource, resolve_rank
from multirealism.data.streaming import ShardSource, is_shard_spec, resolve_shards
from multirealism.data.transforms import RandomCropFlip

logger = logging.getLogger(__name__)

SAMPLES = "samples"  # the spec naming the embedded photographs; the canonical one (evaluation imports it)
DEFAULT_MIN_SIZE = 64
DEFAULT_SAMPLES_EPOCH_LENGTH = 512
STAGE_SOURCES = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",)}


def _batches_trained(trainer: pl.Trainer) -> int:
    """Batches of the current epoch the trainer has run its training step on (kept in its checkpoints)."""
    return trainer.fit_loop.epoch_loop.batch_progress.current.processed


class MultiRealismDataModule(pl.LightningDataModule):
    """Training crops and full-resolution evaluation images for multi-realism codecs.

    Each of ``train``, ``val`` and ``test`` names a source:

    - ``"samples"``: the natural photographs shipped by scikit-image (and matplotlib, scikit-learn if
      installed); needs no download. Training on it needs ``epoch_length`` (default 512 crops).
    - a local folder: recursive jpg/png/webp; corrupt files and files whose shorter side is below
      ``min_size`` are skipped and the counts logged.
    - shards in webdataset format: ``s3://bucket/prefix/shard-{000000..000009}.tar``, ``s3://bucket/prefix/``,
      ``https://host/shard-{0..9}.tar``, a local glob of ``.tar`` files, or a local directory holding them.
      S3 endpoint/credentials come from ``storage_options`` (``endpoint_url``, ``region_name``,
      ``aws_access_key_id``, ``aws_secret_access_key``, ``aws_session_token``, ``anon``) or boto3's
      environment (``AWS_ENDPOINT_URL``, ...).

    Training batches are float tensors (B, 3, crop_size, crop_size) in [0, 1]: ``crops_per_image``
    random crops, each randomly flipped horizontally, per decoded image, decoded and cropped in the
    DataLoader workers (several crops per decode: a 1280-px PNG takes far longer to decode than to crop).
    ``cache_images`` keeps the decoded training images of a folder in each worker's memory.
    ``crop_min_scale < 1`` takes each crop at a random scale down to that factor (see ``RandomCropFlip``). Images whose
    shorter side is below ``crop_size`` follow ``small_image_rule``: ``"resize"`` upsamples the shorter side to
    ``crop_size`` (bicubic, aspect kept), ``"skip"`` leaves them out. Units (images or shards) are split
    across DDP ranks and loader workers into disjoint parts covering the whole source, in a new order each
    epoch derived from ``seed`` and the epoch number. ``epoch_length`` fixes the crops per epoch over all
    ranks (default for folders: one pass, ``crops_per_image`` crops per image). Every rank runs the same
    number of whole batches per epoch, whatever the unit counts; shards over several ranks need
    ``epoch_length``. Loader workers persist across epochs; batches are pinned when training on CUDA.

    Validation and test yield images in a fixed order, full resolution or centre-cropped to ``val_crop``
    (None: whole images, which requires ``val_batch_size`` 1). As with torch's DistributedSampler, ranks
    short of images repeat some, so every rank runs the same number of batches (shards: same shard count).

    Resuming: the epoch order is a function of (seed, epoch) and the trainer restores its epoch, so epochs
    after a resume are the ones an uninterrupted run would have seen. A checkpoint taken mid-epoch also
    records how many batches of the epoch were trained on; the resumed run replays that part of the
    stream in its workers (decoding without yielding: webdataset streams carry no seekable position) and
    continues with the batches an uninterrupted run would have seen next, in the same order. Exact for
    samples, folders, and shards with ``epoch_length``.
    """

    def __init__(
        self,
        train: str = SAMPLES,
        val: str = SAMPLES,
        test: Optional[str] = None,
        crop_size: int = 256,
        batch_size: int = 8,
        val_batch_size: int = 1,
        val_crop: Optional[int] = 256,
        num_workers: int = 2,
        shuffle_buffer: int = 1000,
        min_size: Optional[int] = None,
        small_image_rule: str = "resize",
        epoch_length: Optional[int] = None,
        seed: int = 0,
        storage_options: Optional[Dict[str, Any]] = None,
        crops_per_image: int = 1,
        cache_images: bool = False,
        crop_min_scale: float = 1.0,
    ) -> None:
        super().__init__()
        #: built first, so a bad crop size, small-image rule or scale fails at construction (with the
        #: transform's own messages) rather than in a loader worker
        self.train_transform = RandomCropFlip(crop_size, small_image_rule, crop_min_scale)
        if val_crop is None and val_batch_size != 1:
            raise ValueError("full-resolution evaluation (val_crop=None) needs val_batch_size=1")
        for name, value in (("batch_size", batch_size), ("val_batch_size", val_batch_size),
                            ("crops_per_image", crops_per_image)):
            if value < 1:
                raise ValueError(f"{name} must be positive, got {value}")
        if num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {num_workers}")
        self.save_hyperparameters()
        self.specs: Dict[str, Optional[str]] = {"train": train, "val": val, "test": test}
        self.crop_size, self.batch_size, self.val_batch_size = crop_size, batch_size, val_batch_size
        self.val_crop, self.num_workers, self.shuffle_buffer = val_crop, num_workers, shuffle_buffer
        self.min_size = DEFAULT_MIN_SIZE if min_size is None else min_size
        self.small_image_rule, self.epoch_length, self.seed = small_image_rule, epoch_length, seed
        self.storage_options = dict(storage_options or {})
        self.crops_per_image, self.cache_images = crops_per_image, cache_images
        self.sources: Dict[str, ImageSource] = {}

    def build_source(self, spec: str, training: bool) -> ImageSource:
        """The source a spec names; training sources drop images the ``skip`` rule would never crop."""
        min_size = self.min_size
        if training and self.small_image_rule == "skip":
            min_size = max(min_size, self.crop_size)
        if spec == SAMPLES:
            names = [n for n in available_samples() if min(load_sample(n).size) >= min_size]
            return SampleSource(names)
        if is_shard_spec(spec):
            urls = resolve_shards(spec, self.storage_options)
            logger.info("%s: %d shards", spec, len(urls))
            return ShardSource(urls, self.storage_options, self.shuffle_buffer if training else 0)
        return FolderSource(scan_folder(spec, min_size).files, cache=training and self.cache_images)

    def setup(self, stage: Optional[str] = None) -> None:
        """Resolve (scan, list) the sources the stage uses; scanning happens once per process."""
        for name in STAGE_SOURCES.get(stage or "", ("train", "val", "test")):
            if self.specs[name] is not None:
                self._source(name)

    def _rank(self) -> Tuple[int, int]:
        if self.trainer is not None:
            return self.trainer.global_rank, self.trainer.world_size
        return resolve_rank()

    def _source(self, name: str) -> ImageSource:
        if name not in self.sources:
            spec = self.specs[name]
            if spec is None:
                raise DataSourceError(f"no {name} source configured: set MultiRealismDataModule({name}=...)")
            self.sources[name] = self.build_source(spec, training=name == "train")
        return self.sources[name]

    def train_dataset(self) -> TrainCrops:
        source = self._source("train")
        epoch_length = self.epoch_length
        if epoch_length is None and isinstance(source, SampleSource):
            epoch_length = DEFAULT_SAMPLES_EPOCH_LENGTH
        rank, world_size = self._rank()
        if world_size > 1 and epoch_length is None and isinstance(source, ShardSource):
            raise DataSourceError(
                f"streaming shards over {world_size} ranks needs epoch_length: shards hold unknown numbers of "
                "images, so ranks would run different numbers of steps and DDP would stall"
            )
        return TrainCrops(source, self.train_transform, self.seed, epoch_length, rank, world_size, self.batch_size,
                          self.crops_per_image)

    def _loader_options(self) -> Dict[str, Any]:
        """Workers that live for the whole run, and pinned batches when a CUDA device trains."""
        trainer = self.trainer
        return {
            "num_workers": self.num_workers,
            "persistent_workers": self.num_workers > 0,
            "pin_memory": trainer is not None and isinstance(trainer.accelerator, CUDAAccelerator),
        }

    def train_dataloader(self) -> DataLoader:
        trainer = self.trainer
        return EpochDataLoader(
            self.train_dataset(),
            batch_size=self.batch_size,
            drop_last=True,
            epoch_fn=None if trainer is None else lambda: trainer.current_epoch,
            progress_fn=None if trainer is None else lambda: _batches_trained(trainer),
            **self._loader_options(),
        )

    def _eval_dataloader(self, name: str) -> DataLoader:
        rank, world_size = self._rank()
        dataset = EvalImages(self._source(name), self.val_crop, rank, world_size)
        return DataLoader(dataset, batch_size=self.val_batch_size, **self._loader_options())

    def val_dataloader(self) -> Union[DataLoader, List[DataLoader]]:
        """The validation loader; an empty list (no validation) when ``val`` is None."""
        return [] if self.specs["val"] is None else self._eval_dataloader("val")

    def test_dataloader(self) -> DataLoader:
        return self._eval_dataloader("test")
