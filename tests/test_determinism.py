"""Reproducibility: the same image and model give the same bytes, whatever the thread count.

Known caveat (float entropy models, documented rather than solved): the decoder recomputes the
Gaussian scales (and, for ``charm``, means that feed later slices) in floating point from ẑ and the
already decoded slices. Each scale is mapped to a CDF through the quantised scale table
(``GaussianConditional.build_indexes``), so a bitstream decodes correctly as long as encoder and
decoder put every scale on the same side of every table boundary. Different hardware, BLAS/cuDNN
kernels or torch versions can move a scale by a few ulps; one that lands on the other side of a
boundary picks another CDF and the rest of that stream desynchronises (garbage, not a crash: the
fuzz tests show the decoder stays within its error contract). What the design guarantees: the model
fingerprint in every file (other weights are refused), byte-identical output on one platform for
any thread count and under ``torch.use_deterministic_algorithms(True)`` (the decoded latent is exact;
the generator's pixels may differ by float rounding, ~1e-7 between 1 and 2 threads), and a golden file that pins
the format in CI. Practical rule: entropy-code on CPU with the same torch version on both sides
(``MultiRealismCodec.from_checkpoint(..., map_location="cpu")``); the generator may run anywhere.
"""

from __future__ import annotations

import pytest
import torch

from helpers import make_tiny_codec, natural_image


@pytest.fixture
def restore_torch_state():
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    yield
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic)


@pytest.mark.parametrize("name", ["hyperprior", "charm"])
def test_same_bytes_twice_and_across_thread_counts(name, restore_torch_state):
    codec = make_tiny_codec(name, seed=5)
    image = natural_image("astronaut", 128)[:, :, :96]
    results = {}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        results[threads] = [codec.compress(image) for _ in range(2)]
    assert results[1][0] == results[1][1] == results[2][0] == results[2][1]
    decoded = {}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        decoded[threads] = (codec.decode_latent(results[1][0])[0], codec.decompress(results[1][0], beta=1.0))
    assert torch.equal(decoded[1][0], decoded[2][0])  # entropy decoding: exact
    # the generator's convolutions may sum in another order with more threads: ulp-level differences
    torch.testing.assert_close(decoded[1][1], decoded[2][1], rtol=0, atol=1e-6)


def test_deterministic_algorithms_flag_changes_nothing(restore_torch_state):
    codec = make_tiny_codec("charm", seed=6)
    image = natural_image("coffee", 96)
    data = codec.compress(image)
    reference = codec.decompress(data, beta=2.0)
    torch.use_deterministic_algorithms(True)
    assert codec.compress(image) == data
    assert torch.equal(codec.decompress(data, beta=2.0), reference)


def test_reloaded_checkpoint_writes_the_same_bytes(tmp_path):
    from multirealism import MultiRealismCodec

    codec = make_tiny_codec("hyperprior", seed=7)
    codec.save(tmp_path / "c.safetensors")
    image = natural_image("chelsea", 64)
    reloaded = MultiRealismCodec.from_checkpoint(tmp_path / "c.safetensors")
    assert reloaded.fingerprint == codec.fingerprint
    assert reloaded.compress(image) == codec.compress(image)
