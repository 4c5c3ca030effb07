"""Loader throughput (training crops per second) of the folder and streaming sources on this machine.

Builds a synthetic OpenImages-like set (JPEGs of about 1024x768 made from the embedded sample photos),
then times ``MultiRealismDataModule``'s training loader over it as a local folder, as local webdataset
shards, and as shards on a loopback S3 server (moto), with 0 and 2 workers. For scale it also times one
training step of the tiny codec (rate + MSE, Adam) at the same batch size: the loader should deliver at
least 3x the training images/s. Throughput excludes the first batch (worker start-up).

A second table times the folder loader over ~1280-px PNG and JPEG photos (as a small model trains on, at
128x128 crops, where ~50 crops/s is the training rate on 2 cores): one crop per decoded image (the old
behaviour), ``crops_per_image`` crops per decode, and ``cache_images`` (decoded once per worker; the
warm row is the second epoch, whose persistent workers kept their cache). Target: >= 100 crops/s.

    .venv/bin/python benchmarks/loader_speed.py [--images 48] [--crops 192] [--batch-size 8]
    .venv/bin/python benchmarks/loader_speed.py --only-large [--large-images 12] [--large-crops 256]
"""

from __future__ import annotations

import argparse
import io
import os
import socket
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import torch
import webdataset as wds
from PIL import Image

from multirealism.data import MultiRealismDataModule
from multirealism.data.samples import available_samples, load_sample
from multirealism.data.storage import s3_client


def synthetic_jpegs(count: int, size=(1024, 768)) -> List[bytes]:
    """``count`` JPEGs (quality 90) resized from the embedded photos, with varied crops."""
    names = available_samples()
    rng = np.random.default_rng(0)
    out = []
    for i in range(count):
        image = load_sample(names[i % len(names)])
        w, h = image.size
        cw, ch = int(w * rng.uniform(0.6, 1.0)), int(h * rng.uniform(0.6, 1.0))
        left, top = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        image = image.crop((left, top, left + cw, top + ch)).resize(size, Image.Resampling.BICUBIC)
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=90)
        out.append(buffer.getvalue())
    return out


def write_dataset(root: Path, jpegs: List[bytes], per_shard: int) -> None:
    (root / "folder").mkdir(parents=True)
    (root / "shards").mkdir()
    for i, data in enumerate(jpegs):
        (root / "folder" / f"{i:05d}.jpg").write_bytes(data)
    for s in range(0, len(jpegs), per_shard):
        with wds.TarWriter(str(root / "shards" / f"bench-{s // per_shard:06d}.tar"), encoder=False) as writer:
            for i in range(s, min(s + per_shard, len(jpegs))):
                writer.write({"__key__": f"{i:05d}", "jpg": jpegs[i]})


def epoch_rate(loader: torch.utils.data.DataLoader) -> float:
    """Crops/s of one epoch of ``loader``; worker start-up and the first batch are not counted."""
    iterator = iter(loader)
    next(iterator)
    start, crops = time.perf_counter(), 0
    for batch in iterator:
        crops += batch.shape[0]
    return crops / (time.perf_counter() - start)


def crops_per_second(spec: str, workers: int, args: argparse.Namespace, options: Optional[dict] = None) -> float:
    dm = MultiRealismDataModule(train=spec, crop_size=args.crop_size, batch_size=args.batch_size,
                                num_workers=workers, epoch_length=args.crops, shuffle_buffer=100,
                                storage_options=options)
    dm.setup("fit")
    return epoch_rate(dm.train_dataloader())


def large_photo_folders(root: Path, count: int) -> Dict[str, Path]:
    """``count`` photos 1280x853 as PNG and as JPEG (quality 90), upscaled from the embedded samples."""
    names = available_samples()
    folders = {"PNG": root / "large-png", "JPEG": root / "large-jpeg"}
    for folder in folders.values():
        folder.mkdir(parents=True)
    for i in range(count):
        image = load_sample(names[i % len(names)]).resize((1280, 853), Image.Resampling.BICUBIC)
        if i // len(names) % 2:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)  # no two files alike
        image.save(folders["PNG"] / f"{i:05d}.png")
        image.save(folders["JPEG"] / f"{i:05d}.jpg", quality=90)
    return folders


def large_photo_rows(root: Path, args: argparse.Namespace) -> None:
    """The folder loader at 128x128 crops over ~1280-px photos, per decode strategy and worker count."""
    folders = large_photo_folders(root, args.large_images)
    workers = [int(w) for w in args.workers.split(",")]
    setups = [("1 crop/decode", 1, False), (f"{args.crops_per_image} crops/decode", args.crops_per_image, False),
              ("cache, epoch 1", 1, True), ("cache, epoch 2", 1, True)]
    print(f"\n{args.large_images} photos 1280x853 per format, crop 128, batch {args.batch_size}, "
          f"{args.large_crops} crops per epoch, load average {os.getloadavg()[0]:.1f}")
    print(f"{'folder':<8}{'decoding':<20}" + "".join(f"{f'{w} workers':>14}" for w in workers) + "   (crops/s)")
    for fmt, folder in folders.items():
        rates: Dict[str, List[float]] = {label: [] for label, _, _ in setups}
        for w in workers:
            for label, crops_per_image, cache in setups[:3]:
                dm = MultiRealismDataModule(train=str(folder), val=None, crop_size=128, batch_size=args.batch_size,
                                            num_workers=w, epoch_length=args.large_crops,
                                            crops_per_image=crops_per_image, cache_images=cache)
                loader = dm.train_dataloader()
                rates[label].append(epoch_rate(loader))
                if cache:
                    rates["cache, epoch 2"].append(epoch_rate(loader))
        for label, values in rates.items():
            print(f"{fmt:<8}{label:<20}" + "".join(f"{rate:>14.1f}" for rate in values))


def training_images_per_second(args: argparse.Namespace, steps: int = 3) -> float:
    """Images/s of tiny-codec training steps (rate + 150*MSE, Adam): an upper bound of real training speed,
    which also pays for LPIPS and the discriminator."""
    from multirealism import MultiRealismCodec
    from multirealism.zoo import tiny_config

    torch.manual_seed(0)
    codec = MultiRealismCodec.from_config(tiny_config()).train()
    optimizer = torch.optim.Adam(codec.parameters(), lr=1e-4)
    x = torch.rand(args.batch_size, 3, args.crop_size, args.crop_size)
    beta = torch.rand(args.batch_size) * codec.beta_max

    def step() -> None:
        out = codec(x, beta)
        loss = out.bpp.mean() + 150 * (out.x_hat - x).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * args.batch_size / (time.perf_counter() - start)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--per-shard", type=int, default=12)
    parser.add_argument("--crops", type=int, default=192, help="crops per timed epoch")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--crop-size", type=int, default=256)
    parser.add_argument("--workers", default="0,2")
    parser.add_argument("--large-images", type=int, default=12, help="~1280-px photos per format")
    parser.add_argument("--large-crops", type=int, default=256, help="128x128 crops per timed epoch")
    parser.add_argument("--crops-per-image", type=int, default=8)
    parser.add_argument("--only-large", action="store_true", help="only the ~1280-px folder table")
    args = parser.parse_args()
    if args.only_large:
        with tempfile.TemporaryDirectory() as tmp:
            large_photo_rows(Path(tmp), args)
        return
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    for name, value in {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        os.environ.setdefault(name, value)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            jpegs = synthetic_jpegs(args.images)
            write_dataset(root, jpegs, args.per_shard)
            client = s3_client({"endpoint_url": endpoint})
            client.create_bucket(Bucket="bench")
            for shard in sorted((root / "shards").glob("*.tar")):
                client.put_object(Bucket="bench", Key=f"shards/{shard.name}", Body=shard.read_bytes())
            sources: Dict[str, tuple] = {
                "folder": (str(root / "folder"), None),
                "shards (local)": (str(root / "shards"), None),
                "shards (loopback S3)": ("s3://bench/shards/", {"endpoint_url": endpoint}),
            }
            workers = [int(w) for w in args.workers.split(",")]
            print(f"{args.images} JPEGs 1024x768 (mean {np.mean([len(j) for j in jpegs]) / 1024:.0f} KiB), "
                  f"crop {args.crop_size}, batch {args.batch_size}, {args.crops} crops per epoch, "
                  f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
            print(f"{'source':<22}" + "".join(f"{f'{w} workers':>14}" for w in workers) + "   (crops/s)")
            for name, (spec, options) in sources.items():
                rates = [crops_per_second(spec, w, args, options) for w in workers]
                print(f"{name:<22}" + "".join(f"{rate:>14.1f}" for rate in rates))
            large_photo_rows(root, args)
        train = training_images_per_second(args)
        print(f"tiny codec training step (rate+MSE, Adam, batch {args.batch_size}): {train:.1f} images/s")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
