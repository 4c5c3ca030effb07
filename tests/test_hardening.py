"""Broken weights, configs and files end in one-line library errors in bounded time, never in a hang,
a traceback or a garbage image (issue 11)."""

from __future__ import annotations

import pickle

import pytest
import torch

from helpers import make_tiny_codec
from multirealism import MultiRealismCodec, bitstream_format
from multirealism.checkpoint import CONFIG_KEY
from multirealism.errors import BitstreamError, CheckpointError, ImageInputError, ModelOutputError


def _save(path, config, state) -> None:
    torch.save({CONFIG_KEY: {"config": config}, "state_dict": state}, path)


def _poisoned_state(codec: MultiRealismCodec, prefix: str) -> dict:
    state = {k: v.clone() for k, v in codec.state_dict().items()}
    name = next(k for k, v in state.items() if k.startswith(prefix) and k.endswith("weight") and v.is_floating_point())
    state[name].view(-1)[0] = float("nan")
    return state


def _one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message and message
    return message


@pytest.mark.timeout(30)  # compress used to spin forever in the rANS encoder
@pytest.mark.parametrize("prefix", ["encoder.", "entropy_model.", "generator."])
def test_checkpoint_with_a_nan_weight_is_refused_at_load(tmp_path, prefix):
    codec = make_tiny_codec("charm")
    _save(tmp_path / "nan.pt", codec.config(), _poisoned_state(codec, prefix))
    with pytest.raises(CheckpointError) as err:
        MultiRealismCodec.from_checkpoint(tmp_path / "nan.pt").compress(torch.rand(3, 32, 32))
    assert "NaN" in _one_line(err) and prefix in str(err.value)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("prefix", ["encoder.", "entropy_model."])
def test_compress_with_nan_weights_fails_quickly(prefix):
    """Weights poisoned after the coder tables were built (so no load-time check ran)."""
    codec = make_tiny_codec("charm")
    codec.load_state_dict(_poisoned_state(codec, prefix))
    with pytest.raises(ModelOutputError) as err:
        codec.compress(torch.rand(3, 32, 32))
    _one_line(err)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("part", ["encoder", "entropy_model"])
def test_compress_refuses_weights_poisoned_after_update(part):
    codec = make_tiny_codec("charm")
    with torch.no_grad():  # in place: the fingerprint stays cached, so update() never sees them
        for parameter in getattr(codec, part).parameters():
            parameter.fill_(float("nan"))
    with pytest.raises(ModelOutputError) as err:
        codec.compress(torch.rand(3, 32, 32))
    _one_line(err)


def test_decompress_with_a_nan_generator_raises_instead_of_a_black_image():
    codec = make_tiny_codec()
    data = codec.compress(torch.rand(3, 32, 32))
    with torch.no_grad():
        next(codec.generator.parameters()).view(-1)[0] = float("nan")  # in place: same fingerprint
    with pytest.raises(ModelOutputError, match="generator weight .* NaN"):
        codec.decompress(data)


@pytest.mark.parametrize(
    "role, key, value",
    [("encoder", "channels", 10**9), ("encoder", "channels", -4), ("encoder", "channels", 1e9),
     ("generator", "beta_max", float("nan")), ("generator", "beta_max", -1.0)],
)
def test_bad_config_values_are_one_line_checkpoint_errors(tmp_path, role, key, value):
    codec = make_tiny_codec()
    config = codec.config()
    config[role]["args"][key] = value
    _save(tmp_path / "bad.pt", config, codec.state_dict())
    with pytest.raises(CheckpointError) as err:
        MultiRealismCodec.from_checkpoint(tmp_path / "bad.pt")
    _one_line(err)


def test_codec_refuses_a_nan_or_negative_beta_max():
    config = make_tiny_codec().config()
    for bad in (float("nan"), -1.0, 0.0):
        config["generator"]["args"]["beta_max"] = bad
        with pytest.raises(ValueError, match="beta_max"):
            MultiRealismCodec.from_config(config)


class _Exploit:
    def __reduce__(self):
        import os

        return (os.getcwd, ())


@pytest.mark.parametrize(
    "content, reason",
    [
        (pickle.dumps(_Exploit()), "could run code"),
        (b"step,loss\n1,0.5\n", "not a torch checkpoint"),
        (b"\x89PNG\r\n\x1a\n" + bytes(32), "not a torch checkpoint"),
        (b"", "empty file"),
        (None, "directory"),
    ],
)
def test_unusable_files_give_a_clear_one_line_reason(tmp_path, content, reason):
    path = tmp_path / "model.ckpt"
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match=reason) as err:
        MultiRealismCodec.from_checkpoint(path)
    assert "weights_only=False" not in _one_line(err)


def test_old_checkpoint_with_a_discriminator_still_loads(tmp_path):
    codec = make_tiny_codec()
    config = codec.config()
    config["discriminator"] = {"name": "hific", "args": {"latent_channels": 16, "channels": 8}}
    state = dict(codec.state_dict())
    state["discriminator.head.weight"] = torch.zeros(1, 8, 1, 1)
    torch.save(
        {CONFIG_KEY: {"config": config}, "state_dict": {f"codec.{k}": v for k, v in state.items()}},
        tmp_path / "old.ckpt",
    )
    loaded = MultiRealismCodec.from_checkpoint(tmp_path / "old.ckpt")
    assert loaded.fingerprint == codec.fingerprint
    assert not any(name.startswith("discriminator") for name, _ in loaded.named_modules())


def _crafted(codec: MultiRealismCodec, images: int, size: int = 16) -> bytes:
    m = codec.pad_multiple
    latent = (-(-size // m), -(-size // m))
    strings = [[b"" for _ in range(images)] for _ in range(codec.entropy_model.num_streams)]
    return bitstream_format.pack(bitstream_format.Bitstream(codec.fingerprint, images, size, size, latent, strings))


def test_image_count_is_capped_and_configurable():
    codec = make_tiny_codec()
    data = _crafted(codec, 4096)
    assert len(data) < 16 * 1024
    with pytest.raises(BitstreamError, match="4096 images, over the limit of max_images=256"):
        codec.decompress(data)
    codec.max_images = 2
    with pytest.raises(BitstreamError, match="max_images=2"):
        codec.read_header(_crafted(codec, 3))
    with pytest.raises(ImageInputError, match="max_images=2"):
        codec.compress(torch.rand(3, 3, 16, 16))


def test_bitstream_size_is_bounded_before_parsing():
    codec = make_tiny_codec()
    data = codec.compress(torch.rand(3, 32, 32))
    codec.max_bitstream_bytes = len(data) - 1
    with pytest.raises(BitstreamError, match=f"{len(data)} bytes, over the limit of max_bitstream_bytes"):
        codec.decompress(data)
    with pytest.raises(BitstreamError, match="max_bitstream_bytes=10"):
        bitstream_format.unpack(b"\x00" * 11, max_bitstream_bytes=10)
    codec.max_bitstream_bytes = len(data)
    assert codec.decompress(data).shape == (1, 3, 32, 32)


def test_pixel_limits_share_one_wording():
    codec = make_tiny_codec()
    codec.max_pixels = 1000
    messages = []
    for call, arg in ((codec.compress, torch.rand(3, 40, 40)), (codec.read_header, _crafted(codec, 1, 40))):
        with pytest.raises((ImageInputError, BitstreamError)) as err:
            call(arg)
        messages.append(str(err.value))
    codec.max_pixels = 24 * 24  # the header's 20 x 20 fits; padded to the latent grid it does not
    with pytest.raises(BitstreamError) as err:
        codec.read_header(_crafted(codec, 1, 20))
    messages.append(str(err.value))
    assert all("pixels, over the limit of max_pixels=" in m for m in messages), messages


def test_out_of_range_or_mistyped_quality_and_beta_are_parameter_errors():
    from multirealism.errors import MultiRealismError, ParameterError

    codec = make_tiny_codec()  # fixed rate: quality 0 only
    x = torch.rand(3, 16, 16)
    for quality in (5, True, "3"):
        with pytest.raises(ParameterError) as err:
            codec.compress(x, quality=quality)
        assert isinstance(err.value, MultiRealismError) and isinstance(err.value, ValueError)  # old callers
    data = codec.compress(x)
    for beta in (-1.0, 99.0, float("nan"), True, "1"):
        with pytest.raises(ParameterError):
            codec.decompress(data, beta=beta)
    with pytest.raises(ParameterError, match="empty"):
        codec.decompress(data, beta=[])


def test_a_nan_beta_max_is_named_as_such():
    from helpers import small_codec_config

    config = small_codec_config("residual_cond_rate_gated", base_beta=0.0, refiner_channels=8, refiner_mid_channels=4)
    config["generator"]["args"]["beta_max"] = float("nan")
    with pytest.raises(ValueError, match="beta_max must be a finite number above 0, got nan"):
        MultiRealismCodec.from_config(config)


def test_a_corrupt_stream_whose_latent_explodes_is_a_bitstream_error(monkeypatch):
    codec = make_tiny_codec()
    data = codec.compress(torch.rand(3, 32, 32))
    decompress = codec.entropy_model.decompress
    monkeypatch.setattr(codec.entropy_model, "decompress", lambda *a: decompress(*a).fill_(5.6e8))
    with pytest.raises(BitstreamError, match="corrupt"):
        codec.decompress(data)


def test_a_nan_decoded_image_with_finite_weights_blames_the_stream(monkeypatch):
    codec = make_tiny_codec()
    data = codec.compress(torch.rand(3, 32, 32))
    monkeypatch.setattr(codec, "synthesize", lambda y, maps, q: [torch.full((1, 3, 32, 32), float("nan"))])
    with pytest.raises(BitstreamError, match="corrupt"):
        codec.decompress(data)


def test_a_stream_declaring_more_pixels_than_memory_allows_is_refused_before_decoding(monkeypatch):
    from multirealism import memory_budget
    from multirealism.errors import ResourceLimitError

    codec = make_tiny_codec()
    data = codec.compress(torch.rand(3, 64, 64))
    monkeypatch.setattr(memory_budget, "available_bytes", lambda device="cpu": 64 * 64 * 100)
    with pytest.raises(ResourceLimitError, match="GiB"):
        codec.decompress(data)
    with pytest.raises(ResourceLimitError):
        codec.compress(torch.rand(3, 256, 256))


@pytest.mark.parametrize("size", [(1, 1), (2, 3), (17, 40)])
def test_refinement_with_realism_works_on_images_smaller_than_the_perceptual_network_reads(size):
    from multirealism.latent_refinement import LatentRefinement, refine
    from multirealism.objective import RateDistortionObjective

    codec = make_tiny_codec()
    codec.objective = RateDistortionObjective((0.01,), perceptual="lpips-random-test-only", perceptual_weight=0.4,
                                              perceptual_scales=(1, 1000))  # a scale coarser than any image
    x = torch.rand(3, *size)
    data = codec.compress_latent(refine(codec, x, None, LatentRefinement(1, realism=0.5)))
    assert codec.decompress(data).shape == (1, 3, *size)
