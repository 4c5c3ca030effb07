"""Format stability: committed bytes from a committed model must keep decoding to committed pixels.

The files in ``tests/data/golden/`` were written by ``make_golden.py``. If this test fails after a
change, old ``.mrc`` files no longer decode: either restore compatibility or bump
``bitstream_format.FORMAT_VERSION`` deliberately and regenerate the files.

Tolerance: the latent ŷ and the images are compared with ``atol=1e-5`` (float32). On the platform
that wrote them they match exactly; the slack absorbs summation-order differences of CPU kernels,
not a changed model or format (those move pixels by far more, or fail entropy decoding).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from compact_codec import load_compact
from multirealism import MultiRealismCodec, bitstream_format
from multirealism.imageio import load_image

GOLDEN = Path(__file__).parent / "data" / "golden"
ATOL = 1e-5


@pytest.fixture(scope="module")
def golden_codec() -> MultiRealismCodec:
    return load_compact(GOLDEN.parent / "fitted_tiny_hyperprior.safetensors.gz")


@pytest.fixture(scope="module")
def reference() -> dict:
    with np.load(GOLDEN / "reference.npz") as ref:
        return {k: ref[k] for k in ref.files}


def test_golden_files_stay_small():
    assert sum(p.stat().st_size for p in GOLDEN.iterdir()) < 200_000


def test_format_version_and_fingerprint(golden_codec, reference):
    data = (GOLDEN / "crop.mrc").read_bytes()
    stream = bitstream_format.unpack(data)
    assert stream.version == bitstream_format.FORMAT_VERSION == int(reference["format_version"])
    assert data[4] == bitstream_format.FORMAT_VERSION
    assert stream.fingerprint == bytes(reference["fingerprint"]) == golden_codec.fingerprint
    assert (stream.num_images, stream.height, stream.width) == (1, 37, 53)


def test_golden_bitstream_decodes_to_reference(golden_codec, reference):
    data = (GOLDEN / "crop.mrc").read_bytes()
    y_hat, _ = golden_codec.decode_latent(data)
    np.testing.assert_allclose(y_hat.numpy(), reference["y_hat"], rtol=0, atol=ATOL)
    images = golden_codec.decompress(data, beta=[float(b) for b in reference["betas"]])
    np.testing.assert_allclose(torch.stack(images).numpy(), reference["images"], rtol=0, atol=ATOL)


def test_golden_image_encodes_to_golden_bytes(golden_codec):
    """The encoder side too: same image + same model = the committed bytes (same CPU platform)."""
    image = load_image(GOLDEN / "crop.png")
    assert golden_codec.compress(image) == (GOLDEN / "crop.mrc").read_bytes()


def test_newer_format_version_is_refused(golden_codec):
    data = bytearray((GOLDEN / "crop.mrc").read_bytes())
    data[4] = bitstream_format.FORMAT_VERSION + 1
    with pytest.raises(bitstream_format.BitstreamError, match="version"):
        golden_codec.decompress(bytes(data))
