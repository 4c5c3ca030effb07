"""MultiRealismCodec: encoder + entropy model + β-conditioned generator, an inference object.

One bitstream, any realism: ``decompress(data, beta=[0, 2.56, 5.12])`` entropy-decodes once and
runs the generator once per β.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from compressai.models import CompressionModel
from torch import Tensor, nn

import multirealism.components  # noqa: F401  (registers the built-in components)
from multirealism import bitstream_guards, bitstream_format, memory_budget
from multirealism.checkpoint import RESIZED_BUFFERS, load_codec, load_shipped, save_weights
from multirealism.components.base import ConditionalGenerator, Encoder, EntropyModel, EntropyOutput
from multirealism.components.conditioning import beta_as_map, check_beta_range
from multirealism.components.rate_control import (
    RateControl,
    latent_log_step,
    resolve_quality,
    scale_latent,
    unscale_latent,
)
from multirealism.errors import BitstreamError, CheckpointError, ImageInputError, ModelOutputError, ParameterError
from multirealism.objective import RateDistortionObjective
from multirealism.registry import REGISTRIES, Registry, component_spec

ComponentArg = Union[str, Mapping[str, Any], nn.Module]


@dataclass
class EncodedLatent:
    """A latent ready to entropy-code: ``y`` is the rate-scaled latent of the padded images, coded
    at header ``quality``; ``height`` and ``width`` are the images' unpadded size."""

    y: Tensor
    height: int
    width: int
    quality: float


@dataclass
class CodecOutput:
    """Result of :meth:`MultiRealismCodec.forward`.

    ``x_hat`` is unclamped (training needs the gradient); ``bpp`` is per image, estimated from the
    likelihoods over the original (unpadded) pixel count.
    """

    x_hat: Tensor
    y_hat: Tensor
    likelihoods: Dict[str, Tensor]
    bpp: Tensor


def _bits(likelihoods: Mapping[str, Tensor]) -> Tensor:
    """Per-image information content, in bits, of all the likelihood tensors."""
    return sum(-torch.log2(lik).flatten(1).sum(dim=1) for lik in likelihoods.values())


def _build(registry: Registry, arg: ComponentArg) -> nn.Module:
    if isinstance(arg, nn.Module):
        return arg
    if isinstance(arg, str):
        return registry.build(arg)
    if isinstance(arg, Mapping):
        return registry.build(arg["name"], **dict(arg.get("args", {})))
    raise TypeError(f"{registry.kind} must be a registry name, a spec mapping or an nn.Module, got {arg!r}")


class MultiRealismCodec(CompressionModel):
    """Learned image codec whose decoder takes a realism weight β in [0, β_max].

    Components are given as registry names (paper-scale defaults), ``{"name", "args"}`` specs or
    module instances. Inputs are RGB in [0, 1] of any size: images are padded (replicate) to a
    multiple of the total downsampling and cropped back. CompressAI's ``CompressionModel`` supplies
    ``load_state_dict`` (resizing the coder tables to the stored ones) and ``aux_loss``.

    ``max_pixels``, ``max_images`` and ``max_bitstream_bytes`` bound what :meth:`compress` accepts
    and what a bitstream header may declare; the defaults live in :mod:`multirealism.bitstream_format`.
    """

    def __init__(
        self,
        encoder: Union[Encoder, str] = "elic",
        entropy_model: Union[EntropyModel, str] = "hyperprior",
        generator: Union[ConditionalGenerator, str] = "elic_cond",
        max_pixels: int = bitstream_format.DEFAULT_MAX_PIXELS,
        max_images: int = bitstream_format.DEFAULT_MAX_IMAGES,
        max_bitstream_bytes: int = bitstream_format.DEFAULT_MAX_BITSTREAM_BYTES,
        rate_control: Optional[Union[RateControl, str]] = None,
    ) -> None:
        super().__init__()
        limits = {"max_pixels": max_pixels, "max_images": max_images, "max_bitstream_bytes": max_bitstream_bytes}
        for name, value in limits.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.max_pixels, self.max_images, self.max_bitstream_bytes = max_pixels, max_images, max_bitstream_bytes
        self.encoder = _build(REGISTRIES["encoder"], encoder)
        self.entropy_model = _build(REGISTRIES["entropy_model"], entropy_model)
        self.generator = _build(REGISTRIES["generator"], generator)
        self.rate_control = None if rate_control is None else _build(REGISTRIES["rate_control"], rate_control)
        beta_max = float(self.generator.beta_max)
        if not (math.isfinite(beta_max) and beta_max > 0):
            raise ValueError(f"beta_max must be a finite number above 0, got {beta_max}")
        widths = {
            "encoder": self.encoder.latent_channels,
            "entropy_model": self.entropy_model.latent_channels,
            "generator": self.generator.latent_channels,
        }
        if self.rate_control is not None and hasattr(self.rate_control, "latent_channels"):
            widths["rate_control"] = self.rate_control.latent_channels
        if len(set(widths.values())) != 1:
            raise ValueError(f"latent channel counts disagree: {widths}")
        self.pad_multiple = self.encoder.downsampling * self.entropy_model.latent_multiple
        self._fingerprint: Optional[bytes] = None
        #: the objective the weights were trained for (λ and realism scale per quality, loss weights), which
        #: latent refinement optimises; stored with the weights by training and export, not part of the
        #: fingerprint
        self.objective: Optional[RateDistortionObjective] = None

    # ------------------------------------------------------------------ properties and config
    @property
    def num_levels(self) -> int:
        """Trained rate levels: qualities run from 0 to ``num_levels - 1`` (1 without rate control)."""
        return 1 if self.rate_control is None else self.rate_control.num_levels

    @property
    def beta_max(self) -> float:
        """Largest realism weight the generator was trained for."""
        return float(self.generator.beta_max)

    def config(self) -> Dict[str, Any]:
        """JSON-able architecture description, enough to rebuild the codec from registry names."""
        parts = {"encoder": self.encoder, "entropy_model": self.entropy_model, "generator": self.generator}
        if self.rate_control is not None:
            parts["rate_control"] = self.rate_control
        config: Dict[str, Any] = {
            "max_pixels": self.max_pixels,
            "max_images": self.max_images,
            "max_bitstream_bytes": self.max_bitstream_bytes,
        }
        for role, module in parts.items():
            spec = component_spec(module)
            if spec is None:
                raise TypeError(
                    f"{role} {type(module).__name__} is not a registered component; register it "
                    f"(multirealism.registry.{role}s.register) so its config can be saved"
                )
            config[role] = spec
        return json.loads(json.dumps(config))

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "MultiRealismCodec":
        """Build a codec from :meth:`config`'s output (registry names only: no code is imported)."""
        return cls(
            encoder=config["encoder"],
            entropy_model=config["entropy_model"],
            generator=config["generator"],
            max_pixels=config.get("max_pixels", bitstream_format.DEFAULT_MAX_PIXELS),
            max_images=config.get("max_images", bitstream_format.DEFAULT_MAX_IMAGES),
            max_bitstream_bytes=config.get("max_bitstream_bytes", bitstream_format.DEFAULT_MAX_BITSTREAM_BYTES),
            rate_control=config.get("rate_control"),
        )

    # ------------------------------------------------------------------ persistence
    def save(self, path: "str | os.PathLike[str]") -> None:
        """Write config, weights and objective (``.safetensors`` or a torch file) that :meth:`from_checkpoint` reads."""
        save_weights(path, self.config(), self.state_dict(), self.objective)

    @classmethod
    def from_checkpoint(
        cls,
        path: "str | os.PathLike[str]",
        config: Optional[Mapping[str, Any]] = None,
        map_location: "str | torch.device" = "cpu",
    ) -> "MultiRealismCodec":
        """Load a Lightning checkpoint, a :meth:`save` file or a ``.safetensors`` file, safely
        (``weights_only=True``, finite weights, config checked against the weights); see
        :func:`multirealism.checkpoint.load_codec`. The architecture comes from the file, or from ``config``."""
        return load_codec(cls, path, config, map_location)

    @classmethod
    def pretrained(cls, name: Optional[str] = None, map_location: "str | torch.device" = "cpu") -> "MultiRealismCodec":
        """A model shipped inside the package, by name (None: the default; see
        :func:`multirealism.list_pretrained`). Its file is checked against a stored SHA-256 and its
        fingerprint against the registered one, so a damaged install fails here, not mid-decode."""
        return load_shipped(cls, name, map_location)

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True):
        """Load weights, the entropy coders' tables resized to the stored ones first; a mismatch is a
        CheckpointError.

        CompressAI resizes a table only while it is empty, so a codec whose tables were already built
        (``init_from`` a warm-up, then ``fit --ckpt_path`` a run whose validation rebuilt them with
        another length) could not load its own checkpoint.
        """
        for name, buffer in self.named_buffers():
            stored = state_dict.get(name)
            if name.endswith(RESIZED_BUFFERS) and stored is not None and stored.shape != buffer.shape:
                buffer.resize_(stored.shape)
        try:
            result = super().load_state_dict(dict(state_dict), strict=strict)
        except RuntimeError as err:
            raise CheckpointError(f"weights do not match this codec's architecture: {err}") from err
        self._fingerprint = None
        return result

    def train(self, mode: bool = True) -> "MultiRealismCodec":
        if mode:
            self._fingerprint = None
        return super().train(mode)

    # ------------------------------------------------------------------ model identity
    def update(self, force: bool = False) -> bool:  # type: ignore[override]
        """Build entropy-coder tables and the model fingerprint; call after changing weights.

        Unlike CompressAI's ``update``, the entropy model builds its own tables (its nearest-scale
        index tables included). Non-finite weights are refused here (:class:`ModelOutputError`), so
        neither the coder nor the generator ever runs on them.

        Runs outside inference mode so the tables are ordinary tensors even when called from a
        ``torch.inference_mode`` block (Lightning validation, user code): inference tensors cannot
        be updated in place later and carry no version counter for the coder-list cache.
        """
        with torch.inference_mode(False), torch.no_grad():
            updated = self.entropy_model.update(force=force)
        self._fingerprint = self._compute_fingerprint()
        return updated

    @property
    def fingerprint(self) -> bytes:
        """8-byte hash of the inference model (config and weights) stamped into every bitstream."""
        if self._fingerprint is None:
            self.update()
        assert self._fingerprint is not None
        return self._fingerprint

    def _compute_fingerprint(self) -> bytes:
        digest = hashlib.sha256()
        config = {k: v for k, v in self.config().items() if k in ("encoder", "entropy_model", "generator", "rate_control")}
        digest.update(json.dumps(config, sort_keys=True).encode())
        for prefix in ("encoder.", "entropy_model.", "generator.", "rate_control."):
            for name, tensor in sorted(self.state_dict().items()):
                if name.startswith(prefix):
                    if tensor.is_floating_point() and not bool(tensor.isfinite().all()):
                        raise ModelOutputError(f"weight {name} holds NaN or infinite values; refusing to code with it")
                    digest.update(name.encode())
                    digest.update(tensor.detach().to("cpu", torch.float64).contiguous().numpy().tobytes())
        return digest.digest()[: bitstream_format.FINGERPRINT_BYTES]

    # ------------------------------------------------------------------ padding helpers
    def _padding(self, height: int, width: int) -> tuple:
        """Bottom/right padding for ``F.pad``. Not ``compressai.ops.compute_padding``: it centres the
        padding, which would move every bitstream's content and the β map's alignment."""
        m = self.pad_multiple
        return (0, (-width) % m, 0, (-height) % m)

    def _pad_beta(self, beta: "float | Tensor", batch: int, height: int, width: int, device) -> Tensor:
        beta_map = beta_as_map(beta, batch, device)
        if beta_map.shape[-2:] != (1, 1):
            if beta_map.shape[-2:] != (height, width):
                raise ValueError(
                    f"beta map is {tuple(beta_map.shape[-2:])} but the image is {(height, width)}"
                )
            beta_map = F.pad(beta_map, self._padding(height, width), mode="replicate")
        check_beta_range(beta_map, self.beta_max)
        return beta_map

    def _check_images(self, x: Tensor) -> Tensor:
        if not torch.is_tensor(x):
            raise ImageInputError(f"expected a tensor image, got {type(x).__name__}")
        if x.dim() == 3:
            x = x.unsqueeze(0)
        if x.dim() != 4 or x.shape[1] != 3:
            raise ImageInputError(f"expected RGB images shaped (3, H, W) or (B, 3, H, W); got {tuple(x.shape)}")
        if x.shape[0] < 1 or x.shape[-1] < 1 or x.shape[-2] < 1:
            raise ImageInputError(f"empty image batch of shape {tuple(x.shape)}")
        if not x.is_floating_point():
            raise ImageInputError(f"expected float images in [0, 1], got dtype {x.dtype}")
        if not bool(torch.isfinite(x).all()) or float(x.min()) < -1e-3 or float(x.max()) > 1 + 1e-3:
            raise ImageInputError("image values must be finite and in [0, 1]")
        return x

    # ------------------------------------------------------------------ training/eval forward
    def forward(
        self, x: Tensor, beta: "float | Tensor" = 0.0, quality: "float | Tensor | None" = None
    ) -> CodecOutput:
        """Encode at ``quality`` (a number or one per image; None: the highest level), quantise
        (noise/STE in training, rounding in eval) and decode at ``beta``."""
        x = self._check_images(x)
        batch, _, height, width = x.shape
        beta_map = self._pad_beta(beta, batch, height, width, x.device)
        quality = resolve_quality(self.rate_control, quality)
        y_hat, likelihoods, bpp = self._latent_forward(x, quality)
        (image,) = self.synthesize(y_hat, [beta_map], quality)
        return CodecOutput(image[..., :height, :width], y_hat, likelihoods, bpp)

    def forward_betas(
        self, x: Tensor, betas: Sequence["float | Tensor"], quality: "float | Tensor | None" = None
    ) -> List[CodecOutput]:
        """:meth:`forward` at each β of ``betas`` from one encoding: the analysis transform and the entropy
        model run once, and the generator's ``forward_betas`` does its β-independent part once."""
        x = self._check_images(x)
        batch, _, height, width = x.shape
        maps = [self._pad_beta(beta, batch, height, width, x.device) for beta in betas]
        quality = resolve_quality(self.rate_control, quality)
        y_hat, likelihoods, bpp = self._latent_forward(x, quality)
        images = self.synthesize(y_hat, maps, quality)
        return [CodecOutput(image[..., :height, :width], y_hat, likelihoods, bpp) for image in images]

    def synthesize(self, y_hat: Tensor, beta_maps: Sequence[Tensor], quality: "float | Tensor") -> List[Tensor]:
        """The generator's image for each β map from the decoder's latent ``y_hat`` coded at ``quality``; a
        rate-aware generator (``reads_rate``) also gets how coarse that latent is (its mean log step)."""
        if not self.generator.reads_rate:
            return self.generator.forward_betas(y_hat, beta_maps)
        log_step = latent_log_step(self.rate_control, quality, y_hat.shape[0], y_hat.device)
        return self.generator.forward_betas(y_hat, beta_maps, log_step=log_step)

    def _latent_forward(
        self, x: Tensor, quality: "float | Tensor"
    ) -> "tuple[Tensor, Dict[str, Tensor], Tensor]":
        """The decoder's latent ŷ, its likelihoods and the per-image bpp they give, for checked images ``x``
        at a resolved ``quality``."""
        entropy = self._entropy_forward(x, quality)
        y_hat = unscale_latent(self.rate_control, entropy.y_hat, quality)
        return y_hat, entropy.likelihoods, _bits(entropy.likelihoods) / (x.shape[-2] * x.shape[-1])

    @torch.no_grad()
    def estimate_bpp(self, x: Tensor, quality: "float | Tensor | None" = None) -> Tensor:
        """Per-image bits per pixel the likelihoods give the latent of ``x`` (rounded in eval mode):
        the estimate a real bitstream is compared with, without running the generator."""
        x = self._check_images(x)
        entropy = self._entropy_forward(x, resolve_quality(self.rate_control, quality))
        return _bits(entropy.likelihoods) / (x.shape[-2] * x.shape[-1])

    def _entropy_forward(self, x: Tensor, quality: "float | Tensor") -> EntropyOutput:
        """The entropy model's output for the rate-scaled latent of the padded images ``x``."""
        padded = F.pad(x, self._padding(x.shape[-2], x.shape[-1]), mode="replicate")
        return self.entropy_model(scale_latent(self.rate_control, self.encoder(padded), quality))

    # ------------------------------------------------------------------ real compression
    @torch.no_grad()
    def compress(self, x: Tensor, quality: Optional[float] = None) -> bytes:
        """Code images ``(3, H, W)`` or ``(B, 3, H, W)`` in [0, 1] to one bitstream at ``quality``
        (None: the highest trained level); the quality is stored in the header. For a smaller file from a
        slower encoder, code the latent of :func:`multirealism.latent_refinement.refine` instead."""
        return self.compress_latent(self.encode(x, quality))

    @torch.no_grad()
    def encode(self, x: Tensor, quality: Optional[float] = None) -> EncodedLatent:
        """The latent :meth:`compress` codes for ``x`` at ``quality``: the analysis transform's output,
        rate-scaled for that quality."""
        x = self._check_images(x)
        batch, _, height, width = x.shape
        if batch * height * width > self.max_pixels:
            raise ImageInputError(bitstream_format.pixel_limit_message("input", batch * height * width, self.max_pixels))
        if batch > self.max_images:
            raise ImageInputError(f"input has {batch} images, over the limit of max_images={self.max_images}")
        self.fingerprint  # builds the coder tables on first use
        x = x.to(next(self.parameters()).device, torch.float32)
        padded = F.pad(x, self._padding(height, width), mode="replicate")
        memory_budget.check_memory(padded[:, 0].numel(), memory_budget.ENCODE_BYTES_PER_PIXEL,
                                   f"encoding {batch} image(s) of {width}x{height}",
                                   x.device)
        # Analysis runs channels-last (about 1.4x faster on CPU); the entropy model gets y back in the
        # default layout, so its hyper transforms compute scales exactly as the decoder side does.
        y = self.encoder(padded.contiguous(memory_format=torch.channels_last)).contiguous()
        quality = bitstream_format.as_header_quality(resolve_quality(self.rate_control, quality))
        # The latent the rANS encoder codes is the rate-scaled one, so that is the one refined and checked.
        return EncodedLatent(scale_latent(self.rate_control, y, quality), height, width, quality)

    @torch.no_grad()
    def compress_latent(self, latent: EncodedLatent) -> bytes:
        """Entropy-code a latent from :meth:`encode` to a bitstream."""
        fingerprint = self.fingerprint
        bitstream_guards.check_latent(latent.y)
        # The entropy model's weights turn y into scales and means: checked on every call (they are small)
        # so weights changed in place after update() still cannot send NaN into the rANS encoder.
        bitstream_guards.check_weights(self.entropy_model, "entropy model")
        strings, latent_shape = self.entropy_model.compress(latent.y)
        batch, height, width = latent.y.shape[0], latent.height, latent.width
        return bitstream_format.pack(
            bitstream_format.Bitstream(fingerprint, batch, height, width, latent_shape, strings, quality=latent.quality)
        )

    @torch.no_grad()
    def latent_bpp(self, latent: EncodedLatent) -> Tensor:
        """Per-image bits per pixel the likelihoods give a latent from :meth:`encode`, rounded as the
        coder rounds it: the estimate its bitstream is compared with."""
        was_training = self.entropy_model.training
        self.entropy_model.eval()  # eval rounds y and z; training would add noise
        try:
            likelihoods = self.entropy_model(latent.y).likelihoods
        finally:
            self.entropy_model.train(was_training)
        return _bits(likelihoods) / (latent.height * latent.width)

    def read_header(self, data: bytes) -> bitstream_format.Bitstream:
        """Parse and check a bitstream against this model without entropy-decoding it."""
        stream = bitstream_format.unpack(
            data, max_pixels=self.max_pixels, max_images=self.max_images, max_bitstream_bytes=self.max_bitstream_bytes
        )
        bitstream_guards.check_header(
            stream, self.fingerprint, self.pad_multiple, self.entropy_model.num_streams, self.max_pixels
        )
        bitstream_guards.check_quality(stream, self.num_levels)
        return stream

    @torch.no_grad()
    def decode_latent(self, data: bytes) -> "tuple[Tensor, bitstream_format.Bitstream]":
        """Entropy-decode ``data`` to the quantised latent ŷ (the β-independent part)."""
        stream = self.read_header(data)
        try:
            counts = self.entropy_model.stream_symbol_counts(stream.latent_shape)
            guarded = bitstream_guards.guard_for_rans(stream, counts)
            y_hat = self.entropy_model.decompress(guarded, stream.latent_shape)
        except (ValueError, RuntimeError, IndexError) as err:
            raise BitstreamError(f"entropy decoding failed: {err}") from err
        bitstream_guards.check_decoded_latent(y_hat)
        return unscale_latent(self.rate_control, y_hat, stream.quality), stream

    @torch.no_grad()
    def decompress(
        self, data: bytes, beta: "float | Sequence[float] | Tensor" = 0.0
    ) -> "Tensor | List[Tensor]":
        """Decode ``data`` at realism ``beta`` to ``(B, 3, H, W)`` in [0, 1].

        A list of floats returns a list of images, one per β, from a single entropy decode. A
        ``(B,)`` tensor gives each image its own β; a ``(B, 1, H, W)`` tensor is a spatial β map.
        """
        if isinstance(beta, (list, tuple)) and not beta:
            raise ParameterError("beta is an empty list: give at least one realism weight")
        betas = list(beta) if isinstance(beta, (list, tuple)) else [beta]
        stream = self.read_header(data)  # sizes first: refuse what memory cannot hold before decoding anything
        padded = stream.num_images * stream.latent_shape[0] * stream.latent_shape[1] * self.pad_multiple**2
        memory_budget.check_memory(
            padded, memory_budget.DECODE_BYTES_PER_PIXEL + memory_budget.BYTES_PER_OUTPUT_PIXEL * len(betas),
            f"decoding {stream.num_images} image(s) of {stream.width}x{stream.height}", next(self.parameters()).device,
        )
        y_hat, stream = self.decode_latent(data)
        height, width = stream.height, stream.width
        maps = [self._pad_beta(b, stream.num_images, height, width, y_hat.device) for b in betas]
        y_hat = y_hat.contiguous(memory_format=torch.channels_last)  # synthesis ~1.5x faster on CPU
        images = []
        for image in self.synthesize(y_hat, maps, stream.quality):  # β-independent synthesis done once
            image = image[..., :height, :width].contiguous()
            bitstream_guards.check_decoded_image(image, self.generator)
            images.append(image.clamp_(0, 1))
        return images if isinstance(beta, (list, tuple)) else images[0]
