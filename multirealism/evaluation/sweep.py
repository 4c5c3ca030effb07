"""One pass over the images: every image through the learned codec at every β and through the baselines.

One row per image and setting (a setting is a learned model at one rate level and β, a classical codec
at one quality, or with ``match_bytes`` a classical codec at the file size of one model's rate level)
with the fields in :data:`ROW_FIELDS`:

* ``bytes``/``bpp`` come from the real bitstream: ``bpp = 8 · len(bytes) / (H · W)``.
  ``bpp_estimate`` (learned codecs) is what the entropy model's likelihoods of the same rounded
  latent promise, header excluded; ``bpp`` far above it means an unconverged coder (e.g. the entropy
  bottleneck's quantiles). ``nan`` for classical codecs.
* ``psnr``, ``ms_ssim``, ``lpips``: :mod:`multirealism.evaluation.metrics` (8-bit rounded images);
  ``lpips`` is ``nan`` when no perceptual network is given.
* ``quality``: the learned codec's rate level, or the classical codec's Pillow quality; for a
  classical codec matched to a model's file size it is the model's rate level, and ``codec_quality``
  the Pillow quality chosen for this image (:func:`matched_quality`).
* ``encode_s``: one ``codec.encode`` + ``compress_latent`` per image and level (shared by all β).
  ``decode_s`` for the learned codec is the time of the single ``codec.decompress(data, beta=[...])``
  call divided by the number of β (one entropy decode shared by all β); for the baselines it is that
  codec's own decode.

Nothing that stays the same across β is redone: each level is encoded and entropy-decoded once, the
originals' patch features are extracted once, and each classical encoding once per image and quality.
Patches (``patch_size``: 256 as HiFiC, or 128 for small sets) go to an optional
:class:`~multirealism.evaluation.realism.RealismMeter`, all settings of one image in one pass.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from torch import Tensor

from multirealism.codec import MultiRealismCodec
from multirealism.data.transforms import center_crop, to_tensor
from multirealism.evaluation import baselines
from multirealism.evaluation.inputs import EvalImage
from multirealism.evaluation.metrics import LPIPSMetric, ms_ssim, psnr
from multirealism.evaluation.patches import PATCH_SIZE, patch_views
from multirealism.evaluation.realism import RealismMeter
from multirealism.evaluation.viewer import ViewerImage, ViewerLevel, data_uri
from multirealism.imageio import to_pil
from multirealism.latent_refinement import LatentRefinement, refine_or_encode

ROW_FIELDS = (
    "codec", "model", "beta", "quality", "codec_quality", "image", "width", "height",
    "bytes", "bpp", "bpp_estimate", "psnr", "ms_ssim", "lpips", "encode_s", "decode_s",
)
LEARNED = "multirealism"
STRIP_CROP = 256

Row = Dict[str, object]
SettingKey = Tuple[str, str, Optional[float], Optional[float]]
Progress = Callable[[str], None]


def setting_key(row: Row) -> SettingKey:
    """(codec, model, beta, quality): what identifies one operating point across images."""
    return (str(row["codec"]), str(row["model"]), row["beta"], row["quality"])  # type: ignore[return-value]


class Timer:
    """Seconds spent per phase of the sweep (the final summary line reports them)."""

    def __init__(self) -> None:
        self.seconds: Dict[str, float] = defaultdict(float)

    def add(self, phase: str, start: float) -> None:
        self.seconds[phase] += time.perf_counter() - start


def _row(codec: str, model: str, beta: Optional[float], quality: Optional[float], name: str, image: Tensor,
         decoded: Tensor, num_bytes: int, encode_s: float, decode_s: float, perceptual: float,
         bpp_estimate: float = math.nan, codec_quality: Optional[int] = None) -> Row:
    height, width = image.shape[-2:]
    return {
        "codec": codec,
        "model": model,
        "beta": beta,
        "quality": quality,
        "codec_quality": codec_quality,
        "image": name,
        "width": int(width),
        "height": int(height),
        "bytes": int(num_bytes),
        "bpp": 8.0 * num_bytes / (height * width),
        "bpp_estimate": bpp_estimate,
        "psnr": psnr(decoded, image),
        "ms_ssim": ms_ssim(decoded, image),
        "lpips": perceptual,
        "encode_s": encode_s,
        "decode_s": decode_s,
    }


def _perceptual(lpips: Optional[LPIPSMetric], decoded: Sequence[Tensor], image: Tensor) -> List[float]:
    """The perceptual distance of each decoding to ``image``, one image per call: on CPU, batches of whole
    photographs were slower (their activations are reallocated on every call: twice the system time)."""
    if lpips is None:
        return [math.nan] * len(decoded)
    return [lpips(out, image) for out in decoded]


def rate_levels(codec: MultiRealismCodec, requested: Optional[Sequence[float]] = None) -> List[Optional[float]]:
    """Qualities to code with: ``requested`` (default every trained level) for a rate-controlled
    codec, ``[None]`` (its one rate, no quality column) for a fixed-rate one."""
    if codec.num_levels == 1:
        return [None]
    return [float(q) for q in (requested if requested else range(codec.num_levels))]


def learned_rows(codec: MultiRealismCodec, name: str, image: Tensor, betas: Sequence[float], model: str = LEARNED,
                 lpips: Optional[LPIPSMetric] = None, quality: Optional[float] = None,
                 refine: Optional[LatentRefinement] = None,
                 timer: Optional[Timer] = None) -> Tuple[List[Row], List[Tensor], bytes]:
    """Compress ``image`` once (at ``quality``, its latent refined with ``refine``), entropy-decode it
    once and synthesise every β; rows, the decoded images (one per β) and the bitstream. The estimate is
    the likelihoods' bpp of the coded latent."""
    timer = timer or Timer()
    began = start = time.perf_counter()
    latent = refine_or_encode(codec, image, quality, refine)
    data = codec.compress_latent(latent)
    encode_s = time.perf_counter() - start
    start = time.perf_counter()
    decoded = [d[0].float().cpu() for d in codec.decompress(data, beta=[float(b) for b in betas])]
    decode_s = (time.perf_counter() - start) / len(betas)
    estimate = float(codec.latent_bpp(latent).sum())
    timer.add("learned codec", began)
    start = time.perf_counter()
    distances = _perceptual(lpips, decoded, image)
    rows = [_row(LEARNED, model, float(beta), quality, name, image, out, len(data), encode_s, decode_s, distance,
                 estimate) for beta, out, distance in zip(betas, decoded, distances)]
    timer.add("full-reference metrics", start)
    return rows, decoded, data


class EncodingCache:
    """Classical encodings of one image by ``(codec, quality)``: each is made once, whether the quality
    grid, the file-size search or the viewer asks for it."""

    def __init__(self, image: Tensor) -> None:
        self.image = image
        self._coded: Dict[Tuple[str, int], baselines.CodedImage] = {}

    def get(self, codec: str, quality: int) -> baselines.CodedImage:
        key = (codec, int(quality))
        if key not in self._coded:
            self._coded[key] = baselines.encode_decode(self.image, codec, int(quality))
        return self._coded[key]


def matched_quality(cache: EncodingCache, codec: str, max_bytes: int) -> int:
    """The largest Pillow quality (0-100) whose file is at most ``max_bytes``, by bisection (file size
    grows with quality); 0 when even quality 0 is larger (the row's bytes then show by how much)."""
    low, high = 0, 100
    if len(cache.get(codec, high).data) <= max_bytes:
        return high
    while high - low > 1:  # invariant: quality ``high`` is too large; ``low`` fits, or is 0
        middle = (low + high) // 2
        if len(cache.get(codec, middle).data) <= max_bytes:
            low = middle
        else:
            high = middle
    return low


def baseline_rows(codec: str, name: str, image: Tensor, qualities: Sequence[int],
                  lpips: Optional[LPIPSMetric] = None, cache: Optional[EncodingCache] = None) -> Tuple[List[Row], List[Tensor]]:
    """Encode and decode ``image`` with a classical codec at each quality; rows and decoded images."""
    cache = cache or EncodingCache(image)
    coded = [cache.get(codec, int(q)) for q in qualities]
    distances = _perceptual(lpips, [c.decoded for c in coded], image)
    rows = [_row(codec, "", None, int(q), name, image, c.decoded, len(c.data), c.encode_s, c.decode_s, d,
                 codec_quality=int(q)) for q, c, d in zip(qualities, coded, distances)]
    return rows, [c.decoded for c in coded]


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
    patch_size: int = PATCH_SIZE
    timings: Dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0


def _centre_crop(image: Tensor, size: int = STRIP_CROP) -> Tensor:
    """The data package's centre crop (PIL) of an image tensor; the 8-bit result is what a figure shows."""
    return to_tensor(center_crop(to_pil(image), size))


def realism_pairs(keys: Sequence[SettingKey]) -> Dict[SettingKey, SettingKey]:
    """For KID differences: each learned setting against the same model and level at its lowest β, and
    each classical codec matched to a model's file size against that model and level at its lowest β."""
    lowest: Dict[Tuple[str, Optional[float]], float] = {}
    for codec, model, beta, quality in keys:
        if codec == LEARNED and beta is not None:
            lowest[(model, quality)] = min(beta, lowest.get((model, quality), math.inf))
    pairs = {}
    for key in keys:
        codec, model, beta, quality = key
        if (model, quality) in lowest and model:
            base = (LEARNED, model, lowest[(model, quality)], quality)
            if base != key:
                pairs[key] = base
    return pairs


def _closest_in_size(rows: Sequence[Row], decoded: Sequence[Tensor], max_bytes: int) -> Tuple[Row, Tensor]:
    """The classical decoding with the largest file not above ``max_bytes`` (else the smallest file)."""
    order = sorted(range(len(rows)), key=lambda i: int(rows[i]["bytes"]))  # type: ignore[arg-type]
    fitting = [i for i in order if int(rows[i]["bytes"]) <= max_bytes]  # type: ignore[arg-type]
    index = fitting[-1] if fitting else order[0]
    return rows[index], decoded[index]


Level = Tuple[str, Optional[float], List[Row], List[Tensor], int]  # model, quality, rows, decoded, bytes


def _viewer_page(name: str, image: Tensor, levels: Sequence[Level],
                 classical: Dict[str, Tuple[List[Row], List[Tensor]]], match_bytes: bool) -> ViewerImage:
    """The viewer's entry for one image: the original once; per model and level its decodings by β and
    each classical codec's decoding matched to (or, from the grid, closest below) the level's file size."""
    page = ViewerImage(name, data_uri(image), image.shape[-1], image.shape[-2])
    for model, quality, level_rows, decoded, size in levels:
        level = ViewerLevel(model, quality, size)
        for row, out in sorted(zip(level_rows, decoded), key=lambda pair: float(pair[0]["beta"])):  # type: ignore
            level.decoded.append((float(row["beta"]), data_uri(out), float(row["bpp"]), float(row["psnr"])))  # type: ignore
        for codec, (codec_rows, codec_decoded) in classical.items():
            if match_bytes:
                row, out = next((r, d) for r, d in zip(codec_rows, codec_decoded)
                                if r["model"] == model and r["quality"] == quality)
            else:
                row, out = _closest_in_size(codec_rows, codec_decoded, size)
            level.classical.append(
                (codec, int(row["codec_quality"]), data_uri(out), float(row["bpp"]), float(row["psnr"]))  # type: ignore
            )
        page.levels.append(level)
    return page


def run_sweep(images: Sequence[EvalImage], models: Sequence[Tuple[str, MultiRealismCodec]],
              betas: Sequence[float], baseline_codecs: Sequence[str] = (),
              qualities: Sequence[int] = baselines.DEFAULT_QUALITIES, lpips: Optional[LPIPSMetric] = None,
              realism: Optional[RealismMeter] = None, progress: Optional[Progress] = None, viewer: bool = False,
              model_qualities: Optional[Sequence[float]] = None,
              refine: Optional[LatentRefinement] = None, patch_size: int = PATCH_SIZE,
              match_bytes: bool = False) -> SweepResult:
    """Evaluate every model at every β (a rate-controlled one at every quality of :func:`rate_levels`)
    and every baseline on every image: at every quality of ``qualities``, or with ``match_bytes`` at
    the largest quality whose file is no bigger than each model's file at each rate level.

    ``progress`` receives one line per image. The strip figure uses a centre crop of the first image
    with the first model. With ``viewer``, every image (once), its decodings by every model at every
    level and β, and the classical decodings of about the same file size are kept for the viewer page.
    """
    started = time.perf_counter()
    timer = Timer()
    rows: List[Row] = []
    too_small: List[str] = []
    strip: Optional[Strip] = None
    pages: List[ViewerImage] = []
    for number, item in enumerate(images, start=1):
        image_start = time.perf_counter()
        image = item.load().float()
        start = time.perf_counter()
        patches = patch_views(image, patch_size)
        if not patches:
            too_small.append(item.name)
        if realism is not None:
            realism.add_reference(item.name, patches)
        timer.add("realism features", start)
        settings: List[Tuple[SettingKey, Tensor]] = []
        levels: List[Level] = []
        for index, (model, codec) in enumerate(models):
            for quality in rate_levels(codec, model_qualities):
                new_rows, decoded, data = learned_rows(codec, item.name, image, betas, model, lpips, quality, refine,
                                                       timer)
                rows.extend(new_rows)
                settings += [(setting_key(row), out) for row, out in zip(new_rows, decoded)]
                levels.append((model, quality, new_rows, decoded, len(data)))
            if strip is None and index == 0:
                strip = Strip(item.name, model, _centre_crop(image))
                pairs = sorted(zip(betas, decoded), key=lambda pair: pair[0])
                strip.decoded = [(float(beta), _centre_crop(out)) for beta, out in pairs]
        start = time.perf_counter()
        cache = EncodingCache(image)
        classical: Dict[str, Tuple[List[Row], List[Tensor]]] = {}
        for name in baseline_codecs:
            if match_bytes:
                chosen = [(model, quality, matched_quality(cache, name, size)) for model, quality, _, _, size in levels]
                new_rows, decoded = baseline_rows(name, item.name, image, [q for _, _, q in chosen], lpips, cache)
                for row, (model, quality, _) in zip(new_rows, chosen):
                    row.update(model=model, quality=quality)
            else:
                new_rows, decoded = baseline_rows(name, item.name, image, qualities, lpips, cache)
            rows.extend(new_rows)
            settings += [(setting_key(row), out) for row, out in zip(new_rows, decoded)]
            classical[name] = (new_rows, decoded)
        timer.add("classical codecs and their metrics", start)
        if realism is not None:
            start = time.perf_counter()
            realism.add_settings(item.name, [(key, patch_views(out, patch_size)) for key, out in settings])
            timer.add("realism features", start)
        if viewer and levels:  # the page compares with a learned codec: none without a model
            start = time.perf_counter()
            pages.append(_viewer_page(item.name, image, levels, classical, match_bytes))
            timer.add("viewer", start)
        if progress is not None:
            progress(f"[{number}/{len(images)}] {item.name} ({image.shape[-1]}x{image.shape[-2]}, "
                     f"{len(patches)} patches of {patch_size} px): {len(settings)} settings in "
                     f"{time.perf_counter() - image_start:.1f} s")
    scores: Dict[SettingKey, Dict[str, float]] = {}
    if realism is not None:
        start = time.perf_counter()
        if progress is not None:
            progress(f"scoring realism of {len({setting_key(r) for r in rows})} settings "
                     f"({realism.bootstrap} bootstrap draws over images)")
        scores = realism.scores(realism_pairs(list(dict.fromkeys(setting_key(r) for r in rows))))  # type: ignore[assignment]
        timer.add("realism scores", start)
    return SweepResult(
        rows=rows,
        realism=scores,
        realism_label=realism.label if realism is not None else None,
        reference_patches=realism.reference_count if realism is not None else 0,
        too_small_for_patches=too_small,
        strip=strip,
        viewer=pages,
        patch_size=patch_size,
        timings=dict(timer.seconds),
        seconds=time.perf_counter() - started,
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
