"""Parts of the objective: β sampling, rate weights, loss terms and the LPIPS loader."""

import pytest
import torch
import torchvision

from multirealism.training import BetaSampler, FixedLambda, HiFiCLambdaSchedule, Objective, build_perceptual
from multirealism.training.losses import (
    beta_weighted_mean,
    discriminator_accuracy,
    discriminator_loss,
    generator_adversarial_loss,
)
from multirealism.training.perceptual import PerceptualWeightsError


def test_beta_sampled_per_image_in_range():
    torch.manual_seed(0)
    beta = BetaSampler(beta_max=5.12)(64, 32, 32)
    assert beta.shape == (64,)
    assert 0 <= float(beta.min()) and float(beta.max()) <= 5.12
    assert beta.unique().numel() == 64


def test_beta_zero_share_spatial_maps_and_fixed():
    assert torch.equal(BetaSampler(5.12, zero_fraction=1.0)(8, 16, 16), torch.zeros(8))
    maps = BetaSampler(5.12, spatial_fraction=1.0, grid=2)(3, 16, 16)
    assert maps.shape == (3, 1, 16, 16) and maps[0].unique().numel() > 1
    assert torch.equal(BetaSampler(5.12, fixed=2.56)(4, 8, 8), torch.full((4,), 2.56))
    with pytest.raises(ValueError):
        BetaSampler(beta_max=1.0, fixed=2.0)


def test_beta_at_the_two_ends_only():
    generator = torch.Generator().manual_seed(0)
    beta = BetaSampler(5.12, zero_fraction=0.5, max_fraction=0.5)(4000, 8, 8, generator=generator)
    assert torch.equal(beta.unique(), torch.tensor([0.0, 5.12]))
    assert abs(float((beta == 0).float().mean()) - 0.5) < 0.03
    generator = torch.Generator().manual_seed(0)
    mixed = BetaSampler(5.12, zero_fraction=0.2, max_fraction=0.3)(4000, 8, 8, generator=generator)
    assert abs(float((mixed == 0).float().mean()) - 0.2) < 0.03
    assert abs(float((mixed == 5.12).float().mean()) - 0.3) < 0.03
    inside = mixed[(mixed > 0) & (mixed < 5.12)]
    assert abs(inside.numel() / 4000 - 0.5) < 0.03 and float(inside.max()) < 5.12
    with pytest.raises(ValueError, match="must not exceed 1"):
        BetaSampler(5.12, zero_fraction=0.6, max_fraction=0.5)


def test_beta_stream_without_max_share_is_unchanged():
    """Configs written before ``max_fraction`` draw the same β for the same seed."""
    generator = torch.Generator().manual_seed(3)
    beta = BetaSampler(5.12, zero_fraction=0.1)(16, 8, 8, generator=generator)
    generator = torch.Generator().manual_seed(3)
    uniform = torch.rand(16, generator=generator) * 5.12
    zero = torch.rand(16, generator=generator) < 0.1
    assert torch.equal(beta, torch.where(zero, torch.zeros_like(uniform), uniform))


def test_beta_max_is_said_once_by_the_codec():
    from multirealism import MultiRealismCodec
    from multirealism.zoo import tiny_config
    from multirealism.training import MultiRealismModule

    with pytest.raises(ValueError, match="beta_max"):
        BetaSampler()(2, 8, 8)
    codec = MultiRealismCodec.from_config(tiny_config())
    module = MultiRealismModule(codec, objective=Objective(perceptual="none"), beta_sampler=BetaSampler(zero_fraction=0.5))
    assert module.beta_sampler.beta_max == codec.beta_max
    assert module.hparams["beta_sampler"]["init_args"]["beta_max"] == codec.beta_max
    with pytest.raises(ValueError, match="fixed"):
        MultiRealismModule(codec, objective=Objective(perceptual="none"), beta_sampler=BetaSampler(fixed=codec.beta_max + 1))


def test_rate_weights():
    schedule = HiFiCLambdaSchedule(target_bpp=0.3, lambda_a=1.0, lambda_b=2.0**-6)
    assert schedule(torch.tensor([0.5, 0.4])) == 1.0
    assert schedule(torch.tensor([0.1])) == 2.0**-6
    assert FixedLambda(0.01)(torch.tensor(9.0)) == 0.01
    assert schedule.config()["type"] == "HiFiCLambdaSchedule"


def test_default_weights_follow_the_paper_normalisation():
    w = Objective()
    assert w.mse_weight == 150.0
    assert w.perceptual_weight * 2.56 == pytest.approx(1.0) and w.adversarial_weight * 2.56 == pytest.approx(0.001)
    with pytest.raises(ValueError, match="mse_weight"):
        Objective(mse_weight=-1.0)


def test_gan_losses_and_beta_weighting():
    logits = torch.zeros(2, 1, 4, 4)
    assert discriminator_loss(logits, logits).item() == pytest.approx(2 * torch.log(torch.tensor(2.0)).item())
    beta = torch.tensor([0.0, 2.0])
    assert generator_adversarial_loss([logits, logits[..., :2, :2]], beta).item() == pytest.approx(
        torch.log(torch.tensor(2.0)).item()
    )
    values = torch.ones(2, 1, 4, 4)
    beta_map = torch.zeros(2, 1, 8, 8)
    beta_map[..., :4, :] = 4.0  # top half only
    assert beta_weighted_mean(values, beta_map).item() == pytest.approx(2.0)


def test_discriminator_accuracy_counts_patches_on_the_right_side_of_zero():
    real = torch.tensor([1.0, -1.0, 2.0, 3.0]).reshape(1, 1, 2, 2)  # 3 of 4 called real
    fake = torch.tensor([-1.0, -2.0, 0.5, 0.0]).reshape(1, 1, 2, 2)  # 2 of 4 called fake, a zero counts half
    assert discriminator_accuracy(real, fake).item() == pytest.approx(0.5 * (0.75 + 2.5 / 4))
    zeros = torch.zeros(2, 1, 4, 4)  # a discriminator that has learnt nothing is at chance
    assert discriminator_accuracy(zeros, zeros).item() == pytest.approx(0.5)
    assert discriminator_accuracy(-real, -fake).item() == pytest.approx(0.5 * (0.25 + 1.5 / 4))  # fooled
    # multi-scale: the mean of the scales' accuracies
    both = discriminator_accuracy([real, zeros[:1, :, :2, :2] + 1], [fake, zeros[:1, :, :2, :2] - 1])
    assert both.item() == pytest.approx(0.5 * (0.5 * (0.75 + 2.5 / 4) + 1.0))


def test_lpips_refuses_to_run_without_pretrained_backbone(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(PerceptualWeightsError, match="lpips_backbone_path"):
        build_perceptual("lpips-alex", allow_download=False)
    with pytest.raises(PerceptualWeightsError, match="does not exist"):
        build_perceptual("lpips-alex", backbone_path=str(tmp_path / "missing.pth"))


def test_lpips_loads_a_local_backbone_file(tmp_path):
    torch.manual_seed(1)
    alexnet = torchvision.models.alexnet(weights=None)
    path = tmp_path / "alexnet.pth"
    torch.save(alexnet.state_dict(), path)
    perceptual = build_perceptual("lpips-alex", backbone_path=str(path))
    assert torch.equal(perceptual.lpips.net.slice1[0].weight, alexnet.features[0].weight)
    assert torch.equal(getattr(perceptual.lpips.net.slice5, "10").weight, alexnet.features[10].weight)
    x = torch.rand(2, 3, 32, 32)
    assert perceptual(x, x).abs().max() < 1e-6
    assert perceptual(x, x.flip(-1), spatial=True).shape == (2, 1, 32, 32)


def test_random_backbone_only_by_explicit_name():
    with pytest.warns(UserWarning, match="untrained"):
        assert build_perceptual("lpips-random-test-only") is not None
    assert build_perceptual("none") is None
    with pytest.raises(ValueError):
        build_perceptual("lpips-vgg-typo")
