"""The evaluation sweep: every image through the learned codec at every β and through the baselines.

One row per image and setting (a setting is a learned model at one β, or a classical codec at one
quality) with the fields in :data:`ROW_FIELDS`:

* ``bytes``/``bpp`` come from the real bitstream: ``bpp = 8 · len(bytes) / (H · W)``.
  ``bpp_estimate`` (learned codecs) is what the entropy model's likelihoods of the same rounded
  latent promise, header excluded; ``bpp`` far above it means an unconverged coder (e.g. the entropy
  bottleneck's quantiles). ``nan`` for classical codecs.
* ``psnr``, ``ms_ssim``, ``lpips``: :mod:`multirealism.evaluation.metrics` (8-bit rounded images);
  ``lpips`` is ``nan`` when no LPIPS network is given.
* ``encode_s``: one ``codec.compress`` call per image (the learned codec encodes once for all β).
  ``decode_s`` for the learned codec is the time of the single ``codec.decompress(data, beta=[...])``
  call divided by the number of β (one entropy decode shared by all β, so the per-β share is
  amortised); for the baselines it is that codec's own decode.

Patches of the originals and of each decoded image go to an optional
:class:`~multirealism.evaluation.realism.RealismMeter` for FID/KID per setting.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor
from tqdm.auto import tqdm

from multirealism.codec import MultiRealismCodec
from multirealism.data.transforms import center_crop, to_tensor
from multirealism.evaluation import baselines
from multirealism.evaluation.inputs import EvalImage
from multirealism.evaluation.metrics import LPIPSMetric, ms_ssim, psnr
from multirealism.evaluation.patches import extract_patches
from multirealism.evaluation.realism import RealismMeter
from multirealism.evaluation.viewer import ViewerImage, viewer_image
from multirealism.imageio import to_pil
from multirealism.latent_refinement import LatentRefinement, refine_or_encode

ROW_FIELDS = (
    "codec", "model", "beta", "quality", "image", "width", "height",
    "bytes", "bpp", "bpp_estimate", "psnr", "ms_ssim", "lpips", "encode_s", "decode_s",
)
LEARNED = "multirealism"
STRIP_CROP = 256

Row = Dict[str, object]
SettingKey = Tuple[str, str, Optional[float], Optional[int]]


def setting_key(row: Row) -> SettingKey:
    """(codec, model, beta, quality): what identifies one operating point across images."""
    return (str(row["codec"]), str(row["model"]), row["beta"], row["quality"])  # type: ignore[return-value]


def _row(codec: str, model: str, beta: Optional[float], quality: Optional[int], name: str, image: Tensor,
         decoded: Tensor, num_bytes: int, encode_s: float, decode_s: float,
         lpips: Optional[LPIPSMetric], bpp_estimate: float = math.nan) -> Row:
    height, width = image.shape[-2:]
    return {
        "codec": codec,
        "model": model,
        "beta": beta,
        "quality": quality,
        "image": name,
        "width": int(width),
        "height": int(height),
        "bytes": int(num_bytes),
        "bpp": 8.0 * num_bytes / (height * width),
        "bpp_estimate": bpp_estimate,
        "psnr": psnr(decoded, image),
        "ms_ssim": ms_ssim(decoded, image),
        "lpips": lpips(decoded, image) if lpips is not None else math.nan,
        "encode_s": encode_s,
        "decode_s": decode_s,
    }


def rate_levels(codec: MultiRealismCodec, requested: Optional[Sequence[float]] = None) -> List[Optional[float]]:
    """Qualities to code with: ``requested`` (default every trained level) for a rate-controlled
    codec, ``[None]`` (its one rate, no quality column) for a fixed-rate one."""
    if codec.num_levels == 1:
        return [None]
    return [float(q) for q in (requested if requested else range(codec.num_levels))]


def learned_rows(codec: MultiRealismCodec, name: str, image: Tensor, betas: Sequence[float], model: str = LEARNED,
                 lpips: Optional[LPIPSMetric] = None, realism: Optional[RealismMeter] = None,
                 quality: Optional[float] = None,
                 refine: Optional[LatentRefinement] = None) -> Tuple[List[Row], List[Tensor]]:
    """Compress ``image`` once (at ``quality``, its latent refined with ``refine``), decode it at every β;
    rows and the decoded images (one per β). The estimate is the likelihoods' bpp of the coded latent."""
    start = time.perf_counter()
    latent = refine_or_encode(codec, image, quality, refine)
    data = codec.compress_latent(latent)
    encode_s = time.perf_counter() - start
    start = time.perf_counter()
    decoded = [d[0].float().cpu() for d in codec.decompress(data, beta=[float(b) for b in betas])]
    decode_s = (time.perf_counter() - start) / len(betas)
    estimate = float(codec.latent_bpp(latent).sum())
    rows = []
    for beta, out in zip(betas, decoded):
        rows.append(_row(LEARNED, model, float(beta), quality, name, image, out, len(data), encode_s, decode_s, lpips,
                         estimate))
        if realism is not None:
            realism.add(setting_key(rows[-1]), extract_patches(out))
    return rows, decoded


def baseline_rows(
    codec: str,
    name: str,
    image: Tensor,
    qualities: Sequence[int],
    lpips: Optional[LPIPSMetric] = None,
    realism: Optional[RealismMeter] = None,
) -> List[Row]:
    """Encode and decode ``image`` with a classical codec at each quality."""
    rows = []
    for quality in qualities:
        coded = baselines.encode_decode(image, codec, int(quality))
        rows.append(_row(codec, "", None, int(quality), name, image, coded.decoded, len(coded.data),
                         coded.encode_s, coded.decode_s, lpips))
        if realism is not None:
            realism.add(setting_key(rows[-1]), extract_patches(coded.decoded))
    return rows


@dataclass
class Strip:
    """One crop of one image: the original and the learned codec's decodings at increasing β."""

    image: str
    model: str
    original: Tensor
    decoded: List[Tuple[float, Tensor]] = field(default_factory=list)


@dataclass
class SweepResult:
    rows: List[Row]
    realism: Dict[SettingKey, Dict[str, float]]
    realism_label: Optional[str]
    reference_patches: int
    too_small_for_patches: List[str]
    strip: Optional[Strip]
    viewer: List[ViewerImage] = field(default_factory=list)


def _centre_crop(image: Tensor, size: int = STRIP_CROP) -> Tensor:
    """The data package's centre crop (PIL) of an image tensor; the 8-bit result is what a figure shows."""
    return to_tensor(center_crop(to_pil(image), size))


def run_sweep(images: Sequence[EvalImage], models: Sequence[Tuple[str, MultiRealismCodec]],
              betas: Sequence[float], baseline_codecs: Sequence[str] = (),
              qualities: Sequence[int] = baselines.DEFAULT_QUALITIES, lpips: Optional[LPIPSMetric] = None,
              realism: Optional[RealismMeter] = None, progress: bool = True, viewer: bool = False,
              model_qualities: Optional[Sequence[float]] = None,
              refine: Optional[LatentRefinement] = None) -> SweepResult:
    """Evaluate every model at every β (a rate-controlled one at every quality of
    :func:`rate_levels`) and every baseline at every quality on every image.

    The strip figure uses a centre crop of the first image with the first model. With ``viewer``,
    every image and its decodings by every model are also kept, embedded, for the β-slider page.
    """
    rows: List[Row] = []
    too_small: List[str] = []
    strip: Optional[Strip] = None
    pages: List[ViewerImage] = []
    for item in tqdm(images, desc="evaluate", unit="image", disable=not progress):
        image = item.load().float()
        patches = extract_patches(image)
        if patches.shape[0] == 0:
            too_small.append(item.name)
        if realism is not None:
            realism.add_reference(patches)
        for index, (model, codec) in enumerate(models):
            for quality in rate_levels(codec, model_qualities):
                new_rows, decoded = learned_rows(codec, item.name, image, betas, model, lpips, realism, quality, refine)
                rows.extend(new_rows)
                if viewer:
                    label = model if quality is None else f"{model} q{quality:g}"
                    pages.append(viewer_image(item.name, label, image, decoded, new_rows))
            if strip is None and index == 0:
                strip = Strip(item.name, model, _centre_crop(image))
                pairs = sorted(zip(betas, decoded), key=lambda pair: pair[0])
                strip.decoded = [(float(beta), _centre_crop(out)) for beta, out in pairs]
        for name in baseline_codecs:
            rows.extend(baseline_rows(name, item.name, image, qualities, lpips, realism))
    scores = realism.scores() if realism is not None else {}
    return SweepResult(
        rows=rows,
        realism=scores,
        realism_label=realism.label if realism is not None else None,
        reference_patches=realism.reference_count if realism is not None else 0,
        too_small_for_patches=too_small,
        strip=strip,
        viewer=pages,
    )


def load_models(
    paths: Sequence[str], device: str = "cpu", pretrained: Sequence[str] = ()
) -> List[Tuple[str, MultiRealismCodec]]:
    """``(label, codec)`` per checkpoint, then per shipped model; a checkpoint's label is its file name
    without the suffix (made unique), a shipped model's its name."""
    models: List[Tuple[str, MultiRealismCodec]] = []
    for path in paths:
        label = Path(path).stem
        if any(label == existing for existing, _ in models):
            label = str(path)
        models.append((label, MultiRealismCodec.from_checkpoint(path, map_location=device)))
    for name in pretrained:
        label = name if all(name != existing for existing, _ in models) else f"shipped:{name}"
        models.append((label, MultiRealismCodec.pretrained(name, map_location=device)))
    return models
