"""Folder, samples and local-shard sources through the datamodule and the rank/worker split."""

from __future__ import annotations

import io
import logging
import warnings
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ModelCheckpoint
import numpy as np
import pytest
import torch
import webdataset as wds
from PIL import Image
from torch.utils.data import DataLoader

from multirealism.data import DataSourceError, MultiRealismDataModule
from multirealism.data.datasets import TrainCrops, resume_point, worker_quota
from multirealism.data.streaming import ShardSource, resolve_shards
from multirealism.data.transforms import RandomCropFlip
from helpers import natural_image


def save_natural(path: Path, name: str, size: int, fmt: str) -> None:
    array = (natural_image(name, size).permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format=fmt)


def colour(index: int) -> tuple:
    return (10 * index, 255 - 10 * index, 128)


def write_colour_shards(root: Path, shards: int, per_shard: int) -> List[str]:
    """Shards of solid-colour PNGs; a crop's colour tells which sample it came from."""
    paths = []
    for s in range(shards):
        path = root / f"part-{s:06d}.tar"
        with wds.TarWriter(str(path), encoder=False) as writer:
            for i in range(per_shard):
                index = s * per_shard + i
                buffer = io.BytesIO()
                Image.new("RGB", (48, 40), colour(index)).save(buffer, format="PNG")
                writer.write({"__key__": f"img{index:04d}", "png": buffer.getvalue()})
        paths.append(str(path))
    return paths


def crop_index(crop: torch.Tensor) -> int:
    return int(round(float(crop[0].mean()) * 255 / 10))


def test_folder_skips_and_counts_corrupt_and_tiny_files(tmp_path, caplog):
    save_natural(tmp_path / "a.png", "astronaut", 96, "PNG")
    save_natural(tmp_path / "nested" / "b.jpg", "coffee", 80, "JPEG")
    save_natural(tmp_path / "c.webp", "chelsea", 72, "WEBP")
    (tmp_path / "corrupt.jpg").write_bytes(b"\xff\xd8 this is not a jpeg")
    Image.new("RGB", (8, 8)).save(tmp_path / "tiny.png")
    (tmp_path / "notes.txt").write_text("ignored")
    dm = MultiRealismDataModule(train=str(tmp_path), val=str(tmp_path), crop_size=64, batch_size=2,
                                num_workers=0, val_crop=None, min_size=32)
    with caplog.at_level(logging.WARNING, logger="multirealism.data.folder"):
        dm.setup("fit")
    assert "skipped 2 of 5 image files (1 corrupt, 1 tiny)" in caplog.text
    assert len(dm.sources["train"].units) == 3
    batches = list(dm.train_dataloader())
    assert len(batches) == 1 and batches[0].shape == (2, 3, 64, 64)
    val = list(dm.val_dataloader())
    assert [tuple(v.shape[-2:]) for v in val] == [(96, 96), (72, 72), (80, 80)]  # a.png, c.webp, nested/b.jpg


def test_folder_without_usable_images_is_a_clear_error(tmp_path):
    (tmp_path / "broken.png").write_bytes(b"nope")
    with pytest.raises(DataSourceError, match="no usable images"):
        MultiRealismDataModule(train=str(tmp_path), num_workers=0).setup("fit")


def test_samples_source_yields_epoch_length_crops_with_workers():
    dm = MultiRealismDataModule(crop_size=128, batch_size=4, num_workers=2, epoch_length=24, val_crop=128)
    dm.setup("fit")
    assert {"astronaut", "coffee", "chelsea", "grace_hopper"} <= set(dm.sources["train"].units)
    batches = list(dm.train_dataloader())
    assert len(batches) == 6 and all(b.shape == (4, 3, 128, 128) for b in batches)
    assert all(0 <= float(b.min()) and float(b.max()) <= 1 for b in batches)
    first = [v.clone() for v in dm.val_dataloader()]
    second = list(dm.val_dataloader())
    assert len(first) == len(dm.sources["val"].units)
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))  # fixed order and crops


def test_crop_settings_reach_the_training_crops_and_are_checked_up_front():
    dm = MultiRealismDataModule(crop_size=64, batch_size=2, num_workers=0, epoch_length=4, crop_min_scale=0.5)
    dm.setup("fit")
    assert dm.train_dataset().transform.min_scale == 0.5
    assert all(b.shape == (2, 3, 64, 64) for b in dm.train_dataloader())
    with pytest.raises(ValueError, match="min_scale"):
        MultiRealismDataModule(crop_min_scale=1.5)
    with pytest.raises(ValueError, match="crop_size must be positive, got 0"):
        MultiRealismDataModule(crop_size=0)
    with pytest.raises(ValueError, match="small_image_rule must be one of"):
        MultiRealismDataModule(small_image_rule="pad")


def test_train_crops_are_reproducible_per_seed_and_change_per_epoch():
    def epoch_batches(seed: int, epochs: int) -> List[torch.Tensor]:
        dm = MultiRealismDataModule(crop_size=64, batch_size=4, num_workers=0, epoch_length=8, seed=seed)
        loader = dm.train_dataloader()  # no trainer: the loader counts epochs itself
        return [torch.cat(list(loader)) for _ in range(epochs)]

    run, rerun, other = epoch_batches(0, 2), epoch_batches(0, 2), epoch_batches(1, 1)
    assert torch.equal(run[0], rerun[0]) and torch.equal(run[1], rerun[1])
    assert not torch.equal(run[0], run[1])
    assert not torch.equal(run[0], other[0])


def rank_indices(shards: List[str], rank: int, world_size: int, **kwargs) -> List[int]:
    dataset = TrainCrops(ShardSource(shards, shuffle_buffer=4), RandomCropFlip(32), seed=3,
                         rank=rank, world_size=world_size, **kwargs)
    loader = DataLoader(dataset, batch_size=None, num_workers=2)
    return [crop_index(crop) for crop in loader]


def test_two_ranks_by_two_workers_see_disjoint_samples_covering_all_shards(tmp_path):
    shards = write_colour_shards(tmp_path, shards=8, per_shard=3)
    seen: Dict[int, List[int]] = {rank: rank_indices(shards, rank, 2) for rank in (0, 1)}
    for rank in (0, 1):
        assert len(seen[rank]) == len(set(seen[rank])) == 12  # 4 shards per rank, no sample twice
    assert set(seen[0]).isdisjoint(seen[1])
    assert set(seen[0]) | set(seen[1]) == set(range(24))


def test_epoch_length_gives_every_rank_the_same_number_of_crops(tmp_path):
    shards = write_colour_shards(tmp_path, shards=3, per_shard=2)  # rank 1 has one shard: one busy worker
    counts = [len(rank_indices(shards, rank, 2, epoch_length=20)) for rank in (0, 1)]
    assert counts == [10, 10]
    assert [worker_quota(20, 1, 2, w, 2) for w in (0, 1)] == [10, 0]


def test_local_shard_specs_resolve(tmp_path):
    shards = write_colour_shards(tmp_path, shards=3, per_shard=1)
    assert resolve_shards(str(tmp_path)) == shards
    assert resolve_shards(str(tmp_path / "part-*.tar")) == shards
    assert resolve_shards(str(tmp_path / "part-{000000..000001}.tar")) == shards[:2]
    with pytest.raises(DataSourceError, match="shard not found"):
        resolve_shards(str(tmp_path / "missing.tar"))


class RecordingModule(pl.LightningModule):
    """Records a fingerprint of every training batch."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(1, 1)
        self.fingerprints: List[float] = []

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        self.fingerprints.append(round(float(batch.sum()), 3))
        return self.layer(batch.mean().view(1, 1)).sum()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def fit_epochs(max_epochs: int, tmp_path: Path, ckpt_path: Optional[str] = None, num_workers: int = 0,
               epoch_length: Optional[int] = 4, save_every: Optional[int] = None,
               train: str = "samples", **data_options) -> Tuple[pl.Trainer, List[float]]:
    module = RecordingModule()
    callbacks = [] if save_every is None else [
        ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=save_every, save_top_k=-1)
    ]
    trainer = pl.Trainer(max_epochs=max_epochs, logger=False, enable_checkpointing=save_every is not None,
                         callbacks=callbacks, enable_progress_bar=False, enable_model_summary=False,
                         default_root_dir=tmp_path)
    data = MultiRealismDataModule(train=train, val=None, crop_size=32, batch_size=2, num_workers=num_workers,
                                  epoch_length=epoch_length, shuffle_buffer=4, **data_options)
    trainer.fit(module, datamodule=data, ckpt_path=ckpt_path)
    return trainer, module.fingerprints


def test_resumed_fit_sees_the_epochs_an_uninterrupted_fit_would(tmp_path):
    _, uninterrupted = fit_epochs(3, tmp_path)
    first, _ = fit_epochs(2, tmp_path)
    first.save_checkpoint(tmp_path / "epoch2.ckpt")
    _, resumed = fit_epochs(3, tmp_path, str(tmp_path / "epoch2.ckpt"))
    assert len(uninterrupted) == 6 and len(set(uninterrupted)) == 6  # new crops every epoch
    assert resumed == uninterrupted[4:]


def write_natural_shards(root: Path) -> str:
    """Two shards of three natural images each (streamed through a shuffle buffer)."""
    names = ["astronaut", "coffee", "chelsea", "rocket", "camera", "hubble_deep_field"]
    for s in range(2):
        with wds.TarWriter(str(root / f"nat-{s:06d}.tar"), encoder=False) as writer:
            for name in names[3 * s : 3 * s + 3]:
                buffer = io.BytesIO()
                Image.fromarray((natural_image(name, 64).permute(1, 2, 0).numpy() * 255).astype(np.uint8)).save(
                    buffer, format="PNG"
                )
                writer.write({"__key__": name, "png": buffer.getvalue()})
    return str(root)


@pytest.mark.parametrize(
    "source, num_workers, epoch_length, batches_per_epoch, stop_after",
    [
        ("samples", 0, 8, 4, 1),
        ("samples", 2, 12, 6, 3),
        ("samples", 3, 10, 5, 2),  # 3 workers: 2, 2 and 1 whole batches, two outlast the third
        ("shards", 2, 8, 4, 1),
    ],
)
def test_mid_epoch_resume_continues_with_the_batches_an_uninterrupted_fit_sees(
    tmp_path, source, num_workers, epoch_length, batches_per_epoch, stop_after
):
    train = "samples" if source == "samples" else write_natural_shards(tmp_path)
    run = dict(num_workers=num_workers, epoch_length=epoch_length, train=train)
    _, uninterrupted = fit_epochs(2, tmp_path / "a", **run)
    fit_epochs(1, tmp_path / "b", save_every=stop_after, **run)
    ckpt = tmp_path / "b" / "ckpt" / f"epoch=0-step={stop_after}.ckpt"
    assert torch.load(ckpt, weights_only=True)["loops"]["fit_loop"]["state_dict"]["combined_loader"] == [
        {"epoch": 0, "batches": stop_after}
    ]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, resumed = fit_epochs(2, tmp_path / "c", str(ckpt), **run)
    assert not [w for w in caught if "not resumable" in str(w.message)]
    assert len(set(uninterrupted)) == len(uninterrupted) == 2 * batches_per_epoch
    assert resumed == uninterrupted[stop_after:]


def test_resume_point_follows_the_dataloaders_round_robin():
    assert resume_point([2, 1, 1], 0) == ([0, 0, 0], 0)
    assert resume_point([2, 1, 1], 2) == ([1, 1, 0], 2)
    assert resume_point([2, 1, 1], 3) == ([1, 1, 1], 0)
    assert resume_point([3, 1], 3) == ([2, 1], 1)  # worker 1 is done: worker 0 delivers twice in a row
    assert resume_point([1, 1], 5) == ([1, 1], 0)


def test_second_mid_epoch_resume_in_the_same_epoch_stays_aligned(tmp_path):
    """Interrupted twice in one epoch: the second checkpoint counts all batches of the epoch, not only
    those since the first resume."""
    run = dict(num_workers=2, epoch_length=12, train="samples")
    _, uninterrupted = fit_epochs(2, tmp_path / "a", **run)
    fit_epochs(1, tmp_path / "b", save_every=2, **run)
    fit_epochs(1, tmp_path / "c", str(tmp_path / "b" / "ckpt" / "epoch=0-step=2.ckpt"), save_every=2, **run)
    ckpt = tmp_path / "c" / "ckpt" / "epoch=0-step=4.ckpt"
    assert torch.load(ckpt, weights_only=True)["loops"]["fit_loop"]["state_dict"]["combined_loader"] == [
        {"epoch": 0, "batches": 4}
    ]
    _, resumed = fit_epochs(2, tmp_path / "d", str(ckpt), **run)
    assert resumed == uninterrupted[4:]
