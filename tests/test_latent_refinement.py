"""Encoder-side latent refinement: it lowers the coded objective, leaves the decoder and the weights
alone, and its bitstreams are ordinary ones."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import lightning as L
import pytest
import torch
import yaml
from helpers import make_tiny_codec, natural_image
from torch.nn import functional as F
from torch.utils.data import DataLoader

from multirealism import MultiRealismCodec
from multirealism.cli.main import main
from multirealism.evaluation.metrics import psnr
from multirealism.imageio import to_pil
from multirealism.latent_refinement import LatentRefinement, _frozen_perceptual, refine, refinement_problem
from multirealism.objective import RateDistortionObjective
from multirealism.perceptual_scales import multiscale_distance
from multirealism.training import MultiRealismModule, Objective, RateLadder
from multirealism.zoo import tiny_config
from multirealism.training.perceptual import build_perceptual

LADDER = (1.28, 0.64, 0.32, 0.16, 0.08, 0.04)


def coded_objective(codec: MultiRealismCodec, x: torch.Tensor, data: bytes, objective, quality: float) -> float:
    """λ(q)·(real bpp) + k_M·MSE of the β = 0 decoding: the objective measured on the bitstream."""
    bpp = 8 * len(data) / (x.shape[-2] * x.shape[-1])
    mse = float((codec.decompress(data, 0.0) - x).pow(2).mean())
    return float(objective.rate_weight(torch.tensor([quality]))) * bpp + objective.mse_weight * mse


def coded(codec: MultiRealismCodec, x: torch.Tensor, quality: float, refinement: LatentRefinement) -> bytes:
    """The bitstream of ``x``'s refined latent."""
    return codec.compress_latent(refine(codec, x, quality, refinement))


def estimated_objective(codec: MultiRealismCodec, x: torch.Tensor, latent) -> torch.Tensor:
    """Per image, λ·(estimated bpp) + k_M·MSE of the decoded β = 0 image: what refinement minimises."""
    mse = (codec.decompress(codec.compress_latent(latent), 0.0) - x).pow(2).flatten(1).mean(dim=1)
    weight = codec.objective.rate_weight(torch.full((x.shape[0],), latent.quality))
    return weight * codec.latent_bpp(latent) + codec.objective.mse_weight * mse


@pytest.fixture(scope="module")
def tiny() -> MultiRealismCodec:
    codec = make_tiny_codec()
    codec.objective = RateDistortionObjective((0.05,))  # the untrained tiny codec codes y as all zeros at larger λ
    return codec


def test_objective_interpolates_lambda_log_linearly_and_checks_its_values() -> None:
    objective = RateDistortionObjective(LADDER)
    weights = objective.rate_weight(torch.tensor([0.0, 0.5, 5.0]))
    assert weights.tolist() == pytest.approx([1.28, math.sqrt(1.28 * 0.64), 0.04], rel=1e-6)
    assert RateDistortionObjective((0.3,)).rate_weight(torch.tensor([0.0, 0.0])).tolist() == pytest.approx([0.3] * 2)
    with pytest.raises(ValueError, match="lambdas"):
        RateDistortionObjective((1.0, -1.0))
    with pytest.raises(ValueError, match="mse_weight"):
        RateDistortionObjective((1.0,), mse_weight=float("nan"))
    with pytest.raises(ValueError, match="steps"):
        LatentRefinement(steps=-1)
    with pytest.raises(ValueError, match="lr"):
        LatentRefinement(lr=0.0)
    with pytest.raises(ValueError, match="realism must lie in"):
        LatentRefinement(realism=1.5)
    with pytest.raises(ValueError, match="go together"):
        RateDistortionObjective((1.0,), perceptual="stlpips-alex")
    with pytest.raises(ValueError, match="go together"):
        RateDistortionObjective((1.0,), perceptual_weight=0.5)
    with pytest.raises(ValueError, match="perceptual_weight"):
        RateDistortionObjective((1.0,), perceptual="stlpips-alex", perceptual_weight=-1.0)



def test_objective_scales_beta_per_level_like_its_training_ladder() -> None:
    """A ladder's realism_scales reach the refinement objective (from a checkpoint's hyperparameters or a
    shipped model's entry) and interpolate like λ; without them the scale is 1."""
    scales = (1.0, 0.828, 0.719, 0.650, 0.610, 0.585)
    objective = RateDistortionObjective(LADDER, perceptual="stlpips-vgg", perceptual_weight=1.0, realism_scales=scales)
    assert objective.realism_scale(torch.tensor([0.0, 0.5, 5.0])).tolist() == pytest.approx(
        [1.0, math.sqrt(0.828), 0.585], rel=1e-6)
    assert RateDistortionObjective(LADDER).realism_scale(torch.tensor([0.0, 3.0])).tolist() == [1.0, 1.0]
    with pytest.raises(ValueError, match="realism_scales must be 6 positive"):
        RateDistortionObjective(LADDER, realism_scales=(1.0, 0.5))
    with pytest.raises(ValueError, match="realism_scales must be 6 positive"):
        RateDistortionObjective(LADDER, realism_scales=(1.0, 0.5, 0.5, 0.5, 0.5, 0.0))
    assert RateDistortionObjective.from_dict(objective.to_dict()) == objective  # as stored with the weights
    with pytest.raises(ValueError, match="unknown objective field"):
        RateDistortionObjective.from_dict({**objective.to_dict(), "lpips_weight": 1.0})
    assert MultiRealismCodec.pretrained().objective.realism_scales is None  # its realism stage weighed β alike per level


def test_objective_averages_its_perceptual_term_over_the_training_scales() -> None:
    """perceptual_scales reach the refinement objective with the weights (the shipped model trained at full size
    only), are checked like the training module's, and the distance the refinement adds is the mean over the
    pooled pairs."""
    assert MultiRealismCodec.pretrained().objective.perceptual_scales == (1,)
    with pytest.raises(ValueError, match="distinct positive integers"):
        RateDistortionObjective(LADDER, perceptual="stlpips-vgg", perceptual_weight=1.0, perceptual_scales=(1, 1))
    with pytest.raises(ValueError, match="needs a perceptual distance, and none is set"):
        RateDistortionObjective(LADDER, perceptual_scales=(1, 2))
    network = build_perceptual("lpips-random-test-only")  # reads 32 px and up
    torch.manual_seed(0)
    x, x_hat = torch.rand(2, 3, 128, 128), torch.rand(2, 3, 128, 128)
    with torch.no_grad():
        parts = [network(x_hat, x)] + [network(F.avg_pool2d(x_hat, f), F.avg_pool2d(x, f)) for f in (2, 4)]
        torch.testing.assert_close(multiscale_distance(network, x_hat, x, (1, 2, 4)), sum(parts) / 3)
        torch.testing.assert_close(multiscale_distance(network, x_hat, x), parts[0])
        small, small_hat = x[..., :64, :80], x_hat[..., :64, :80]  # 4x4 pooling would leave 16 px: left out
        expected = (network(small_hat, small) + network(F.avg_pool2d(small_hat, 2), F.avg_pool2d(small, 2))) / 2
        torch.testing.assert_close(multiscale_distance(network, small_hat, small, (1, 2, 4)), expected)


@pytest.mark.parametrize("entropy_model", ["hyperprior", "charm"])
def test_rounded_likelihoods_are_the_coded_ones(entropy_model) -> None:
    """The refinement objective's rate is the eval (rounded) estimate of the same latent, and its ŷ is
    what the coder reconstructs; gradients reach the latent through the rounding."""
    tiny = make_tiny_codec(entropy_model)
    x = natural_image("coffee", 32).unsqueeze(0)
    latent = tiny.encode(x, 0.0)
    y = latent.y.clone().requires_grad_(True)
    out = tiny.entropy_model.rounded_likelihoods(y)
    bits = sum(-torch.log2(lik).sum() for lik in out.likelihoods.values())
    assert float(bits.detach()) / (32 * 32) == pytest.approx(float(tiny.latent_bpp(latent)), rel=1e-5)
    decoded, _ = tiny.decode_latent(tiny.compress_latent(latent))
    assert torch.allclose(out.y_hat.detach(), decoded, atol=1e-4)
    (grad,) = torch.autograd.grad(bits + out.y_hat.square().sum(), [y])
    assert grad.abs().sum() > 0


def test_refinement_lowers_each_images_objective_and_touches_no_weight(tiny) -> None:
    x = torch.stack([natural_image("coffee", 32), natural_image("astronaut", 32)])
    before = {k: v.clone() for k, v in tiny.state_dict().items()}
    plain = tiny.encode(x, 0.0)
    refined = refine(tiny, x, 0.0, LatentRefinement(steps=15, lr=0.05))
    assert all(torch.equal(v, tiny.state_dict()[k]) for k, v in before.items())
    assert all(p.grad is None for p in tiny.parameters())
    assert not torch.equal(plain.y, refined.y)
    assert bool((estimated_objective(tiny, x, refined) < estimated_objective(tiny, x, plain)).all())
    again = coded(tiny, x, 0.0, LatentRefinement(steps=15, lr=0.05))  # deterministic
    assert again == coded(tiny, x, 0.0, LatentRefinement(steps=15, lr=0.05)) == tiny.compress_latent(refined)


def test_zero_steps_is_the_plain_encoder_and_refinement_needs_the_objective(tiny) -> None:
    x = natural_image("chelsea", 32)
    assert coded(tiny, x, 0.0, LatentRefinement(steps=0)) == tiny.compress(x, 0.0)
    bare = make_tiny_codec()
    with pytest.raises(ValueError, match="training objective"):
        coded(bare, x, 0.0, LatentRefinement(steps=2))


def test_realism_refinement_needs_the_perceptual_term(tiny) -> None:
    x = natural_image("chelsea", 32)
    with pytest.raises(ValueError, match="perceptual distance the model trained with"):
        coded(tiny, x, 0.0, LatentRefinement(steps=2, realism=0.5))
    assert refinement_problem(tiny.objective, LatentRefinement(steps=0, realism=0.5)) is None


def test_a_lightning_checkpoint_carries_its_objective(tmp_path) -> None:
    """A run with a ladder of fixed λs stores them (and k_M, the perceptual term) with its weights, so its
    checkpoint and its export refine without setup; a codec without an objective and a run of adaptive λs carry none."""
    torch.manual_seed(0)
    config = {**tiny_config(), "rate_control": {"name": "gain", "args": {"latent_channels": 16, "num_levels": 2}}}
    objective = Objective(perceptual="stlpips-alex", perceptual_weight=0.5, mse_weight=100.0)
    module = MultiRealismModule(MultiRealismCodec.from_config(config), objective=objective,
                                rate_ladder=RateLadder(lambdas=[0.2, 0.05]))
    trainer = L.Trainer(accelerator="cpu", max_steps=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, DataLoader(torch.rand(2, 3, 32, 32), batch_size=2))
    trainer.save_checkpoint(tmp_path / "run.ckpt")
    codec = MultiRealismCodec.from_checkpoint(tmp_path / "run.ckpt")
    assert codec.objective == RateDistortionObjective((0.2, 0.05), 100.0, "stlpips-alex", 0.5)
    x = natural_image("coffee", 32)
    assert coded(codec, x, 1.0, LatentRefinement(steps=2, realism=0.5))  # no setup needed
    codec.save(tmp_path / "exported.safetensors")
    assert MultiRealismCodec.from_checkpoint(tmp_path / "exported.safetensors").objective == codec.objective
    codec.objective = None
    codec.save(tmp_path / "plain.safetensors")
    assert MultiRealismCodec.from_checkpoint(tmp_path / "plain.safetensors").objective is None
    adaptive = MultiRealismModule(MultiRealismCodec.from_config(config), objective=objective,
                                  rate_ladder=RateLadder(target_bpps=[0.1, 0.3]))
    assert adaptive.codec.objective is None
    none = MultiRealismModule(MultiRealismCodec.from_config(config), objective=Objective(perceptual="none"),
                              rate_ladder=RateLadder(lambdas=[1.0, 0.5]))
    assert none.codec.objective == RateDistortionObjective((1.0, 0.5))


def test_refinement_works_inside_inference_mode(tiny) -> None:
    x = natural_image("rocket", 32)
    expected = coded(tiny, x, 0.0, LatentRefinement(steps=3))
    with torch.inference_mode():
        assert coded(tiny, x, 0.0, LatentRefinement(steps=3)) == expected
    realism = make_tiny_codec()
    realism.objective = RateDistortionObjective((0.05,), perceptual="stlpips-alex", perceptual_weight=0.5)
    _frozen_perceptual.cache_clear()  # so the perceptual network is first built under inference mode
    with torch.inference_mode():
        first = coded(realism, x, 0.0, LatentRefinement(steps=3, realism=0.5))
    assert coded(realism, x, 0.0, LatentRefinement(steps=3, realism=0.5)) == first


def test_shipped_model_refined_stream_is_smaller_or_sharper_at_two_qualities() -> None:
    """On a real photograph the shipped model's refined streams score better on the coded objective,
    and every β decodes them."""
    codec = MultiRealismCodec.pretrained()
    recipe = yaml.safe_load((Path(__file__).resolve().parents[1] / "configs" / "medium_realism.yaml").read_text())
    shipped_ladder = tuple(recipe["model"]["rate_ladder"]["init_args"]["lambdas"])
    assert codec.objective is not None and codec.objective.lambdas == shipped_ladder  # the recipe's λ per level
    x = natural_image("coffee", 96).unsqueeze(0)  # at 64 px quality 0 has too few latents to gain from
    for quality in (0.0, codec.num_levels - 1.0):
        plain = codec.compress(x, quality)
        refined = coded(codec, x, quality, LatentRefinement(steps=10))
        cost = coded_objective(codec, x, refined, codec.objective, quality)
        assert cost < coded_objective(codec, x, plain, codec.objective, quality)
        images = codec.decompress(refined, [0.0, 5.12])
        assert psnr(images[1], x) < psnr(images[0], x)


def two_ended_objective(codec: MultiRealismCodec, x: torch.Tensor, data: bytes, quality: float, perceptual) -> float:
    """λ(q)·(real bpp) + ½·d_0 + ½·d_β_max of the bitstream's decodings, d_β = k_M·MSE + β·s(q)·C_P·P
    (P the model's perceptual distance, s(q) its level's realism scale)."""
    objective = codec.objective
    bpp = 8 * len(data) / (x.shape[-2] * x.shape[-1])
    total = float(objective.rate_weight(torch.tensor([quality]))) * bpp
    for beta, image in zip((0.0, 5.12), codec.decompress(data, [0.0, 5.12])):
        d = objective.mse_weight * float((image - x).pow(2).mean())
        if beta > 0:
            scale = float(objective.realism_scale(torch.tensor([quality])))
            distance = multiscale_distance(perceptual, image, x, objective.perceptual_scales)
            d += beta * scale * objective.perceptual_weight * float(distance.mean())
        total += 0.5 * d
    return total


def test_shipped_model_refines_for_both_ends_of_beta() -> None:
    """With realism 0.5 the shipped model's refined stream scores better on the two-ended training objective,
    measured on the real bytes and decodings, than the encoder's, at two qualities."""
    codec = MultiRealismCodec.pretrained()
    assert (codec.objective.perceptual, codec.objective.perceptual_weight) == ("stlpips-alex", 0.390625)
    perceptual = build_perceptual(codec.objective.perceptual)
    x = natural_image("coffee", 96).unsqueeze(0)
    for quality in (0.0, codec.num_levels - 1.0):
        plain = codec.compress(x, quality)
        refined = coded(codec, x, quality, LatentRefinement(steps=2, realism=0.5))  # the README's setting
        after = two_ended_objective(codec, x, refined, quality, perceptual)
        assert after < two_ended_objective(codec, x, plain, quality, perceptual)


def test_command_line_refine(tmp_path, capsys) -> None:
    (tmp_path / "images").mkdir()
    image = tmp_path / "images" / "coffee.png"
    to_pil(natural_image("coffee", 48)).save(image)
    assert main(["compress", str(image), str(tmp_path / "a.mrc"), "--quality", "2", "--refine", "3"]) == 0
    assert main(["decompress", str(tmp_path / "a.mrc"), str(tmp_path / "a.png")]) == 0
    out = tmp_path / "ev"
    assert main(["evaluate", "--data", str(tmp_path / "images"), "--out", str(out), "--refine", "2", "--betas", "0",
                 "--model-qualities", "2", "--fid-extractor", "none", "--no-progress", "--no-viewer"]) == 0
    rows = list(csv.DictReader((out / "rows.csv").open()))
    assert len(rows) == 1 and float(rows[0]["bpp_estimate"]) > 0
    codec, x = MultiRealismCodec.pretrained(), natural_image("coffee", 48)
    refined = refine(codec, x, 2.0, LatentRefinement(2))  # the estimate is the refined latent's, not the encoder's
    assert float(rows[0]["bpp_estimate"]) == pytest.approx(float(codec.latent_bpp(refined)), rel=1e-6)
    assert float(rows[0]["bpp"]) == 8 * len(codec.compress_latent(refined)) / 48**2
    assert main(["compress", str(image), str(tmp_path / "b.mrc"), "--refine", "-1"]) == 2
    assert "steps must be 0 or more" in capsys.readouterr().err
    assert main(["compress", str(image), str(tmp_path / "b.mrc"), "--refine-realism", "0.5"]) == 2
    assert "--refine-realism needs --refine" in capsys.readouterr().err
    assert main(["compress", str(image), str(tmp_path / "b.mrc"), "--refine", "2", "--refine-realism", "2"]) == 2
    assert "realism must lie in [0, 1]" in capsys.readouterr().err
    assert main(["compress", str(image), str(tmp_path / "b.mrc"), "--refine", "2", "--refine-realism", "0.5"]) == 0
    codec.decompress((tmp_path / "b.mrc").read_bytes(), 5.12)  # an ordinary stream
    assert main(["evaluate", "--data", str(tmp_path / "images"), "--out", str(out), "--refine-realism", "1",
                 "--fid-extractor", "none", "--no-progress", "--no-viewer"]) == 2
    assert "--refine-realism needs --refine" in capsys.readouterr().err
    checkpoint = tmp_path / "tiny.pt"
    make_tiny_codec().save(checkpoint)
    assert main(["compress", str(image), str(tmp_path / "c.mrc"), "--ckpt", str(checkpoint), "--refine", "2"]) == 2
    assert "training objective" in capsys.readouterr().err
    assert main(["evaluate", "--ckpt", str(checkpoint), "--data", str(tmp_path / "images"),
                 "--out", str(tmp_path / "ev2"), "--refine", "2", "--fid-extractor", "none", "--no-progress", "--no-viewer"]) == 2
    assert "training objective" in capsys.readouterr().err
