"""Shards streamed from a loopback S3 server feed a few Lightning training steps of the tiny codec."""

from __future__ import annotations

import io

import lightning.pytorch as pl
import pytest
import webdataset as wds

from multirealism.data import MultiRealismDataModule
from multirealism.data.storage import s3_client
from multirealism.training import MultiRealismModule, Objective
from helpers import make_tiny_codec
from test_data_loopback import jpeg_bytes, s3_endpoint  # noqa: F401  (fixture)


@pytest.mark.slow
def test_streamed_shards_feed_tiny_training_steps(s3_endpoint, tmp_path):  # noqa: F811
    client = s3_client({"endpoint_url": s3_endpoint})
    client.create_bucket(Bucket="train-shards")
    names = ["astronaut", "coffee", "chelsea", "rocket"]
    for shard in range(2):
        buffer = io.BytesIO()
        with wds.TarWriter(buffer, encoder=False) as writer:
            for name in names[2 * shard : 2 * shard + 2]:
                writer.write({"__key__": name, "jpg": jpeg_bytes(name, 160)})
        client.put_object(Bucket="train-shards", Key=f"tiny/shard-{shard:06d}.tar", Body=buffer.getvalue())

    data = MultiRealismDataModule(train="s3://train-shards/tiny/shard-{000000..000001}.tar",
                                  val="s3://train-shards/tiny/", crop_size=64, batch_size=2, val_crop=64,
                                  num_workers=2, epoch_length=6, shuffle_buffer=4,
                                  storage_options={"endpoint_url": s3_endpoint})
    module = MultiRealismModule(make_tiny_codec().train(), objective=Objective(perceptual="none"), val_real_bpp_batches=0)
    trainer = pl.Trainer(max_steps=3, limit_val_batches=2, accelerator="cpu", logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         num_sanity_val_steps=0, default_root_dir=tmp_path)
    trainer.fit(module, datamodule=data)
    assert trainer.global_step == 3
    assert trainer.callback_metrics["train/loss"].isfinite()
