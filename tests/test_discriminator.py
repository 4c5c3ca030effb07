"""Discriminators: registered, conditional on ŷ and β, spectral-normalised, built by the training module."""

import pytest
import torch

from multirealism import MultiRealismCodec, discriminators
from multirealism.zoo import tiny_config


@pytest.mark.parametrize("name", ["hific", "patchgan_ms"])
def test_registered_and_conditioned_on_latent_and_beta(name):
    torch.manual_seed(0)
    disc = discriminators.build(name, latent_channels=16, channels=[8, 16])
    assert any("parametrizations.weight" in n for n, _ in disc.named_parameters())  # spectral norm
    x, y_hat = torch.rand(2, 3, 64, 64), torch.randn(2, 16, 4, 4)
    base = disc(x, y_hat, torch.tensor([0.0, 0.0]))
    logits = [base] if torch.is_tensor(base) else base
    assert all(t.shape[:2] == (2, 1) for t in logits)
    disc.eval()  # no power iteration: outputs comparable
    ref = disc(x, y_hat, 0.0)
    other_beta = disc(x, y_hat, torch.tensor([5.12, 5.12]))
    other_latent = disc(x, y_hat + 1.0, 0.0)
    spatial = disc(x, y_hat, torch.rand(2, 1, 64, 64) * 5.12)
    for changed in (other_beta, other_latent, spatial):
        flat = lambda t: torch.cat([v.flatten() for v in ([t] if torch.is_tensor(t) else t)])  # noqa: E731
        assert not torch.allclose(flat(ref), flat(changed))


def test_hific_patch_logits_at_one_sixteenth():
    disc = discriminators.build("hific", latent_channels=16, channels=[8, 8, 8, 8])
    assert disc(torch.rand(1, 3, 128, 64), torch.randn(1, 16, 8, 4), 1.0).shape == (1, 1, 8, 4)


def test_training_module_builds_the_discriminator_from_its_spec_and_the_codec():
    """The discriminator belongs to training: its spec is a module hparam, its widths come from the codec."""
    from multirealism.training import DiscriminatorSettings, MultiRealismModule, Objective
    from multirealism.training.discriminators import build_discriminator

    codec = MultiRealismCodec.from_config(tiny_config())
    settings = DiscriminatorSettings(args={"channels": [8, 16]})
    module = MultiRealismModule(codec, discriminator=settings, objective=Objective(perceptual="none"))
    assert module.hparams["discriminator"]["name"] == "hific"
    assert module.hparams["discriminator"]["args"] == {"channels": [8, 16]}
    assert not any(k.startswith("discriminator.") for k in module.codec.state_dict())
    rebuilt = build_discriminator(DiscriminatorSettings(**module.hparams["discriminator"]), codec)
    assert rebuilt.state_dict().keys() == module.discriminator.state_dict().keys()
    assert module.discriminator.condition.latent_proj.in_channels == codec.generator.latent_channels
    with pytest.raises(ValueError, match="latent_channels"):
        DiscriminatorSettings(args={"latent_channels": 16})


def test_timm_backbone_discriminator_is_conditional_and_trainable():
    torch.manual_seed(0)
    disc = discriminators.build("timm", backbone="mobilenetv3_small_050", latent_channels=16)
    x, y_hat = torch.rand(2, 3, 64, 64, requires_grad=True), torch.randn(2, 16, 4, 4)
    logits = disc(x, y_hat, 0.0)
    assert logits.shape[:2] == (2, 1)
    logits.mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    disc.eval()
    with torch.no_grad():
        ref = disc(x, y_hat, 0.0)
        assert not torch.allclose(ref, disc(x, y_hat, 5.12))
        assert not torch.allclose(ref, disc(x, y_hat + 1.0, 0.0))
