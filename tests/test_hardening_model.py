"""Poisoned weights and unbounded inputs end in one clear error, in bounded time, never in a hang or a
garbage image."""

from __future__ import annotations

import pickle

import pytest
import torch

from conftest import make_tiny_codec
from multirealism import MultiRealismCodec, container
from multirealism.checkpoint import CONFIG_KEY
from multirealism.errors import BitstreamError, CheckpointError, NumericalError


def poisoned(part: str, entropy_model: str = "hyperprior") -> MultiRealismCodec:
    codec = make_tiny_codec(entropy_model)
    module = {"encoder": codec.encoder, "entropy": codec.entropy_model.hyper.h_s, "generator": codec.generator}[part]
    with torch.no_grad():
        next(p for p in module.parameters() if p.dim() > 1).fill_(float("nan"))
    return codec


def one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert "\n" not in text and text
    return text


@pytest.mark.timeout(30)
@pytest.mark.parametrize("part", ["encoder", "entropy"])
@pytest.mark.parametrize("entropy_model", ["hyperprior", "charm"])
def test_nan_weights_make_compress_fail_fast_in_memory_and_at_load(tmp_path, part, entropy_model):
    codec = poisoned(part, entropy_model)
    codec._fingerprint = None  # as after any change of weights
    with pytest.raises(NumericalError) as err:
        codec.compress(torch.rand(3, 64, 64))
    assert "non-finite" in one_line(err)
    codec.save(tmp_path / "nan.pt")
    with pytest.raises(CheckpointError, match="non-finite") as err:
        MultiRealismCodec.from_checkpoint(tmp_path / "nan.pt")
    one_line(err)


@pytest.mark.timeout(30)
def test_entropy_coder_never_sees_non_finite_latents_even_with_a_stale_fingerprint():
    codec = poisoned("entropy")  # fingerprint computed before the weights went bad
    with pytest.raises(NumericalError, match="scales|means|z"):
        codec.entropy_model.compress(torch.rand(1, 16, 4, 4))


def test_nan_generator_makes_decompress_fail_instead_of_writing_a_black_image():
    codec = make_tiny_codec()
    data = codec.compress(torch.rand(3, 64, 64))
    with torch.no_grad():
        next(p for p in codec.generator.parameters() if p.dim() > 1).view(-1)[0] = float("nan")
    with pytest.raises(NumericalError, match="decoded image") as err:
        codec.decompress(data, beta=0.0)
    one_line(err)


def config_with(path, **changes) -> None:
    codec = make_tiny_codec()
    config = codec.config()
    for key, value in changes.items():
        role, arg = key.split("__")
        config[role]["args"][arg] = value
    torch.save({CONFIG_KEY: {"config": config}, "state_dict": codec.state_dict()}, path)


@pytest.mark.parametrize(
    "change", [{"encoder__channels": 10**9}, {"encoder__channels": -4}, {"generator__beta_max": float("nan")},
               {"generator__beta_max": -1.0}, {"generator__beta_max": 0.0}]
)
def test_out_of_range_config_values_are_one_line_checkpoint_errors(tmp_path, change):
    config_with(tmp_path / "bad.pt", **change)
    with pytest.raises(CheckpointError) as err:
        MultiRealismCodec.from_checkpoint(tmp_path / "bad.pt")
    text = one_line(err)
    assert ("channels" in text) or ("beta_max" in text)


class _Custom:  # any object beyond plain tensors and containers
    pass


def test_unsafe_pickle_is_refused_in_one_line_without_advising_weights_only_false(tmp_path):
    torch.save({"state_dict": {}, "extra": _Custom()}, tmp_path / "unsafe.pt", pickle_module=pickle)
    with pytest.raises(CheckpointError) as err:
        MultiRealismCodec.from_checkpoint(tmp_path / "unsafe.pt")
    text = one_line(err)
    assert "weights_only=False" not in text and "refusing" in text


@pytest.mark.parametrize(
    "kind, reason",
    [("text", "not a torch checkpoint"), ("empty", "is empty"), ("folder", "is a folder")],
)
def test_files_that_are_not_checkpoints_get_a_reason(tmp_path, kind, reason):
    path = tmp_path / "model.ckpt"
    if kind == "text":
        path.write_text("this is not a checkpoint\n")
    elif kind == "empty":
        path.write_bytes(b"")
    else:
        path.mkdir()
    with pytest.raises(CheckpointError, match=reason) as err:
        MultiRealismCodec.from_checkpoint(path)
    assert "pop from empty list" not in one_line(err)


def test_bitstream_size_and_image_count_are_bounded_before_parsing():
    codec = make_tiny_codec()
    data = codec.compress(torch.rand(3, 32, 32))
    codec.max_bitstream_bytes = len(data) - 1
    with pytest.raises(BitstreamError, match="max_bitstream_bytes"):
        codec.read_header(data)
    with pytest.raises(BitstreamError, match="max_bitstream_bytes"):
        container.unpack(b"MRIC" + bytes(100), max_bytes=50)
    codec.max_bitstream_bytes = container.DEFAULT_MAX_BYTES
    # a small crafted file declaring thousands of tiny images (each would become an output file)
    many = container.pack(container.Bitstream(codec.fingerprint, 4096, 1, 1, (1, 1), [[b""] * 4096, [b""] * 4096]))
    assert len(many) < 16_384
    with pytest.raises(BitstreamError, match="4096 images.*max_images"):
        codec.read_header(many)


def test_one_wording_for_the_pixel_limit():
    codec = make_tiny_codec()
    codec.max_pixels = 100
    with pytest.raises(Exception) as from_image:
        codec.compress(torch.rand(3, 16, 16))
    header = container.pack(container.Bitstream(codec.fingerprint, 1, 16, 16, (1, 1), [[b""], [b""]]))
    with pytest.raises(BitstreamError) as from_header:
        codec.read_header(header)
    for err in (from_image, from_header):
        assert "over the limit of 100 (max_pixels)" in str(err.value)
