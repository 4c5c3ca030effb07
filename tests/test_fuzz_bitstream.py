"""Fuzzing the decoder: the only outcomes of bad bytes are a valid image or the library's own error.

Covers random bytes, every truncation, every single-bit flip, header fields set to extremes (with a
recomputed, valid CRC so the parser's checks and not the checksum are exercised), garbage coded
strings behind a valid header and CRC (compressai's rANS decoder on garbage), and the ``info``
parser. Each example has a deadline; the number of cases run is printed at the end of the module.
"""

from __future__ import annotations

import struct
import zlib
from collections import Counter
from datetime import timedelta

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from multirealism import bitstream_format
from multirealism.bitstream_guards import guard_for_rans
from multirealism.errors import BitstreamError
from multirealism import MultiRealismCodec
from multirealism.zoo import tiny_config
from helpers import make_tiny_codec, natural_image

MAX_PIXELS = 96 * 96  # a small configured limit keeps every accepted header cheap to decode
FUZZ = settings(
    deadline=timedelta(seconds=5),
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
CASES: Counter = Counter()


@pytest.fixture(scope="module", autouse=True)
def report_case_count(request):
    yield
    summary = ", ".join(f"{k}={v}" for k, v in sorted(CASES.items()))
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print(f"\nfuzz cases run: {sum(CASES.values())} ({summary})")


@pytest.fixture(scope="module")
def codecs():
    out = {}
    for name in ("hyperprior", "charm"):
        codec = make_tiny_codec(name, seed=1)
        codec.max_pixels = MAX_PIXELS
        out[name] = codec
    torch.manual_seed(1)
    config = {**tiny_config("hyperprior"), "rate_control": {"name": "gain", "args": {"latent_channels": 16, "num_levels": 3}}}
    out["rate_control"] = MultiRealismCodec.from_config(config).eval()
    out["rate_control"].max_pixels = MAX_PIXELS
    return out


@pytest.fixture(scope="module")
def valid(codecs):
    image = natural_image("coffee", 64)[:, :40, :50]
    return {name: codec.compress(image, quality=1.5 if name == "rate_control" else None) for name, codec in codecs.items()}


def _header(version, fingerprint, images, height, width, zh, zw, streams, quality=0.0) -> bytes:
    return struct.pack(">4sB8sHIIHHBf", bitstream_format.MAGIC, version, fingerprint, images, height, width, zh, zw, streams, quality)


def _with_crc(body: bytes) -> bytes:
    return body + struct.pack(">I", zlib.crc32(body))


def decode_outcome(codec, data: bytes, kind: str) -> str:
    """Decode ``data``: return "error" for our error, "image" for a checked image; anything else propagates."""
    try:
        image = codec.decompress(data, beta=codec.beta_max / 2)
    except BitstreamError:  # includes ModelMismatchError
        outcome = "error"
    else:
        header = bitstream_format.unpack(data, max_pixels=codec.max_pixels)
        assert image.shape == (header.num_images, 3, header.height, header.width)
        assert bool(torch.isfinite(image).all()) and float(image.min()) >= 0 and float(image.max()) <= 1
        outcome = "image"
    CASES[f"{kind}->{outcome}"] += 1
    return outcome


@FUZZ
@given(data=st.binary(max_size=400))
def test_random_bytes(codecs, data):
    assert decode_outcome(codecs["hyperprior"], data, "random_bytes") == "error"


@FUZZ
@given(tail=st.binary(max_size=300), version=st.integers(0, 255))
def test_random_bytes_behind_magic(codecs, tail, version):
    data = bitstream_format.MAGIC + bytes([version]) + tail
    assert decode_outcome(codecs["charm"], data, "magic_plus_random") == "error"
    assert decode_outcome(codecs["charm"], _with_crc(data), "magic_plus_random_crc") in ("error", "image")


@pytest.mark.parametrize("name", ["hyperprior", "charm", "rate_control"])
def test_every_truncation_and_extension(codecs, valid, name):
    data = valid[name]
    for length in range(len(data)):
        assert decode_outcome(codecs[name], data[:length], "truncation") == "error"
    for extra in (b"\x00", b"\xff" * 7):
        assert decode_outcome(codecs[name], data + extra, "extension") == "error"


@pytest.mark.parametrize("name", ["hyperprior", "charm", "rate_control"])
def test_every_single_bit_flip(codecs, valid, name):
    data = valid[name]
    for bit in range(8 * len(data)):
        flipped = bytearray(data)
        flipped[bit // 8] ^= 1 << (bit % 8)
        assert decode_outcome(codecs[name], bytes(flipped), "bit_flip") == "error"


@settings(FUZZ, max_examples=50)
@given(flips=st.lists(st.integers(min_value=0), min_size=2, max_size=12))
def test_multi_bit_flips(codecs, valid, flips):
    data = bytearray(valid["hyperprior"])
    for bit in flips:
        bit %= 8 * len(data)
        data[bit // 8] ^= 1 << (bit % 8)
    assert decode_outcome(codecs["hyperprior"], bytes(data), "multi_bit_flip") in ("error", "image")


U16 = st.sampled_from([0, 1, 2, 3, 4, 65535]) | st.integers(0, 65535)
QUALITY = st.sampled_from([0.0, 0.5, 1.0, 2.0, 2.0001, 3.0, 255.0, 256.0, -0.0, -1.0, float("nan"), float("inf")]) | st.floats(
    width=32
)
U32 = st.sampled_from([0, 1, 40, 50, 63, 64, 65, 96, 97, 100_000, 2**31, 2**32 - 1]) | st.integers(0, 2**32 - 1)


@FUZZ
@given(
    version=st.sampled_from([0, 1, bitstream_format.FORMAT_VERSION, 3, 255]),
    other_model=st.booleans(),
    rate_control=st.booleans(),
    quality=QUALITY,
    images=U16,
    height=U32,
    width=U32,
    zh=U16,
    zw=U16,
    streams=st.sampled_from([0, 1, 2, 3, 5, bitstream_format.MAX_STREAMS, bitstream_format.MAX_STREAMS + 1, 255]),
    payload=st.binary(max_size=64),
)
def test_header_fields_at_extremes(
    codecs, valid, version, other_model, rate_control, quality, images, height, width, zh, zw, streams, payload
):
    codec = codecs["rate_control" if rate_control else "hyperprior"]
    fingerprint = bytes(8) if other_model else codec.fingerprint
    body = _header(version, fingerprint, images, height, width, zh, zw, streams, quality)
    assert decode_outcome(codec, _with_crc(body + payload), "header_extremes") in ("error", "image")


@FUZZ
@given(images=st.integers(1, 3), height=st.integers(1, 70), width=st.integers(1, 70), streams=st.integers(1, 4),
       skew=st.integers(-1, 1), strings=st.lists(st.binary(max_size=12), max_size=12))
def test_near_valid_headers(codecs, images, height, width, streams, skew, strings):
    """Plausible headers with off-by-one latent sizes, stream counts and string lists."""
    codec = codecs["hyperprior"]
    m = codec.pad_multiple
    z = (-(-height // m) + skew, -(-width // m))
    body = _header(bitstream_format.FORMAT_VERSION, codec.fingerprint, images, height, width, *z, streams)
    payload = b"".join(bytes([len(s)]) + s for s in strings)
    assert decode_outcome(codec, _with_crc(body + payload), "near_valid_header") in ("error", "image")


def test_huge_header_refused_before_any_decoding(codecs, monkeypatch):
    """A 100000x100000 header (valid CRC, matching model) never reaches the entropy decoder."""
    codec = make_tiny_codec("hyperprior", seed=1)  # default limit: 64 Mpx

    def forbidden(*args, **kwargs):
        raise AssertionError("entropy decoding was reached")

    monkeypatch.setattr(codec.entropy_model, "decompress", forbidden)
    monkeypatch.setattr(codec.generator, "forward", forbidden)
    for images, side in ((1, 100_000), (65535, 1), (2, 6000)):
        z = -(-side // codec.pad_multiple)
        body = _header(bitstream_format.FORMAT_VERSION, codec.fingerprint, images, side, side, z, z, 2)
        data = _with_crc(body + b"\x00\x00" * images)
        CASES["huge_header"] += 1
        with pytest.raises(BitstreamError, match="limit"):
            codec.decompress(data)


@pytest.mark.parametrize("name", ["hyperprior", "charm"])
def test_garbage_strings_behind_valid_header_and_crc(codecs, valid, name):
    """compressai's rANS decoder fed garbage (the CRC recomputed): an image or our error, quickly."""
    codec = codecs[name]
    header = bitstream_format.unpack(valid[name], max_pixels=MAX_PIXELS)

    @settings(FUZZ, max_examples=25)
    @given(strings=st.lists(st.binary(max_size=200), min_size=len(header.strings), max_size=len(header.strings)),
           height=st.integers(1, 64), width=st.integers(1, 64))
    def check(strings, height, width):
        m = codec.pad_multiple
        stream = bitstream_format.Bitstream(
            codec.fingerprint, 1, height, width, (-(-height // m), -(-width // m)), [[s] for s in strings]
        )
        assert decode_outcome(codec, bitstream_format.pack(stream), "garbage_strings") in ("error", "image")

    check()


@settings(FUZZ, max_examples=40)
@given(data=st.binary(min_size=1, max_size=300), sentinel=st.sampled_from([b"\xff", b"\x5a", b"\x01"]))
def test_rans_guard_covers_every_read(codecs, data, sentinel):
    """Bytes after the guard zeros never influence decoding, so the decoder never reads past them."""
    codec = codecs["hyperprior"]
    m = codec.pad_multiple
    stream = bitstream_format.Bitstream(codec.fingerprint, 1, 64, 64, (64 // m, 64 // m), [[data[: len(data) // 3]], [data]])
    guarded = guard_for_rans(stream, codec.entropy_model.stream_symbol_counts(stream.latent_shape))
    CASES["rans_guard"] += 1
    reference = codec.entropy_model.decompress(guarded, stream.latent_shape)
    with_sentinel = [[s + sentinel * 4096 for s in per_image] for per_image in guarded]
    assert torch.equal(codec.entropy_model.decompress(with_sentinel, stream.latent_shape), reference)


@FUZZ
@given(data=st.binary(max_size=300), mutate=st.booleans())
def test_info_parser(valid, data, mutate):
    """``bitstream_format.unpack`` (what ``multirealism info`` runs) returns a Bitstream or raises BitstreamError."""
    if mutate:
        base = bytearray(valid["charm"])
        for i, byte in enumerate(data[:16]):
            base[(i * 7 + byte) % len(base)] = byte
        data = bytes(base)
    CASES["info_parser"] += 2
    for blob in (data, _with_crc(data[:-4]) if len(data) >= 4 else data):
        try:
            stream = bitstream_format.unpack(blob)
        except BitstreamError:
            continue
        assert stream.num_pixels <= bitstream_format.DEFAULT_MAX_PIXELS
        assert len(stream.strings) <= bitstream_format.MAX_STREAMS


def test_unguarded_rans_decoder_reads_past_its_string(codecs, valid):
    """Why the guard exists: given a 1-byte string, compressai's decoder consumes the bytes after it
    (here in bounds, a sentinel; in real use, whatever lies past the buffer). A valid string does not."""
    codec = codecs["hyperprior"]
    stream = bitstream_format.unpack(valid["hyperprior"], max_pixels=MAX_PIXELS)

    def decode(strings, tail):
        return codec.entropy_model.decompress([[s + tail] for s in strings], stream.latent_shape)

    exact = [per_image[0] for per_image in stream.strings]
    assert torch.equal(decode(exact, b"\xff" * 4096), decode(exact, b"\x5a" * 4096))
    short = [s[:1] for s in exact]
    assert not torch.equal(decode(short, b"\xff" * 4096), decode(short, b"\x5a" * 4096))
