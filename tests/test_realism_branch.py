"""The realism branch: β = 0 is the frozen base synthesis bit for bit (without running the branch), β blends
toward a second β-conditioned synthesis, and a stage that starts the branch as a copy of a plain warm-up's
generator trains only the branch."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from multirealism import MultiRealismCodec
from multirealism.checkpoint import save_weights
from multirealism.components import RealismBranchGenerator, ResidualConditionalGenerator
from multirealism.errors import CheckpointError
from multirealism.training import Initialization, MultiRealismModule
from multirealism.zoo import codec_config

from helpers import SMALL_GENERATOR_ARGS, entries_moved_by_fit, small_codec_config, staged_module


def branched(seed: int = 0) -> RealismBranchGenerator:
    torch.manual_seed(seed)
    return RealismBranchGenerator(**SMALL_GENERATOR_ARGS).eval()


def test_beta_zero_is_the_base_synthesis_and_skips_the_branch() -> None:
    generator = branched()
    base = ResidualConditionalGenerator(**SMALL_GENERATOR_ARGS).eval()
    missing, unexpected = base.load_state_dict(generator.state_dict(), strict=False)
    assert not missing and unexpected and all(k.startswith("realism.") for k in unexpected)
    calls = []
    generator.realism.register_forward_hook(lambda *args: calls.append(1))
    y_hat = torch.randn(2, 16, 4, 4).round()
    with torch.no_grad():
        assert torch.equal(generator(y_hat, 0.0), base(y_hat, 0.0))
        assert calls == []  # nothing of the branch runs at β = 0
        assert not torch.equal(generator(y_hat, 5.12), base(y_hat, 0.0)) and calls == [1]


def test_beta_blends_linearly_from_the_base_to_the_branch() -> None:
    generator = branched()
    y_hat = torch.randn(2, 16, 4, 4).round()
    with torch.no_grad():
        base = generator(y_hat, 0.0)
        top = generator(y_hat, 5.12)
        assert torch.allclose(top, generator.realism(y_hat, 5.12), atol=1e-6)  # β_max: the branch alone
        half = generator(y_hat, 2.56)
        assert torch.allclose(half, base + 0.5 * (generator.realism(y_hat, 2.56) - base), atol=1e-6)
        # a β map: each pixel blends with its own weight, the zero half stays the base image
        beta_map = torch.zeros(2, 1, 16, 16)
        beta_map[..., 8:] = 5.12
        mapped = generator(y_hat, beta_map)
        assert torch.equal(mapped[..., :8], base[..., :8])
        assert not torch.allclose(mapped[..., 8:], base[..., 8:])


def test_forward_betas_synthesises_the_base_once() -> None:
    generator = branched()
    base_calls = []
    generator.pre[0].register_forward_hook(lambda *args: base_calls.append(1))  # the base's first layer
    y_hat = torch.randn(2, 16, 4, 4).round()
    betas = [0.0, 1.28, 5.12]
    with torch.no_grad():
        together = generator.forward_betas(y_hat, betas)
        assert len(base_calls) == 1
        for beta, image in zip(betas, together):
            assert torch.equal(image, generator(y_hat, beta))


def test_small_preset_with_the_branch_is_its_plain_base_plus_a_copy() -> None:
    plain, branch = codec_config("small", realism="none"), codec_config("small", realism="branch")
    assert branch["generator"] == {**plain["generator"], "name": "residual_cond_branched"}
    noisy = codec_config("small", realism="noisy_branch")
    assert noisy["generator"] == {**plain["generator"], "name": "residual_cond_branched_noisy"}
    with pytest.raises(ValueError, match="realism must be one of none, branch, noisy_branch, head"):
        codec_config("small", realism="sharp")


def test_a_branch_stage_copies_the_warm_up_generator_and_trains_only_the_branch(tmp_path) -> None:
    torch.manual_seed(0)
    plain = MultiRealismCodec.from_config(small_codec_config("residual_cond"))
    warmup = tmp_path / "warmup.safetensors"
    save_weights(warmup, plain.config(), plain.state_dict())

    def branch_module(**kwargs: Any) -> MultiRealismModule:
        return staged_module(small_codec_config("residual_cond_branched"), warmup, **kwargs)

    with pytest.raises(ValueError, match="init.copy_parts needs init.checkpoint"):
        Initialization(copy_parts={"generator.realism": "generator"})
    with pytest.raises(CheckpointError, match="'encoder' does not fit 'generator.realism'"):
        branch_module(copy_parts={"generator.realism": "encoder"})
    module = branch_module(copy_parts={"generator.realism": "generator"}, trainable=["generator.realism"])
    y_hat = torch.randn(2, 16, 4, 4).round()
    with torch.no_grad():  # the branch starts as the warm-up's generator: β_max decodes as it did at β_max
        assert torch.equal(module.codec.generator.realism(y_hat, 5.12), plain.generator(y_hat, 5.12))
    moved = entries_moved_by_fit(module, torch.rand(4, 3, 64, 64, generator=torch.Generator().manual_seed(2)))
    assert moved and all(k.startswith("generator.realism.") for k in moved), moved
    with torch.no_grad():  # β = 0 is still the warm-up's reconstruction, bit for bit
        assert torch.equal(module.codec.eval().generator(y_hat, 0.0), plain.eval().generator(y_hat, 0.0))


def test_noise_inputs_start_silent_decode_deterministically_and_train(tmp_path) -> None:
    torch.manual_seed(0)
    plain = MultiRealismCodec.from_config(small_codec_config("residual_cond_branched"))
    start = tmp_path / "branch.safetensors"
    save_weights(start, plain.config(), plain.state_dict())
    noisy_config = small_codec_config("residual_cond_branched_noisy")
    with pytest.raises(CheckpointError, match="has a different generator than this codec"):
        staged_module(noisy_config, start)
    module = staged_module(noisy_config, start, new_parts=["generator.realism.noise"], trainable=["generator.realism"])
    generator = module.codec.generator.eval()
    assert generator.noise is None and generator.realism.noise is not None  # the base never gets noise
    y_hat = torch.randn(2, 16, 4, 4).round()
    with torch.no_grad():  # zero scales: the same images as without noise inputs, at every β
        for beta in (0.0, 2.56, 5.12):
            assert torch.equal(generator(y_hat, beta), plain.generator.eval()(y_hat, beta))
    moved = entries_moved_by_fit(module, torch.rand(4, 3, 64, 64, generator=torch.Generator().manual_seed(2)))
    assert "generator.realism.noise.scales" in moved and all(k.startswith("generator.realism.") for k in moved)
    generator = module.codec.generator
    with torch.no_grad():
        generator.eval()
        first, again = generator(y_hat, 5.12), generator(y_hat, 5.12)
        assert torch.equal(first, again)  # decoding draws from a fixed seed
        assert not torch.equal(first, plain.generator.eval()(y_hat, 5.12))
        generator.realism.train()
        assert not torch.equal(generator.realism(y_hat, 5.12), generator.realism(y_hat, 5.12))  # fresh in training


def test_noise_injection_checks_its_sizes() -> None:
    from multirealism.components import NoiseInjection

    with pytest.raises(ValueError, match="channels and count must be positive"):
        NoiseInjection(0, 2)
