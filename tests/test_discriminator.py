"""Discriminators: registered, conditional on ŷ and β, spectral-normalised, built by the training module."""

import pytest
import torch
import torch.nn.functional as F
from helpers import natural_image

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


def test_projected_discriminator_is_conditional_on_a_frozen_backbone():
    pytest.importorskip("stlpips_pytorch")
    torch.manual_seed(0)
    disc = discriminators.build("projected", latent_channels=16, channels=8).eval()
    assert not any(p.requires_grad for p in disc.backbone.parameters())
    x, y_hat = torch.rand(2, 3, 64, 64), torch.randn(2, 16, 4, 4)
    with torch.no_grad():
        ref = torch.cat([t.flatten() for t in disc(x, y_hat, 0.0)])
        for changed in (disc(x, y_hat, 5.12), disc(x, y_hat + 1.0, 0.0), disc(x, y_hat, torch.rand(2, 1, 64, 64) * 5.12)):
            assert len(changed) == 3 and not torch.allclose(ref, torch.cat([t.flatten() for t in changed]))
    deep = discriminators.build("projected", latent_channels=16, channels=8, layers=(1, 4, 5)).eval()
    with torch.no_grad():
        maps = deep(x, y_hat, 0.0)
    assert [m.shape[1] for m in maps] == [1, 1, 1] and maps[1].shape == maps[2].shape == maps[0][..., ::4, ::4].shape
    with pytest.raises(ValueError, match="layers"):
        discriminators.build("projected", latent_channels=16, layers=(6,))
    vgg = discriminators.build("projected", latent_channels=16, channels=8, backbone="vgg").eval()
    assert not any(p.requires_grad for p in vgg.backbone.parameters())
    with torch.no_grad():
        maps = vgg(x, y_hat, 0.0)
    assert [m.shape[-1] for m in maps] == [64, 33, 17]  # stage 1 at full resolution: it sees pixel structure
    with pytest.raises(ValueError, match="backbone must be one of alex, vgg"):
        discriminators.build("projected", latent_channels=16, backbone="squeeze")


def _crops(images, count, size, generator):
    """``count`` random ``size``² crops from ``images`` (each (3, H, W)), and the same crops blurred."""
    crops = []
    for _ in range(count):
        img = images[int(torch.randint(len(images), (1,), generator=generator))]
        top, left = (int(torch.randint(n - size + 1, (1,), generator=generator)) for n in img.shape[-2:])
        crops.append(img[:, top : top + size, left : left + size])
    real = torch.stack(crops)
    blurred = F.interpolate(F.avg_pool2d(real, 4), scale_factor=4, mode="bilinear", align_corners=False)
    return real, blurred


def _held_out_accuracy(disc, steps: int, lr: float) -> float:
    """Train ``disc`` alone (batches of 4 real 64² photo crops against the same crops blurred, one
    latent for both) and return its patch accuracy on crops of a photograph it never saw."""
    from multirealism.training.losses import discriminator_accuracy, discriminator_loss

    train = [natural_image(name, 256) for name in ("astronaut", "coffee", "rocket")]
    g = torch.Generator().manual_seed(0)
    optimizer = torch.optim.Adam([p for p in disc.parameters() if p.requires_grad], lr=lr, betas=(0.5, 0.999))
    for _ in range(steps):
        real, fake = _crops(train, 4, 64, g)
        y_hat = torch.randn(4, 8, 4, 4, generator=g)
        loss = discriminator_loss(disc(real, y_hat, 0.0), disc(fake, y_hat, 0.0))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    real, fake = _crops([natural_image("chelsea", 256)], 32, 64, g)
    y_hat = torch.randn(32, 8, 4, 4, generator=g)
    disc.eval()
    with torch.no_grad():
        return float(discriminator_accuracy(disc(real, y_hat, 0.0), disc(fake, y_hat, 0.0)))


@pytest.mark.parametrize(
    "name, args, floor",
    [
        ("hific", {"channels": [16, 32, 64, 64]}, 0.7),
        ("patchgan_ms", {"channels": [16, 32, 32]}, 0.6),
        ("projected", {"channels": 16}, 0.65),
    ],
)
def test_discriminator_learns_to_tell_photos_from_blurred_copies(name, args, floor):
    """A discriminator stuck at chance gives the generator no signal (docs/discriminator-diagnosis.md):
    40 steps must separate crops of an unseen photograph from blurred copies (chance is 0.5)."""
    if name == "projected":
        pytest.importorskip("stlpips_pytorch")
    torch.manual_seed(0)
    disc = discriminators.build(name, latent_channels=8, **args)
    assert _held_out_accuracy(disc, steps=40, lr=4e-4) > floor
