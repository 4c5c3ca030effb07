"""Every DDP rank gets the same number of batches per epoch (training and validation), whatever the unit
counts; several crops per decoded image; decoded-image caching. Ranks and workers are simulated in one
process, batching each worker's items as a DataLoader does, plus one check through real loader workers."""

from __future__ import annotations

import io
from pathlib import Path
from typing import List

import pytest
import torch
import webdataset as wds
from PIL import Image
from torch.utils.data import DataLoader

import multirealism.data.datasets as datasets
import multirealism.data.folder as folder
from multirealism.data import DataSourceError, MultiRealismDataModule
from test_data_sources import colour, crop_index, fit_epochs, save_natural, write_colour_shards


def write_colour_folder(root: Path, count: int) -> str:
    for index in range(count):
        Image.new("RGB", (72, 64), colour(index)).save(root / f"img{index:03d}.png")
    return str(root)


def write_uneven_shards(root: Path, sizes: List[int]) -> str:
    """Shards holding ``sizes[s]`` solid-colour images each."""
    index = 0
    for s, size in enumerate(sizes):
        with wds.TarWriter(str(root / f"uneven-{s:06d}.tar"), encoder=False) as writer:
            for _ in range(size):
                buffer = io.BytesIO()
                Image.new("RGB", (48, 40), colour(index)).save(buffer, format="PNG")
                writer.write({"__key__": f"img{index:04d}", "png": buffer.getvalue()})
                index += 1
    return str(root)


def simulated_batches(dataset, num_workers: int, batch_size: int, drop_last: bool, monkeypatch) -> List[int]:
    """Batches each worker of a DataLoader over ``dataset`` delivers (each worker batches its own items)."""
    counts = []
    for worker in range(max(1, num_workers)):
        monkeypatch.setattr(datasets, "worker_slot", lambda w=worker: (w, max(1, num_workers)))
        items = sum(1 for _ in dataset)
        counts.append(items // batch_size if drop_last else -(-items // batch_size))
    return counts


def rank_batches(tmp_path: Path, spec: str, world_size: int, num_workers: int, monkeypatch, **options) -> List[int]:
    """Training batches per rank of ``world_size`` for a datamodule over ``spec``."""
    totals = []
    for rank in range(world_size):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", str(world_size))
        dm = MultiRealismDataModule(train=spec, val=None, crop_size=32, num_workers=num_workers, shuffle_buffer=3,
                                    **options)
        loader = dm.train_dataloader()
        totals.append(sum(simulated_batches(loader.dataset, num_workers, loader.batch_size, True, monkeypatch)))
    return totals


def test_issue_example_gives_eight_batches_on_each_of_eight_ranks(tmp_path, monkeypatch):
    """epoch_length 512, 8 ranks, 4 workers, batch 8, over 27 shards of 1 to 3 images: 8 batches per rank
    (quotas in crops gave ranks with three busy workers 22 + 21 + 21 crops, i.e. 6 batches)."""
    spec = write_uneven_shards(tmp_path, [1 + i % 3 for i in range(27)])
    batches = rank_batches(tmp_path, spec, 8, 4, monkeypatch, epoch_length=512, batch_size=8)
    assert batches == [8] * 8


@pytest.mark.parametrize(
    "source, world_size, num_workers, batch_size, options, expected",
    [
        ("folder5", 3, 2, 2, {}, 1),  # one pass: 2 images per rank (one repeated on rank 2)
        ("folder5", 2, 3, 2, {"crops_per_image": 3}, 4),  # 3 images x 3 crops = 9 crops -> 4 whole batches
        ("folder5", 4, 0, 3, {"epoch_length": 40}, 3),  # 10 crops per rank -> 3 batches
        ("folder2", 4, 2, 2, {"epoch_length": 16}, 2),  # more ranks than images: ranks 2, 3 repeat them
        ("shards", 3, 2, 3, {"epoch_length": 30}, 3),  # 2 shards for 3 ranks
    ],
)
def test_every_rank_runs_the_same_number_of_batches(
    tmp_path, monkeypatch, source, world_size, num_workers, batch_size, options, expected
):
    if source == "shards":
        spec = write_uneven_shards(tmp_path, [5, 1])
    else:
        spec = write_colour_folder(tmp_path, int(source[len("folder"):]))
    batches = rank_batches(tmp_path, spec, world_size, num_workers, monkeypatch, batch_size=batch_size, **options)
    assert batches == [expected] * world_size


def test_validation_ranks_get_the_same_number_of_batches(tmp_path, monkeypatch):
    spec = write_colour_folder(tmp_path, 5)
    seen, batches = [], []
    for rank in range(3):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "3")
        dm = MultiRealismDataModule(train=spec, val=spec, num_workers=2, val_batch_size=1, val_crop=32)
        dataset = dm.val_dataloader().dataset
        batches.append(sum(simulated_batches(dataset, 2, 1, False, monkeypatch)))
        monkeypatch.setattr(datasets, "worker_slot", lambda: (0, 1))
        seen += [crop_index(image) for image in dataset]
    assert batches == [2, 2, 2]
    assert sorted(set(seen)) == list(range(5)) and len(seen) == 6  # one image repeated to pad rank 2


def test_streaming_shards_over_ranks_without_epoch_length_is_refused(tmp_path, monkeypatch):
    write_colour_shards(tmp_path, shards=3, per_shard=2)
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(DataSourceError, match="needs epoch_length"):
        MultiRealismDataModule(train=str(tmp_path), val=None, num_workers=0).train_dataloader()


def test_real_workers_deliver_equal_batches_per_rank(tmp_path, monkeypatch):
    spec = write_colour_folder(tmp_path, 7)
    counts = []
    for rank in range(2):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "2")
        dm = MultiRealismDataModule(train=spec, val=None, crop_size=32, batch_size=2, num_workers=3,
                                    crops_per_image=2)
        batches = list(dm.train_dataloader())
        assert all(b.shape == (2, 3, 32, 32) for b in batches)
        counts.append(len(batches))
    assert counts == [4, 4]  # 4 images x 2 crops per rank (rank 1 repeats one image)


def test_crops_per_image_decodes_once_per_crops_and_cache_once_per_file(tmp_path, monkeypatch):
    spec = write_colour_folder(tmp_path, 3)
    decoded: List[str] = []
    original = folder.decode_image
    monkeypatch.setattr(folder, "decode_image", lambda path: decoded.append(str(path)) or original(path))

    dm = MultiRealismDataModule(train=spec, val=None, crop_size=32, batch_size=4, num_workers=0,
                                epoch_length=12, crops_per_image=4)
    crops = torch.cat(list(dm.train_dataloader()))
    indices = [crop_index(c) for c in crops]
    assert len(decoded) == 3 and len(indices) == 12
    assert all(len(set(indices[i : i + 4])) == 1 for i in range(0, 12, 4))  # 4 crops of each decoded image

    decoded.clear()
    cached = MultiRealismDataModule(train=spec, val=None, crop_size=32, batch_size=4, num_workers=0,
                                    epoch_length=24, crops_per_image=2, cache_images=True)
    loader = cached.train_dataloader()
    first, second = torch.cat(list(loader)), torch.cat(list(loader))
    assert len(first) == len(second) == 24 and not torch.equal(first, second)  # new crops each epoch
    assert sorted(decoded) == sorted(str(p) for p in sorted(tmp_path.glob("*.png")))  # each file once


def test_mid_epoch_resume_is_exact_with_several_crops_per_cached_image(tmp_path):
    """A folder, one pass per epoch (5 images x 3 crops -> 7 batches of 2), two persistent workers."""
    for name in ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field"):
        save_natural(tmp_path / "images" / f"{name}.png", name, 64, "PNG")
    run = dict(num_workers=2, epoch_length=None, train=str(tmp_path / "images"), crops_per_image=3,
               cache_images=True)
    _, uninterrupted = fit_epochs(2, tmp_path / "a", **run)
    fit_epochs(1, tmp_path / "b", save_every=3, **run)
    _, resumed = fit_epochs(2, tmp_path / "c", str(tmp_path / "b" / "ckpt" / "epoch=0-step=3.ckpt"), **run)
    assert len(uninterrupted) == len(set(uninterrupted)) == 14
    assert resumed == uninterrupted[3:]


def test_workers_persist_and_batches_are_pinned_only_for_cuda_training():
    from types import SimpleNamespace

    from lightning.pytorch.accelerators import CPUAccelerator, CUDAAccelerator

    dm = MultiRealismDataModule(crop_size=32, batch_size=2, num_workers=2, epoch_length=4, val_crop=32)
    options = {}
    for name, accelerator in (("cpu", CPUAccelerator()), ("cuda", CUDAAccelerator())):
        dm.trainer = SimpleNamespace(accelerator=accelerator, global_rank=0, world_size=1, current_epoch=0)
        options[name] = [(loader.persistent_workers, loader.pin_memory)
                         for loader in (dm.train_dataloader(), dm.val_dataloader())]
    assert options == {"cpu": [(True, False)] * 2, "cuda": [(True, True)] * 2}
    assert not MultiRealismDataModule(num_workers=0, epoch_length=4).train_dataloader().persistent_workers
