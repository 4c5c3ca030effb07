"""LightningModule training a :class:`~multirealism.MultiRealismCodec` with the multi-realism objective.

Manual optimisation, one training step = one generator update, one discriminator update (GAN
stage only) and one update of the entropy bottleneck's quantiles on CompressAI's auxiliary loss (while
the bottleneck's density trains); during ``discriminator_warmup_steps`` a step is the discriminator's
update alone.
``trainer.global_step`` counts training iterations (one counted update each), so ``max_steps``, LR
milestones and checkpoint intervals are in training iterations, warm-up steps included.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import Tensor, nn
from torch.nn.modules.module import _IncompatibleKeys
from torch.optim import Adam, Optimizer
from torch.optim.lr_scheduler import MultiStepLR

from multirealism.checkpoint import CONFIG_KEY, load_weights
from multirealism.codec import CodecOutput, MultiRealismCodec
from multirealism.components.rate_control import extrapolate_levels
from multirealism.errors import CheckpointError
from multirealism.perceptual_scales import check_scales, multiscale_distance
from multirealism.registry import REGISTRIES
from multirealism.training import discriminators as _discriminators  # noqa: F401  (registers them)
from multirealism.training.beta_sampling import BetaSampler
from multirealism.training.losses import (
    LossWeights,
    beta_weighted_mean,
    discriminator_accuracy,
    discriminator_loss,
    generator_adversarial_loss,
    mse_per_image,
)
from multirealism.training.perceptual import build_perceptual
from multirealism.training.quality import RateLadder, level_metrics
from multirealism.training.rate_schedule import HiFiCLambdaSchedule, RateWeight

ARCHITECTURE_KEYS = ("encoder", "entropy_model", "generator")

#: a discriminator registry entry: its name, or ``{"name": ..., "args": {...}}``
DiscriminatorSpec = Union[str, Dict[str, Any]]


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


def build_discriminator(spec: DiscriminatorSpec, codec: MultiRealismCodec) -> nn.Module:
    """Build a discriminator registry entry for ``codec``: its latent width and β_max come from the codec."""
    name, args = (spec, {}) if isinstance(spec, str) else (spec["name"], dict(spec.get("args", {})))
    given = sorted({"latent_channels", "beta_max"} & set(args))
    if given:
        raise ValueError(f"discriminator args must not set {', '.join(given)}: they are taken from the codec")
    return REGISTRIES["discriminator"].build(
        name, latent_channels=codec.generator.latent_channels, beta_max=codec.beta_max, **args
    )


def quantile_parameters(codec: MultiRealismCodec) -> List[nn.Parameter]:
    """The entropy bottleneck quantiles, trained only by the auxiliary loss (CompressAI convention)."""
    return [p for name, p in codec.entropy_model.named_parameters() if name.endswith("quantiles")]


def quantile_densities(codec: MultiRealismCodec) -> List[nn.Parameter]:
    """The density parameters of the modules that hold quantiles: the auxiliary loss depends only on them,
    so while they are frozen the quantiles' targets stand still."""
    return [p for module in codec.entropy_model.modules() if isinstance(getattr(module, "quantiles", None), nn.Parameter)
            for name, p in module.named_parameters() if name != "quantiles"]


class MultiRealismModule(L.LightningModule):
    """Trains ``codec`` on λ·rate + k_M·MSE + β·(C_P·LPIPS + C_adv·L_adv) with β drawn per image.

    Args:
        codec: the codec (encoder, entropy model, generator).
        discriminator: registry name or ``{name, args}`` of the discriminator, built here with the
            codec's latent width and β_max (the discriminator belongs to training, not to the codec).
        gan: False gives the rate-distortion(-perceptual) warm-up stage: no discriminator step.
        rate_weight: λ as a function of the batch bpp; default HiFiC's schedule (0.3 bpp target).
        beta_sampler: how β is drawn per image; default uniform in [0, codec.beta_max]; its
            ``beta_max`` defaults to the codec's. When no loss term depends on β (``gan=False`` and
            no perceptual term, the rate-distortion warm-up), the generator is trained at β = 0:
            a random β that the loss ignores only teaches it to silence its β conditioning (the
            `small` warm-up shrank the conditioner's output from 0.13 to 0.0014 in 14k steps).
        mse_weight: k_M = 150 for images in [0, 1] (Agustsson et al. 2023; HiFiC's 0.075·2^-5 on [0, 255]).
        lpips_weight: C_P = 1/2.56 (so β = 2.56 weighs LPIPS by 1; Agustsson et al. 2023).
        adversarial_weight: C_adv = 0.001/2.56 (β = 2.56 weighs the GAN by 0.001; Agustsson et al. 2023).
        perceptual: ``"lpips-alex"`` (pretrained; see :mod:`multirealism.training.perceptual`),
            ``"stlpips-alex"``/``"stlpips-vgg"`` (shift-tolerant LPIPS, offline; logged as
            ``st_lpips``), ``"lpips-random-test-only"`` or ``"none"`` (no perceptual term or metric).
        lpips_backbone_path: local torchvision AlexNet checkpoint for offline machines.
        lr, discriminator_lr, aux_lr: Adam learning rates (paper and HiFiC: 1e-4; CompressAI's aux: 1e-3).
        lr_milestones, lr_gamma: multiply both learning rates by ``lr_gamma`` at these steps
            (HiFiC decays by 10x halfway).
        gradient_clip_val: max gradient norm of the generator and discriminator updates (None: off).
        init_from: checkpoint whose codec weights initialise this run (e.g. the warm-up stage);
            loaded safely, the discriminator's weights are taken only if present.
        val_betas: fixed β values at which validation reports PSNR, LPIPS and bpp.
        val_real_bpp_batches: validation batches per epoch that are also really compressed, to
            log the bpp of the actual bitstream (0: off).
        rate_ladder: λ per quality level, required when the codec has a rate control (then a level
            is drawn per image and ``rate_weight`` is unused); validation then also logs, per level,
            ``bpp_q{level}``, ``psnr_q{level}`` and the perceptual distance at β = 0 and the same metrics
            at the largest of ``val_betas`` (``psnr_q{level}_beta5.12``, ...).
        trainable: the codec parts the generator step trains, by attribute path (e.g. ``["generator"]``:
            a decoder-only multi-realism stage that keeps the warm-up's bitstream, and with it its rate
            and β = 0 distortion, and runs faster; ``["generator.refiner"]`` trains only that head);
            None trains them all. The entropy bottleneck's quantiles follow the auxiliary loss while its
            density trains (``trainable`` covers the entropy model, or is None); otherwise they stay as
            stored too, so a stage that freezes the bitstream keeps the coder's tables bit for bit.
        init_new: codec parts, by attribute path, that start afresh (e.g. ``["generator.refiner"]`` when a
            refined generator starts from a plain one, or a new head replaces a stored one): they keep their
            initial values whatever ``init_from``'s checkpoint holds for them; the components holding them
            skip the config check, and every other stored weight must still match by name and shape.
        init_levels_below: rate levels this codec has below ``init_from``'s lowest (its rate control has
            that many more levels, all at the low end): their gain vectors start on the line through the
            stored two lowest levels (:func:`~multirealism.components.rate_control.extrapolate_levels`),
            and the stored levels become levels ``init_levels_below`` and up.
        init_levels_above: likewise, rate levels this codec has above ``init_from``'s highest, started on
            the line through the stored two highest (a model extended to higher rates).
        discriminator_warmup_steps: the run's first steps train only the discriminator, against the
            codec run without gradients (GAN stage only). A fresh spectral-normalised discriminator stays
            at chance for hundreds of steps (``train/d_accuracy`` ≈ 0.5, ``d_loss`` ≈ 2·ln 2), so a short
            stage's generator would otherwise hear only noise from it; these steps cost about an eighth of
            full ones on a CPU (no perceptual net, no generator backward).
        perceptual_scales: the perceptual term is the mean of the distance at these integer downscales
            (2: both images average-pooled 2x2), so it also weighs coarser structure than the network's
            first layers see at full size; ``(1,)`` is the plain term. Validation reports full size only. A
            downscale that would leave a crop under 32 px is left out (see :mod:`multirealism.perceptual_scales`).
        discriminator_betas: the discriminator's Adam (β1, β2). PyTorch's default (0.9, 0.999) is kept
            unless set; GAN practice (DCGAN, and the standalone check in configs/small_gan_head.yaml, where
            it left chance about twice as fast) uses β1 = 0.5.
    """

    def __init__(
        self,
        codec: MultiRealismCodec,
        discriminator: Optional[DiscriminatorSpec] = None,
        gan: bool = True,
        rate_weight: Optional[RateWeight] = None,
        beta_sampler: Optional[BetaSampler] = None,
        mse_weight: float = 150.0,
        lpips_weight: float = 1.0 / 2.56,
        adversarial_weight: float = 0.001 / 2.56,
        perceptual: str = "lpips-alex",
        lpips_backbone_path: Optional[str] = None,
        lr: float = 1e-4,
        discriminator_lr: float = 1e-4,
        aux_lr: float = 1e-3,
        lr_milestones: Sequence[int] = (),
        lr_gamma: float = 0.1,
        gradient_clip_val: Optional[float] = 1.0,
        init_from: Optional[str] = None,
        val_betas: Sequence[float] = (0.0, 2.56, 5.12),
        val_real_bpp_batches: int = 2,
        rate_ladder: Optional[RateLadder] = None,
        trainable: Optional[Sequence[str]] = None,
        init_new: Sequence[str] = (),
        init_levels_below: int = 0,
        init_levels_above: int = 0,
        discriminator_warmup_steps: int = 0,
        discriminator_betas: Tuple[float, float] = (0.9, 0.999),
        perceptual_scales: Sequence[int] = (1,),
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        self._saved_step: Optional[int] = None  # global step of the last checkpoint written
        self.save_hyperparameters(ignore=["codec", "rate_weight", "beta_sampler", "rate_ladder"])
        self.codec = codec
        self.gan = bool(gan)
        if self.gan and discriminator is None:
            raise ValueError("gan=True needs a discriminator (e.g. discriminator: hific); or set gan: false")
        self.discriminator = None if discriminator is None else build_discriminator(discriminator, codec)
        if not self.gan and self.discriminator is not None:
            self.discriminator.requires_grad_(False)  # kept (and saved) but not trained in this stage
        self.rate_weight = rate_weight if rate_weight is not None else HiFiCLambdaSchedule()
        self.beta_sampler = beta_sampler if beta_sampler is not None else BetaSampler()
        if self.beta_sampler.beta_max is None:
            self.beta_sampler.set_beta_max(codec.beta_max)
        elif self.beta_sampler.beta_max > codec.beta_max:
            raise ValueError(f"beta_sampler.beta_max {self.beta_sampler.beta_max} exceeds the codec's {codec.beta_max}")
        self.weights = LossWeights(mse_weight, lpips_weight, adversarial_weight)
        self.perceptual = build_perceptual(perceptual, lpips_backbone_path)
        #: whether any loss term is weighted by β; without one, training runs at β = 0 (see beta_sampler)
        self.beta_in_loss = self.gan or self.perceptual is not None
        self.lr, self.discriminator_lr, self.aux_lr = lr, discriminator_lr, aux_lr
        self.lr_milestones, self.lr_gamma = list(lr_milestones), lr_gamma
        self.gradient_clip_val = gradient_clip_val
        self.val_betas = [float(b) for b in val_betas]
        self.val_real_bpp_batches = int(val_real_bpp_batches)
        # class_path form: `fit --ckpt_path` re-parses these through LightningCLI (issue 14)
        self.hparams.update(rate_weight=class_path_config(self.rate_weight), beta_sampler=class_path_config(self.beta_sampler))
        if (rate_ladder.num_levels if rate_ladder is not None else 1) != codec.num_levels:
            raise ValueError(
                f"the codec has {codec.num_levels} rate levels but rate_ladder gives "
                f"{'none' if rate_ladder is None else rate_ladder.num_levels}; give one λ per level"
            )
        self.rate_ladder = rate_ladder
        if rate_ladder is not None:  # its constructor arguments, in the same class_path form
            self.hparams.update(rate_ladder=rate_ladder.class_path_config())
        counts = {"init_levels_below": init_levels_below, "init_levels_above": init_levels_above,
                  "discriminator_warmup_steps": discriminator_warmup_steps}
        for name, count in counts.items():
            if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {count!r}")
        for name in ("init_levels_below", "init_levels_above"):
            if counts[name] and init_from is None:
                raise ValueError(f"{name} extends the rate levels of init_from's checkpoint: give init_from")
        if discriminator_warmup_steps and not self.gan:
            raise ValueError("discriminator_warmup_steps needs a GAN stage (gan: true)")
        self.discriminator_warmup_steps = discriminator_warmup_steps
        betas = tuple(float(b) for b in discriminator_betas)
        if len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"discriminator_betas must be two values in [0, 1), got {discriminator_betas!r}")
        self.discriminator_betas = betas
        self.perceptual_scales = list(check_scales(perceptual_scales, has_perceptual=self.perceptual is not None))
        if init_from is not None:
            self.load_codec_weights(init_from, init_new, init_levels_below, init_levels_above)
        if trainable is not None:
            self.freeze_all_but(trainable)

    # ------------------------------------------------------------------ set-up
    def load_codec_weights(
        self, path: str, new_parts: Sequence[str] = (), levels_below: int = 0, levels_above: int = 0
    ) -> None:
        """Initialise from another run's checkpoint (same encoder/entropy model/generator, except for the
        ``new_parts`` it lacks, which keep their initial values, and ``levels_below`` / ``levels_above``
        extra rate levels)."""
        for name in new_parts:
            self.codec_part(name)
        stored, state = load_weights(path)
        if stored is not None:
            mine = self.codec.config()
            extended = {name.split(".")[0] for name in new_parts}
            differ = [k for k in ARCHITECTURE_KEYS if k not in extended and stored.get(k) != mine.get(k)]
            if differ:
                raise CheckpointError(f"init_from {path!r} has a different {', '.join(differ)} than this codec")
        prefix = "discriminator."
        disc_state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        state = {k: v for k, v in state.items() if not k.startswith(prefix)}
        if levels_below or levels_above:
            state = self._rate_levels_extended(path, state, levels_below, levels_above)
        if disc_state and self.discriminator is not None:  # runs whose codec held the discriminator
            self.discriminator.load_state_dict(disc_state)
        # new parts keep their initial values, also where the checkpoint has an older (or other-sized) version
        new_prefixes = tuple(f"{name}." for name in new_parts)
        state = {k: v for k, v in state.items() if not k.startswith(new_prefixes)}
        missing, unexpected = self.codec.load_state_dict(state, strict=False)
        # a fixed-rate checkpoint may start a rate-controlled run: its gains keep their initial values
        fresh = ("rate_control.", *new_prefixes)
        missing = [k for k in missing if not k.startswith(fresh)]
        if missing or unexpected:
            raise CheckpointError(f"init_from {path!r}: missing {missing[:5]}, unexpected {unexpected[:5]}")

    def _rate_levels_extended(self, path: str, state: Dict[str, Tensor], below: int, above: int) -> Dict[str, Tensor]:
        """``state`` with ``below`` levels extrapolated under, and ``above`` over, each stored rate-control vector."""
        stored = {k: v for k, v in state.items() if k.startswith("rate_control.")}
        if not stored:
            raise CheckpointError(f"init_from {path!r} has no rate control whose levels init_levels_below/above could extend")
        levels = {v.shape[0] for v in stored.values()}
        if levels != {self.codec.num_levels - below - above}:
            raise CheckpointError(
                f"init_from {path!r} has {sorted(levels)} rate levels; with init_levels_below={below} and "
                f"init_levels_above={above} this codec ({self.codec.num_levels} levels) needs "
                f"{self.codec.num_levels - below - above}"
            )
        return {**state, **{k: extrapolate_levels(v, below, above) for k, v in stored.items()}}

    def codec_part(self, name: str) -> nn.Module:
        """The codec submodule at attribute path ``name`` (e.g. ``generator.refiner``)."""
        try:
            return self.codec.get_submodule(name)
        except AttributeError:
            parts = sorted(n for n, _ in self.codec.named_children())
            raise ValueError(f"{name!r} is not a part of this codec (its parts: {', '.join(parts)})") from None

    def freeze_all_but(self, trainable: Sequence[str]) -> None:
        """Stop gradients to every codec part not named in ``trainable``; the quantiles train only with
        their density."""
        if not trainable:
            raise ValueError("trainable must name at least one codec part (None trains them all)")
        parts = [self.codec_part(name) for name in trainable]
        self.codec.requires_grad_(False)
        for part in parts:
            part.requires_grad_(True)
        density_trains = any(p.requires_grad for p in quantile_densities(self.codec))
        for quantiles in quantile_parameters(self.codec):
            quantiles.requires_grad_(density_trains)

    def configure_optimizers(self) -> Tuple[List[Optimizer], List[Any]]:
        quantiles = {id(p) for p in quantile_parameters(self.codec)}
        main = [p for p in self.codec.parameters() if id(p) not in quantiles and p.requires_grad]
        optimizers: List[Optimizer] = [Adam(main, lr=self.lr)]
        if self.gan:
            optimizers.append(Adam(self.discriminator.parameters(), lr=self.discriminator_lr, betas=self.discriminator_betas))
        optimizers.append(Adam(quantile_parameters(self.codec), lr=self.aux_lr))
        schedulers = [MultiStepLR(opt, self.lr_milestones, self.lr_gamma) for opt in optimizers[:-1]]
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
        loss = rate + self.weights.mse * mse
        terms = {"bpp": bpp, "mse": mse, "lambda": torch.as_tensor(lmbda, dtype=torch.float32, device=bpp.device)}
        # β as the loss weighs it: the ladder may scale it per rate level (the codec saw the drawn β)
        loss_beta = beta if self.rate_ladder is None or quality is None else self.rate_ladder.loss_beta(beta, quality)
        if self.perceptual is not None:
            lpips_map = self.perceptual_map(out.x_hat, x, beta)
            terms[self.perceptual.key] = lpips_map.mean()
            loss = loss + self.weights.lpips * beta_weighted_mean(lpips_map, loss_beta)
        if self.gan:
            fake_logits = self.discriminator(out.x_hat, out.y_hat, beta)
            adversarial = generator_adversarial_loss(fake_logits, loss_beta)
            terms["adversarial"] = adversarial
            loss = loss + self.weights.adversarial * adversarial
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
            self._clip_next_step = clip and self.gradient_clip_val is not None  # see on_before_optimizer_step
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
            self.clip_gradients(optimizer, gradient_clip_val=self.gradient_clip_val, gradient_clip_algorithm="norm")
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

        warming_up = self.global_step < self.discriminator_warmup_steps
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

        if self.gan:
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
        """Record the architecture so ``MultiRealismCodec.from_checkpoint(ckpt)`` can rebuild it."""
        checkpoint[CONFIG_KEY] = {"config": self.codec.config()}
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
        """Move an old layout's ``codec.discriminator.*`` to ``discriminator.*`` and re-add the perceptual net."""
        old, new = "codec.discriminator.", "discriminator."
        checkpoint["state_dict"] = {
            (new + k[len(old):] if k.startswith(old) else k): v for k, v in checkpoint["state_dict"].items()
        }
        if self.perceptual is not None:  # the frozen LPIPS network is rebuilt, not stored
            for key, value in self.perceptual.state_dict().items():
                checkpoint["state_dict"][f"perceptual.{key}"] = value
