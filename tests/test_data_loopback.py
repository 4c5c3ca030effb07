"""End to end against loopback servers: OpenImages preparation from a moto S3 server holding real sample
images in the CVDF layout, shards written to another bucket, streamed back through the datamodule; the
same shards over HTTP; interrupted and resumed preparation."""

from __future__ import annotations

import argparse
import functools
import http.server
import io
import json
import socket
import tarfile
import threading
from typing import Dict, Iterator, List

import numpy as np
import pytest
from matplotlib import cbook
from PIL import Image

from multirealism.data import MultiRealismDataModule
from multirealism.cli import data_commands as data_cli
from multirealism.data.openimages import OpenImagesPreparer, prepare_openimages
from multirealism.data.errors import DataSourceError
from multirealism.data.storage import Storage, s3_client
from helpers import natural_image

SOURCE_BUCKET = "open-images-dataset"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server on 127.0.0.1; AWS_* variables point boto3 (and loader workers) at it."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    with pytest.MonkeyPatch.context() as env:
        for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                            "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint}.items():
            env.setenv(name, value)
        s3_client({"endpoint_url": endpoint}).create_bucket(Bucket="shards")
        yield endpoint
    server.stop()


def jpeg_bytes(name: str, size: int) -> bytes:
    array = (natural_image(name, size).permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def openimages_fixture() -> Dict[str, bytes]:
    """Five usable photographs, one too small, one PNG posing as .jpg, keyed by OpenImages-style IDs."""
    with cbook.get_sample_data("grace_hopper.jpg") as stream:
        hopper = stream.read()
    png = io.BytesIO()
    Image.new("RGB", (300, 300), (1, 2, 3)).save(png, format="PNG")
    return {
        "000a1249af2bc5f0": hopper,
        "000b2cd1e5f61a02": jpeg_bytes("astronaut", 320),
        "001c3d5e6f7a8b93": jpeg_bytes("coffee", 288),
        "002d4e6f708192a4": jpeg_bytes("chelsea", 272),
        "003e5f708192a3b5": jpeg_bytes("rocket", 300),
        "004f60718293a4c6": jpeg_bytes("astronaut", 100),  # too small
        "005a71829304b5d7": png.getvalue(),  # not a JPEG
    }


def make_source(endpoint: str, bucket: str, ids_key: str) -> Dict[str, bytes]:
    """Public-read objects at ``<bucket>/train/<ImageID>.jpg`` and an ID CSV (with a missing ID and a
    validation row) at ``s3://meta/<ids_key>``."""
    client = s3_client({"endpoint_url": endpoint})
    client.create_bucket(Bucket=bucket)
    images = openimages_fixture()
    for image_id, data in images.items():
        client.put_object(Bucket=bucket, Key=f"train/{image_id}.jpg", Body=data, ACL="public-read")
    rows = ["ImageID,Subset,OriginalURL,Rotation"]
    rows += [f"{image_id},train,https://example.invalid/{image_id}.jpg,0.0" for image_id in images]
    rows += ["00ffffffffffffff,train,https://example.invalid/missing.jpg,", "0100000000000000,validation,x,0.0"]
    if "meta" not in [b["Name"] for b in client.list_buckets()["Buckets"]]:
        client.create_bucket(Bucket="meta")
    client.put_object(Bucket="meta", Key=ids_key, Body=("\n".join(rows) + "\n").encode())
    return images


def shard_members(endpoint: str, url: str) -> Dict[str, bytes]:
    bucket, _, key = url[len("s3://"):].partition("/")
    body = s3_client({"endpoint_url": endpoint}).get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}


def run_cli(argv: List[str]) -> int:
    parser = argparse.ArgumentParser()
    data_cli.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.mark.slow
def test_prepare_openimages_to_s3_then_stream_back(s3_endpoint, capsys):
    images = make_source(s3_endpoint, SOURCE_BUCKET, "train-ids.csv")
    code = run_cli(["data", "openimages", "--out", "s3://shards/oi", "--max-images", "50", "--split", "train",
                    "--ids-file", "s3://meta/train-ids.csv", "--source-url", f"s3://{SOURCE_BUCKET}",
                    "--source-endpoint-url", s3_endpoint, "--endpoint-url", s3_endpoint,
                    "--min-size", "256", "--shard-size", "2", "--workers", "4"])
    assert code == 0
    assert "3 shards / 5 images in total" in capsys.readouterr().out
    manifest = json.loads(s3_client().get_object(Bucket="shards", Key="oi/manifest.json")["Body"].read())
    assert [s["name"] for s in manifest["shards"]] == ["train-000000.tar", "train-000001.tar", "train-000002.tar"]
    assert manifest["rejected"] == {"004f60718293a4c6": "too_small", "005a71829304b5d7": "not_jpeg",
                                    "00ffffffffffffff": "missing"}
    first = shard_members(s3_endpoint, "s3://shards/oi/train-000000.tar")
    assert first["000a1249af2bc5f0.jpg"] == images["000a1249af2bc5f0"]  # original bytes, not re-encoded
    assert json.loads(first["000a1249af2bc5f0.json"]) == {"width": 512, "height": 600, "rotation": 0}

    dm = MultiRealismDataModule(train="s3://shards/oi/", val="s3://shards/oi/train-{000000..000002}.tar",
                                crop_size=128, batch_size=2, num_workers=2, epoch_length=8, val_crop=None,
                                shuffle_buffer=4, storage_options={"endpoint_url": s3_endpoint})
    dm.setup("fit")
    batches = list(dm.train_dataloader())
    assert len(batches) == 4 and all(b.shape == (2, 3, 128, 128) for b in batches)
    sizes = sorted(tuple(v.shape[-2:]) for v in dm.val_dataloader())
    assert sizes == [(272, 272), (288, 288), (300, 300), (320, 320), (600, 512)]


def test_concurrent_first_use_shares_one_client_and_reports_missing_keys(s3_endpoint):
    """Download threads start together on a fresh Storage: every missing key is a FileNotFoundError (not a
    transient failure), because one client is built and S3 errors are classified by their code."""
    storage = Storage({"endpoint_url": s3_endpoint})
    threads = 8
    barrier = threading.Barrier(threads)
    outcomes: List[object] = []

    def fetch_missing() -> None:
        barrier.wait()
        try:
            storage.read_bytes("s3://shards/no/such/key.jpg")
        except Exception as err:  # recorded and asserted below
            outcomes.append((type(err), id(storage.client)))

    workers = [threading.Thread(target=fetch_missing) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert outcomes == [(FileNotFoundError, id(storage.client))] * threads
    with pytest.raises(DataSourceError, match="does not exist"):
        storage.read_bytes("s3://no-such-bucket/key")


@pytest.mark.slow
def test_interrupted_prepare_resumes_without_refetching(s3_endpoint, monkeypatch):
    make_source(s3_endpoint, "resume-source", "resume-ids.csv")
    options = dict(out="s3://shards/resume", max_images=4, ids_file="s3://meta/resume-ids.csv",
                   source_url="s3://resume-source", source_endpoint_url=s3_endpoint, shard_size=2, workers=2)
    original = OpenImagesPreparer.write_shard

    def crash_after_first_shard(self, batch):
        if self.manifest["shards"]:
            raise KeyboardInterrupt("simulated interruption")
        return original(self, batch)

    monkeypatch.setattr(OpenImagesPreparer, "write_shard", crash_after_first_shard)
    with pytest.raises(KeyboardInterrupt):
        prepare_openimages(**options)
    monkeypatch.setattr(OpenImagesPreparer, "write_shard", original)

    client = s3_client()
    done = json.loads(client.get_object(Bucket="shards", Key="resume/manifest.json")["Body"].read())
    assert len(done["shards"]) == 1
    etag = client.head_object(Bucket="shards", Key="resume/train-000000.tar")["ETag"]
    for image_id in done["shards"][0]["ids"]:  # a re-fetch of finished work would now fail as "missing"
        client.delete_object(Bucket="resume-source", Key=f"train/{image_id}.jpg")

    summary = prepare_openimages(**options)
    assert summary.skipped_done == 2 and summary.shards_written == 1 and summary.images_total == 4
    assert "missing" not in summary.rejected
    assert client.head_object(Bucket="shards", Key="resume/train-000000.tar")["ETag"] == etag

    again = prepare_openimages(**options)
    assert again.shards_written == 0 and again.images_total == 4 and again.shards_total == 2


def test_shards_stream_over_http(tmp_path):
    from test_data_sources import crop_index, write_colour_shards

    write_colour_shards(tmp_path, shards=2, per_shard=3)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/part-{{000000..000001}}.tar"
        dm = MultiRealismDataModule(train=url, val=url, crop_size=32, batch_size=3, num_workers=0, val_crop=16)
        batches = list(dm.train_dataloader())
        assert sorted(crop_index(c) for b in batches for c in b) == list(range(6))
        assert [crop_index(v[0]) for v in dm.val_dataloader()] == list(range(6))
    finally:
        server.shutdown()
        server.server_close()
