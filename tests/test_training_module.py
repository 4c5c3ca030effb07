"""MultiRealismModule on CPU: G/D updates, frozen D in the G step, β per image, NaN skipping,
checkpoints (safe, resumable, loadable by the codec), warm-up initialisation and bf16."""

from typing import Any, Dict, List, Optional

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from torch.utils.data import DataLoader

from multirealism import MultiRealismCodec
from multirealism.zoo import tiny_config
from multirealism.training import (
    DiscriminatorSettings,
    FixedLambda,
    Initialization,
    MultiRealismModule,
    Objective,
    Optimization,
)


def tiny_module(gan: bool = True, seed: int = 0, perceptual: str = "none", disc: Optional[Dict[str, Any]] = None,
                init: Initialization = Initialization(), **kwargs) -> MultiRealismModule:
    """A tiny codec's module: ``disc`` sets the discriminator's fields, ``perceptual`` the objective's distance."""
    torch.manual_seed(seed)
    discriminator = DiscriminatorSettings(args={"channels": [8, 16, 16, 16]}, **(disc or {})) if gan else None
    return MultiRealismModule(MultiRealismCodec.from_config(tiny_config()), objective=Objective(perceptual=perceptual),
                              discriminator=discriminator, optimization=Optimization(lr=1e-3), init=init, **kwargs)


def images(n: int = 4, size: int = 32) -> torch.Tensor:
    torch.manual_seed(123)
    return torch.rand(n, 3, size, size)


def trainer(max_steps: int, **kwargs) -> L.Trainer:
    kwargs.setdefault("logger", False)
    kwargs.setdefault("enable_checkpointing", False)
    kwargs.setdefault("limit_val_batches", 0)
    return L.Trainer(
        accelerator="cpu", devices=1, max_steps=max_steps, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0, **kwargs,
    )


def snapshot(module: torch.nn.Module) -> Dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def changed(before: Dict[str, torch.Tensor], module: torch.nn.Module) -> bool:
    return any(not torch.equal(before[k], v) for k, v in module.state_dict().items() if v.is_floating_point())


def test_gd_steps_train_both_networks_and_lower_a_fixed_batch_loss():
    module = tiny_module(rate_weight=FixedLambda(0.01))
    x = images()
    fixed_beta = torch.full((4,), 2.56)

    def fixed_batch_loss() -> float:
        torch.manual_seed(7)
        with torch.no_grad():
            return module.generator_terms(x, module.codec(x, fixed_beta), fixed_beta)["loss"].item()

    before_loss = fixed_batch_loss()
    generator, discriminator = snapshot(module.codec.generator), snapshot(module.discriminator)
    trainer(8).fit(module, DataLoader(x, batch_size=4))
    assert changed(generator, module.codec.generator)
    assert changed(discriminator, module.discriminator)
    assert fixed_batch_loss() < before_loss


class GradientRecorder(Callback):
    """Records, after each backward, which parameter groups received gradients."""

    def __init__(self) -> None:
        self.calls: List[Dict[str, bool]] = []

    def on_after_backward(self, trainer, module) -> None:
        def has_grad(prefix: str) -> bool:
            return any(p.grad is not None and bool(p.grad.abs().sum() > 0)
                       for n, p in module.named_parameters() if n.startswith(prefix))

        self.calls.append({"generator": has_grad("codec.generator."), "discriminator": has_grad("discriminator.")})


def test_discriminator_gets_no_gradient_from_the_generator_step():
    recorder = GradientRecorder()
    trainer(1, callbacks=[recorder]).fit(tiny_module(), DataLoader(images(), batch_size=4))
    g_step, d_step, aux_step = recorder.calls
    assert g_step == {"generator": True, "discriminator": False}
    assert d_step == {"generator": False, "discriminator": True}
    assert aux_step == {"generator": False, "discriminator": False}


def test_discriminator_warmup_steps_train_the_discriminator_alone_then_both():
    module = tiny_module(rate_weight=FixedLambda(0.01), disc={"warmup_steps": 2})
    codec, discriminator = snapshot(module.codec), snapshot(module.discriminator)
    recorder = GradientRecorder()
    run = trainer(2, callbacks=[recorder])
    run.fit(module, DataLoader(images(), batch_size=4))
    assert run.global_step == 2  # a warm-up step counts as a training iteration
    moved = [k for k, v in module.codec.state_dict().items() if v.is_floating_point() and not torch.equal(codec[k], v)]
    assert all(k.endswith("entropy_bottleneck.quantiles") for k in moved)  # only the aux step's, on its own optimiser
    assert changed(discriminator, module.discriminator)
    assert recorder.calls[0] == {"generator": False, "discriminator": True}
    assert "train/loss" not in run.callback_metrics and "loss" not in run.callback_metrics  # no generator objective
    assert 0.0 <= float(run.callback_metrics["train/d_accuracy"]) <= 1.0
    run = trainer(3, callbacks=[recorder])
    run.fit(module, DataLoader(images(), batch_size=4))  # the third step is a full one
    assert changed(codec, module.codec) and torch.isfinite(run.callback_metrics["train/loss"])


def test_discriminator_betas_reach_its_optimiser_and_the_codecs_keep_the_default():
    optimizers, _ = tiny_module(disc={"betas": [0.5, 0.99]}).configure_optimizers()
    codec_opt, disc_opt, _aux = optimizers
    assert disc_opt.param_groups[0]["betas"] == (0.5, 0.99) and codec_opt.param_groups[0]["betas"] == (0.9, 0.999)
    assert tiny_module().configure_optimizers()[0][1].param_groups[0]["betas"] == (0.9, 0.999)


@pytest.mark.parametrize("kwargs, match", [
    ({"warmup_steps": -1}, "non-negative"),
    ({"betas": (0.5,)}, "two values in"),
    ({"betas": (0.5, 1.0)}, "two values in"),
])
def test_discriminator_warmup_steps_and_betas_refuse_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tiny_module(disc=kwargs)


def betas_seen_in_training(module: MultiRealismModule, steps: int = 2) -> List[torch.Tensor]:
    """The β the codec's forward received in ``steps`` training steps on batches of 4."""
    seen: List[torch.Tensor] = []
    forward = module.codec.forward

    def recording_forward(x, beta=0.0):
        seen.append(beta)
        return forward(x, beta)

    module.codec.forward = recording_forward
    trainer(steps).fit(module, DataLoader(images(), batch_size=4))
    return seen


def test_beta_is_drawn_per_image():
    seen = betas_seen_in_training(tiny_module())
    assert all(b.shape == (4,) and b.unique().numel() == 4 for b in seen)


def test_without_a_beta_weighted_term_training_runs_at_beta_zero():
    """Rate-distortion warm-up: a random β the loss ignores would teach the generator to ignore β."""
    module = tiny_module(gan=False)
    assert not module.beta_in_loss and tiny_module(gan=True).beta_in_loss
    seen = betas_seen_in_training(module)
    assert seen and all(b.shape == (4,) and not b.any() for b in seen)


def test_non_finite_loss_skips_the_update():
    module = tiny_module()
    terms = module.generator_terms

    def poisoned(x, out, beta):
        result = terms(x, out, beta)
        result["loss"] = result["loss"] * float("nan")
        return result

    module.generator_terms = poisoned
    before = snapshot(module.codec.generator)
    run = trainer(2, limit_train_batches=2, max_epochs=1)
    run.fit(module, DataLoader(images(8), batch_size=4))
    assert not changed(before, module.codec.generator)
    assert run.global_step == 0
    assert run.callback_metrics["train/nonfinite_skipped"] == 1.0


def test_checkpoint_is_safe_loadable_and_resumes_from_its_step(tmp_path):
    data = DataLoader(images(8), batch_size=4)
    first = trainer(3, callbacks=[ModelCheckpoint(dirpath=tmp_path, save_last=True)], enable_checkpointing=True)
    first.fit(tiny_module(), data)
    path = tmp_path / "last.ckpt"
    checkpoint = torch.load(path, weights_only=True)
    assert checkpoint["global_step"] == 3
    assert checkpoint["hyper_parameters"]["discriminator"]["name"] == "hific"
    assert any(k.startswith("discriminator.") for k in checkpoint["state_dict"])
    assert not any(k.startswith("perceptual.") for k in checkpoint["state_dict"])
    codec = MultiRealismCodec.from_checkpoint(path)
    assert codec.decompress(codec.compress(images(1)[0]), beta=2.56).shape == (1, 3, 32, 32)

    resumed_module = tiny_module(seed=1)
    steps_at_start = []
    resumed_module.on_train_start = lambda: steps_at_start.append(
        (resumed_module.trainer.global_step, resumed_module.optimizers()[0].optimizer.state_dict()["state"][0]["step"].item())
    )
    second = trainer(5)
    second.fit(resumed_module, data, ckpt_path=path)
    assert steps_at_start == [(3, 3.0)]
    assert second.global_step == 5


def test_gan_stage_initialised_from_the_warm_up_checkpoint(tmp_path):
    warmup = tiny_module(gan=False)
    trainer(2, callbacks=[ModelCheckpoint(dirpath=tmp_path, save_last=True)], enable_checkpointing=True).fit(
        warmup, DataLoader(images(), batch_size=4)
    )
    full = tiny_module(gan=True, seed=5, init=Initialization(checkpoint=str(tmp_path / "last.ckpt")))
    for key, value in warmup.codec.generator.state_dict().items():
        assert torch.equal(full.codec.generator.state_dict()[key], value)


def test_bf16_mixed_precision_finishes_with_finite_losses():
    module = tiny_module(perceptual="lpips-random-test-only")
    run = trainer(2, precision="bf16-mixed")
    run.fit(module, DataLoader(images(), batch_size=4))
    assert run.global_step == 2
    for name in ("train/loss", "train/d_loss", "train/bpp", "train/lpips", "train/aux_loss"):
        assert torch.isfinite(run.callback_metrics[name]), name
    assert 0.0 <= float(run.callback_metrics["train/d_accuracy"]) <= 1.0
    assert run.callback_metrics["train/nonfinite_skipped"] == 0.0


def test_validation_logs_psnr_lpips_and_real_bpp():
    module = tiny_module(perceptual="lpips-random-test-only", val_betas=[0.0, 5.12], val_real_bpp_batches=1)
    metrics = trainer(1, limit_val_batches=None).validate(module, DataLoader(images(2), batch_size=1), verbose=False)[0]
    for name in ("val/psnr_beta0", "val/psnr_beta5.12", "val/lpips_beta0", "val/bpp", "val/bpp_real"):
        assert name in metrics and metrics[name] == metrics[name]
    assert metrics["val/bpp_real"] > 0


def test_atomic_checkpoint_io_leaves_no_temp_files(tmp_path):
    from multirealism.training import AtomicCheckpointIO

    io = AtomicCheckpointIO()
    io.save_checkpoint({"state_dict": {"w": torch.ones(2)}}, tmp_path / "sub" / "last.ckpt")
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["last.ckpt"]
    assert torch.equal(torch.load(tmp_path / "sub" / "last.ckpt", weights_only=True)["state_dict"]["w"], torch.ones(2))


@pytest.mark.parametrize("trainable,quantiles_train", [
    (None, True), (["entropy_model"], True), (["encoder", "entropy_model"], True),
    (["encoder"], False), (["generator"], False),
])
def test_quantiles_train_only_while_their_density_does(trainable, quantiles_train):
    from multirealism.training.initialization import quantile_parameters

    module = tiny_module(gan=False, rate_weight=FixedLambda(0.01), init=Initialization(trainable=trainable))
    quantiles = quantile_parameters(module.codec)
    assert quantiles and all(q.requires_grad == quantiles_train for q in quantiles)
    before = [q.detach().clone() for q in quantiles]
    run = trainer(2)
    run.fit(module, DataLoader(images(), batch_size=4))
    assert all(torch.equal(b, q) for b, q in zip(before, quantiles)) != quantiles_train
    assert ("train/aux_loss" in run.callback_metrics) == quantiles_train


def test_a_generator_only_stage_keeps_the_bitstream_and_trains_the_decoder():
    module = tiny_module(rate_weight=FixedLambda(0.01), init=Initialization(trainable=["generator"]))
    x = images()
    module.codec.update(force=True)
    module.codec.eval()
    bitstream = module.codec.compress(x[:1])
    encoder, entropy = snapshot(module.codec.encoder), snapshot(module.codec.entropy_model)
    generator = snapshot(module.codec.generator)
    trainer(4).fit(module, DataLoader(x, batch_size=4))
    assert changed(generator, module.codec.generator)
    assert not changed(encoder, module.codec.encoder)
    # quantiles included: their density is frozen, so the auxiliary loss does not move them either
    assert all(torch.equal(entropy[k], v) for k, v in module.codec.entropy_model.state_dict().items()
               if v.is_floating_point())
    module.codec.update(force=True)
    module.codec.eval()
    # the same symbols under the same tables; only the header's model fingerprint (generator weights) moved
    assert len(module.codec.compress(x[:1])) == len(bitstream)
    assert module.hparams["init"]["trainable"] == ("generator",)  # rebuilt the same way on `fit --ckpt_path`
    with pytest.raises(ValueError, match="is not a part of this codec"):
        tiny_module(init=Initialization(trainable=["decoder"]))


def test_perceptual_scales_average_the_distance_over_downscaled_pairs():
    torch.manual_seed(5)
    x, x_hat = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    plain = tiny_module(gan=False, perceptual="lpips-random-test-only", seed=1)
    torch.manual_seed(1)  # as tiny_module(seed=1): the same random perceptual network
    multi = MultiRealismModule(MultiRealismCodec.from_config(tiny_config()),
                               objective=Objective(perceptual="lpips-random-test-only", perceptual_scales=(1, 2)))
    per_image = torch.ones(2)  # one β per image
    with torch.no_grad():
        full = plain.perceptual_map(x_hat, x, per_image)
        half = plain.perceptual(torch.nn.functional.avg_pool2d(x_hat, 2), torch.nn.functional.avg_pool2d(x, 2))
        torch.testing.assert_close(multi.perceptual_map(x_hat, x, per_image), (full + half.view_as(full)) / 2)
        assert not torch.allclose(full, half.view_as(full))  # the coarse scale adds something
        spatial = multi.perceptual_map(x_hat, x, torch.ones(2, 1, 64, 64))  # a β map: per-pixel, full size
        assert spatial.shape[-2:] == (64, 64)
        torch.testing.assert_close(spatial.mean((1, 2, 3)), multi.perceptual_map(x_hat, x, per_image).view(-1),
                                   rtol=2e-2, atol=1e-3)


@pytest.mark.parametrize("kwargs, match", [
    ({"perceptual_scales": [], "perceptual": "lpips-random-test-only"}, "distinct positive integers"),
    ({"perceptual_scales": [1, 1], "perceptual": "lpips-random-test-only"}, "distinct positive integers"),
    ({"perceptual_scales": [0.5], "perceptual": "lpips-random-test-only"}, "distinct positive integers"),
    ({"perceptual_scales": [1, 2], "perceptual": "none"}, "needs a perceptual distance, and none is set"),
])
def test_perceptual_scales_refuse_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MultiRealismModule(MultiRealismCodec.from_config(tiny_config()), objective=Objective(**kwargs))
