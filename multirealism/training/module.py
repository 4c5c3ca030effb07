"""LightningModule training a :class:`~multirealism.MultiRealismCodec` with the multi-realism objective.

Manual optimisation, one training step = one generator update, one discriminator update (GAN
stage only) and one update of the entropy bottleneck's quantiles on CompressAI's auxiliary loss (while
the bottleneck's density trains); during the discriminator's ``warmup_steps`` a step is its update alone.
``trainer.global_step`` counts training iterations (one counted update each), so ``max_steps``, LR
milestones and checkpoint intervals are in training iterations, warm-up steps included.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import Tensor
from torch.nn.modules.module import _IncompatibleKeys
from torch.optim import Adam, Optimizer
from torch.optim.lr_scheduler import MultiStepLR

from multirealism.checkpoint import CONFIG_KEY, OBJECTIVE_KEY
from multirealism.codec import CodecOutput, MultiRealismCodec
from multirealism.perceptual_scales import check_scales, multiscale_distance
from multirealism.training.beta_sampling import BetaSampler
from multirealism.training.discriminators import build_discriminator
from multirealism.training.initialization import freeze_all_but, load_codec_weights, quantile_parameters
from multirealism.training.losses import (
    beta_weighted_mean,
    discriminator_accuracy,
    discriminator_loss,
    generator_adversarial_loss,
    mse_per_image,
)
from multirealism.training.perceptual import build_perceptual
from multirealism.training.quality import RateLadder, level_metrics
from multirealism.training.rate_schedule import HiFiCLambdaSchedule, RateWeight
from multirealism.training.settings import DiscriminatorSettings, Initialization, Objective, Optimization

def class_path_config(obj: Any) -> Dict[str, Any]:
    """``{class_path, init_args}`` of a plain-attribute object, so LightningCLI can re-parse it on resume."""
    return {"class_path": f"{type(obj).__module__}.{type(obj).__qualname__}", "init_args": dict(vars(obj))}


def batch_images(batch: Any) -> Tensor:
    """The image tensor of a batch: a tensor, the first item of a tuple/list, or ``batch["image"]``."""
    if isinstance(batch, dict):
        batch = batch["image"]
    elif isinstance(batch, (list, tuple)):
        batch = batch[0]
    if not torch.is_tensor(batch) or batch.dim() != 4:
        raise TypeError(f"expected a batch of images shaped (B, 3, H, W), got {type(batch).__name__}")
    return batch


class MultiRealismModule(L.LightningModule):
    """Trains ``codec`` on λ·rate + k_M·MSE + β·(C_P·P + C_adv·L_adv) with β drawn per image.

    Args:
        codec: the codec (encoder, entropy model, generator, rate control).
        objective: the loss weights and the perceptual distance (:class:`~multirealism.training.settings.Objective`).
        discriminator: the GAN stage's discriminator and its optimiser; None gives the rate-distortion(-perceptual)
            stage, with no adversarial term.
        rate_ladder: λ per quality level, required when the codec has a rate control (a level is drawn per
            image); validation then also logs every level's bpp, PSNR and perceptual distance at β = 0 and at
            the largest of ``val_betas``. With fixed λs it becomes the codec's stored
            :class:`~multirealism.objective.RateDistortionObjective`.
        rate_weight: λ as a function of the batch bpp for a codec with one rate; default HiFiC's schedule.
        beta_sampler: how β is drawn per image; default uniform in [0, codec.beta_max]. When no loss term
            depends on β (no discriminator and no perceptual term: the rate-distortion warm-up), the generator
            trains at β = 0: a random β the loss ignores only teaches it to silence its β conditioning.
        optimization: learning rates, their schedule and gradient clipping.
        init: the checkpoint a run starts from, the parts that start afresh, the parts that train.
        val_betas: β values at which validation reports PSNR, the perceptual distance and bpp.
        val_real_bpp_batches: validation batches per epoch also really compressed, to log the bitstream's bpp.
    """

    def __init__(
        self,
        codec: MultiRealismCodec,
        objective: Objective = Objective(),
        discriminator: Optional[DiscriminatorSettings] = None,
        rate_ladder: Optional[RateLadder] = None,
        rate_weight: Optional[RateWeight] = None,
        beta_sampler: Optional[BetaSampler] = None,
        optimization: Optimization = Optimization(),
        init: Initialization = Initialization(),
        val_betas: Sequence[float] = (0.0, 2.56, 5.12),
        val_real_bpp_batches: int = 2,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        self._saved_step: Optional[int] = None  # global step of the last checkpoint written
        groups = ["objective", "discriminator", "optimization", "init"]
        self.save_hyperparameters(ignore=["codec", "rate_weight", "beta_sampler", "rate_ladder", *groups])
        self.codec = codec
        self.objective, self.optimization, self.discriminator_settings = objective, optimization, discriminator
        self.discriminator = None if discriminator is None else build_discriminator(discriminator, codec)
        self.rate_weight = rate_weight if rate_weight is not None else HiFiCLambdaSchedule()
        self.beta_sampler = beta_sampler if beta_sampler is not None else BetaSampler()
        if self.beta_sampler.beta_max is None:
            self.beta_sampler.set_beta_max(codec.beta_max)
        elif self.beta_sampler.beta_max > codec.beta_max:
            raise ValueError(f"beta_sampler.beta_max {self.beta_sampler.beta_max} exceeds the codec's {codec.beta_max}")
        self.perceptual = build_perceptual(objective.perceptual, objective.lpips_backbone_path)
        self.perceptual_scales = check_scales(objective.perceptual_scales, has_perceptual=self.perceptual is not None)
        #: whether any loss term is weighted by β; without one, training runs at β = 0 (see beta_sampler)
        self.beta_in_loss = self.discriminator is not None or self.perceptual is not None
        self.val_betas = [float(b) for b in val_betas]
        self.val_real_bpp_batches = int(val_real_bpp_batches)
        # plain data: checkpoints load with weights_only=True, and `fit --ckpt_path` re-parses these (issue 14)
        self.hparams.update({name: None if value is None else asdict(value) for name, value in
                             zip(groups, (objective, discriminator, optimization, init))})
        self.hparams.update(rate_weight=class_path_config(self.rate_weight), beta_sampler=class_path_config(self.beta_sampler))
        if (rate_ladder.num_levels if rate_ladder is not None else 1) != codec.num_levels:
            raise ValueError(f"the codec has {codec.num_levels} rate levels but rate_ladder gives "
                             f"{'none' if rate_ladder is None else rate_ladder.num_levels}; give one λ per level")
        self.rate_ladder = rate_ladder
        if rate_ladder is not None:  # its constructor arguments, in the same class_path form
            self.hparams.update(rate_ladder=rate_ladder.class_path_config())
        if init.checkpoint is not None:
            load_codec_weights(codec, self.discriminator, init.checkpoint, init.new_parts, init.copy_parts)
        if init.trainable is not None:
            freeze_all_but(codec, init.trainable)
        codec.objective = objective.stored(rate_ladder, has_perceptual=self.perceptual is not None)

    def configure_optimizers(self) -> Tuple[List[Optimizer], List[Any]]:
        quantiles = {id(p) for p in quantile_parameters(self.codec)}
        main = [p for p in self.codec.parameters() if id(p) not in quantiles and p.requires_grad]
        settings, optimization = self.discriminator_settings, self.optimization
        optimizers: List[Optimizer] = [Adam(main, lr=optimization.lr)]
        if settings is not None:
            trainable = [p for p in self.discriminator.parameters() if p.requires_grad]  # a frozen backbone stays out
            optimizers.append(Adam(trainable, lr=settings.lr, betas=settings.betas))
        optimizers.append(Adam(quantile_parameters(self.codec), lr=optimization.aux_lr))
        schedulers = [MultiStepLR(opt, list(optimization.lr_milestones), optimization.lr_gamma) for opt in optimizers[:-1]]
        return optimizers, schedulers

    # ------------------------------------------------------------------ objective
    def perceptual_map(self, x_hat: Tensor, x: Tensor, beta: Tensor) -> Tensor:
        """LPIPS per image ``(B, 1, 1, 1)``, or per pixel when β is a spatial map; the mean over
        ``perceptual_scales`` (a coarse scale's map is brought back to full size)."""
        assert self.perceptual is not None
        return multiscale_distance(self.perceptual, x_hat, x, self.perceptual_scales, spatial=beta.dim() == 4)

    def generator_terms(
        self, x: Tensor, out: CodecOutput, beta: Tensor, quality: Optional[Tensor] = None
    ) -> Dict[str, Tensor]:
        """All terms of the generator-side objective; ``loss`` is their weighted sum."""
        bpp = out.bpp.mean()
        if self.rate_ladder is not None and quality is not None:
            rate, lmbda = self.rate_ladder.rate_loss(out.bpp, quality)
        else:
            lmbda = self.rate_weight(bpp)  # a float or a 0-d tensor on bpp's device (no host sync)
            rate = lmbda * bpp
        mse = mse_per_image(out.x_hat, x).mean()
        loss = rate + self.objective.mse_weight * mse
        terms = {"bpp": bpp, "mse": mse, "lambda": torch.as_tensor(lmbda, dtype=torch.float32, device=bpp.device)}
        # β as the loss weighs it: the ladder may scale it per rate level (the codec saw the drawn β)
        loss_beta = beta if self.rate_ladder is None or quality is None else self.rate_ladder.loss_beta(beta, quality)
        if self.perceptual is not None:
            lpips_map = self.perceptual_map(out.x_hat, x, beta)
            terms[self.perceptual.key] = lpips_map.mean()
            loss = loss + self.objective.perceptual_weight * beta_weighted_mean(lpips_map, loss_beta)
        if self.discriminator is not None:
            fake_logits = self.discriminator(out.x_hat, out.y_hat, beta)
            adversarial = generator_adversarial_loss(fake_logits, loss_beta)
            terms["adversarial"] = adversarial
            loss = loss + self.objective.adversarial_weight * adversarial
        terms["loss"] = loss
        return terms

    # ------------------------------------------------------------------ training
    def _finite_everywhere(self, loss: Tensor) -> bool:
        return bool(self.trainer.strategy.reduce_boolean_decision(bool(torch.isfinite(loss)), all=True))

    def _update(self, optimizer: Any, loss: Tensor, clip: bool, counted: bool) -> bool:
        """Backward and step ``optimizer`` (already toggled) unless the loss is non-finite on any rank."""
        try:
            if not self._finite_everywhere(loss):
                return False
            self.manual_backward(loss)
            self._clip_next_step = clip and self.optimization.gradient_clip_val is not None  # see on_before_optimizer_step
            if counted:
                optimizer.step()
            else:  # the same step without advancing trainer.global_step (see module docstring)
                self.trainer.strategy.optimizer_step(optimizer.optimizer, closure=lambda: None, model=self)
            return True
        finally:
            optimizer.zero_grad(set_to_none=True)

    def on_before_optimizer_step(self, optimizer: Optimizer) -> None:
        """Clip here, not after ``manual_backward``: under 16-mixed the precision plugin unscales
        the gradients just before this hook, so clipping acts on true gradient norms (issue 14)."""
        if getattr(self, "_clip_next_step", False):
            self.clip_gradients(optimizer, gradient_clip_val=self.optimization.gradient_clip_val,
                                gradient_clip_algorithm="norm")
            self._clip_next_step = False

    def beta_generator(self, device: torch.device) -> torch.Generator:
        """β's random stream: seeded from the global seed and this rank, so ranks draw different β."""
        generator = getattr(self, "_beta_generator", None)
        if generator is None or generator.device != device:
            generator = torch.Generator(device=device)
            generator.manual_seed(torch.initial_seed() + 1_000_003 * self.global_rank)
            self._beta_generator = generator
        return generator

    def training_step(self, batch: Any, batch_idx: int) -> None:
        x = batch_images(batch)
        optimizers = self.optimizers()
        opt_g, opt_aux = optimizers[0], optimizers[-1]
        generator = self.beta_generator(x.device)
        beta = self.beta_sampler(x.shape[0], x.shape[-2], x.shape[-1], device=x.device, generator=generator)
        if not self.beta_in_loss:  # drawn all the same, so the rate levels below come from the same stream
            beta = torch.zeros_like(beta)
        # a quality level per image when the codec has a rate control (no extra argument otherwise),
        # drawn after β from the same per-rank stream
        rate = {} if self.rate_ladder is None else {"quality": self.rate_ladder.sample(x.shape[0], x.device, generator)}

        settings = self.discriminator_settings
        warming_up = settings is not None and self.global_step < settings.warmup_steps
        if warming_up:  # only the discriminator learns: the codec runs without gradients
            with torch.no_grad():
                out = self.codec(x, beta, **rate)
            terms: Dict[str, Tensor] = {}
            skipped = False
        else:
            with self.toggled_optimizer(opt_g):  # D and the quantiles frozen: the G step cannot reach them
                out = self.codec(x, beta, **rate)
                terms = self.generator_terms(x, out, beta, **rate)
                skipped = not self._update(opt_g, terms["loss"], clip=True, counted=True)

        if self.discriminator is not None:
            opt_d = optimizers[1]
            discriminator = self.discriminator
            y_hat, x_hat = out.y_hat.detach(), out.x_hat.detach()
            with self.toggled_optimizer(opt_d):
                real_logits, fake_logits = discriminator(x, y_hat, beta), discriminator(x_hat, y_hat, beta)
                terms["d_loss"] = discriminator_loss(real_logits, fake_logits)
                terms["d_accuracy"] = discriminator_accuracy(real_logits, fake_logits)
                skipped |= not self._update(opt_d, terms["d_loss"], clip=True, counted=warming_up)

        if any(p.requires_grad for p in quantile_parameters(self.codec)):  # frozen with their density otherwise
            with self.toggled_optimizer(opt_aux):
                with torch.autocast(x.device.type, enabled=False):  # fp16 quantile logits overflow (issue 14)
                    terms["aux_loss"] = self.codec.entropy_model.aux_loss()
                skipped |= not self._update(opt_aux, terms["aux_loss"], clip=False, counted=False)

        schedulers = self.lr_schedulers()
        for scheduler in schedulers if isinstance(schedulers, list) else [schedulers]:
            scheduler.step()
        logged = {f"train/{k}": v.detach().float() for k, v in terms.items()}
        logged["train/beta_mean"] = beta.float().mean()
        logged["train/nonfinite_skipped"] = torch.tensor(float(skipped), device=self.device)
        self.log_dict(logged, batch_size=x.shape[0], sync_dist=True)
        if "train/loss" in logged:  # the generator's objective; a discriminator warm-up step has none
            self.log("loss", logged["train/loss"], prog_bar=True, batch_size=x.shape[0], logger=False)
        if skipped:
            self.print(f"step {self.global_step}: non-finite loss, update skipped")

    # ------------------------------------------------------------------ validation
    def on_validation_epoch_start(self) -> None:
        if self.val_real_bpp_batches > 0:
            self.codec.update(force=True)

    def _evaluate(self, batch: Any, batch_idx: int, stage: str) -> None:
        x = batch_images(batch)
        batch_size, _, height, width = x.shape
        for beta, out in zip(self.val_betas, self.codec.forward_betas(x, self.val_betas)):
            metrics = {f"{stage}/{k}_beta{beta:g}": v for k, v in self.image_metrics(out.x_hat, x).items()}
            self.log_dict(metrics, batch_size=batch_size, sync_dist=True)
        self.log(f"{stage}/bpp", out.bpp.float().mean(), batch_size=batch_size, sync_dist=True, prog_bar=True)
        if self.codec.num_levels > 1:
            top = max(self.val_betas)
            level_betas = [0.0, top] if top > 0 else [0.0]
            self.log_dict(level_metrics(self.codec, x, stage, self.image_metrics, level_betas), batch_size=batch_size,
                          sync_dist=True)
        if batch_idx < self.val_real_bpp_batches:
            with torch.autocast(x.device.type, enabled=False):  # the bitstream is the float32 model's
                real = 8.0 * len(self.codec.compress(x.float())) / (batch_size * height * width)
            self.log(f"{stage}/bpp_real", torch.tensor(real, device=self.device), batch_size=batch_size, sync_dist=True)

    def image_metrics(self, x_hat: Tensor, x: Tensor) -> Dict[str, Tensor]:
        """Batch-mean PSNR and the perceptual metric, computed in float32 even under autocast."""
        with torch.autocast(x.device.type, enabled=False):
            x_hat, x = x_hat.float().clamp(0, 1), x.float()
            psnr = -10.0 * torch.log10(mse_per_image(x_hat, x))  # per image, data range 1
            metrics = {"psnr": psnr.mean()}
            if self.perceptual is not None:
                metrics[self.perceptual.key] = self.perceptual(x_hat, x).mean()
        return metrics

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._evaluate(batch, batch_idx, "val")

    def on_test_epoch_start(self) -> None:
        self.on_validation_epoch_start()

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._evaluate(batch, batch_idx, "test")

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: Dict[str, Any]) -> None:
        """Record the architecture and the objective so ``MultiRealismCodec.from_checkpoint(ckpt)`` rebuilds both."""
        checkpoint[CONFIG_KEY] = {"config": self.codec.config()}
        if self.codec.objective is not None:
            checkpoint[CONFIG_KEY][OBJECTIVE_KEY] = self.codec.objective.to_dict()
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if not k.startswith("perceptual.")}
        self._saved_step = checkpoint.get("global_step")

    def on_train_end(self) -> None:
        """Write ``last.ckpt`` at the step training stopped on, if no checkpoint holds that step yet.

        Lightning's ``ModelCheckpoint(every_n_train_steps=N, save_last=True)`` writes ``last.ckpt`` only
        on its interval (or at a validation), so a run stopped by ``max_time`` or a ``max_steps`` off the
        grid would resume up to N steps back.
        """
        trainer = self.trainer
        if self._saved_step == trainer.global_step:
            return
        for callback in trainer.checkpoint_callbacks:
            if isinstance(callback, ModelCheckpoint) and callback.save_last and callback.dirpath:
                path = callback.format_checkpoint_name({}, filename=callback.CHECKPOINT_NAME_LAST)
                trainer.save_checkpoint(path)
                callback.last_model_path = path

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False) -> Any:
        """Load through ``codec.load_state_dict``, which resizes the entropy coders' tables.

        Lightning restores ``fit --ckpt_path`` through this method; ``nn.Module``'s own would fail
        on the coder buffers that validation's ``codec.update(force=True)`` resized (issue 14).
        """
        codec_state = {k[len("codec."):]: v for k, v in state_dict.items() if k.startswith("codec.")}
        rest = {k: v for k, v in state_dict.items() if not k.startswith("codec.")}
        codec_keys = self.codec.load_state_dict(codec_state, strict=strict)  # CompressAI's: no assign=
        own_keys = super().load_state_dict(rest, strict=False, assign=assign)
        missing = [f"codec.{k}" for k in codec_keys.missing_keys]
        missing += [k for k in own_keys.missing_keys if not k.startswith("codec.")]
        unexpected = [f"codec.{k}" for k in codec_keys.unexpected_keys] + list(own_keys.unexpected_keys)
        if strict and (missing or unexpected):
            raise RuntimeError(f"state_dict does not match the module: missing {missing[:5]}, unexpected {unexpected[:5]}")
        return _IncompatibleKeys(missing, unexpected)

    def on_load_checkpoint(self, checkpoint: Dict[str, Any]) -> None:
        """Re-add the frozen perceptual network, which checkpoints leave out."""
        if self.perceptual is not None:  # the frozen LPIPS network is rebuilt, not stored
            for key, value in self.perceptual.state_dict().items():
                checkpoint["state_dict"][f"perceptual.{key}"] = value
