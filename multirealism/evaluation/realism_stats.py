"""Two-sample statistics on patch features, made for a few photographs with hundreds of patches.

* :func:`kid` is KID (Bińkowski et al. 2018: MMD² with the cubic polynomial kernel
  ``k(x, y) = (x·y / d + 1)³``, torchmetrics' kernel) on every patch at once, in the form for PAIRED
  samples: decoded patch ``i`` is the decoding of real patch ``i``, so the cross term averages
  ``k(real_i, decoded_j)`` over ``i ≠ j`` only (Gretton et al. 2012's MMD²_u), as the within-set terms
  do. That is unbiased under the pairing and exactly 0 for identical sets; torchmetrics' form (cross
  term over all ``i, j``, made for independent samples) counts each patch against its own decoding and
  lands below zero for close decodings (by ``2·(mean k(xᵢ, yᵢ) − mean k(xᵢ, yⱼ)) / N`` for identical
  sets) — a negative KID on few patches. The tests check the two differ by exactly that term. The
  Gram matrices are computed once, so the bootstrap below only re-weights them.
* :func:`bootstrap_kid` resamples IMAGES with replacement (every patch of a drawn image comes along, as
  often as the image was drawn): patches of one image are correlated, so resampling patches would give
  intervals that are far too narrow. The same draws serve every setting, so the difference of two
  settings (e.g. KID(β) − KID(β = 0)) is paired on the same images. Within a draw, pairs of patches
  from two copies of one image are left out (they duplicate pairs within the image and pull the
  resampled KIDs away from the estimate), so a draw of every image once gives exactly :func:`kid`. The
  kernel sums are reduced to image-by-image blocks once, so each draw costs an I x I product.
* :func:`fid` is the Fréchet distance with the covariances' cross term ``tr √(Σ₁Σ₂)`` computed exactly as
  the nuclear norm of ``A₁A₂ᵀ / √((n₁-1)(n₂-1))`` (``A``: centred features). With fewer patches than
  feature dimensions this is an n×n problem instead of torchmetrics' 2048×2048 eigendecomposition
  (seconds per setting); the tests check both agree. FID stays biased on small samples: KID is the
  number to read there.
* :func:`c2st_accuracy` is a classifier two-sample test: L2-regularised logistic regression (real 0,
  decoded 1) on standardised features, trained on all images but one and scored on the held-out image's
  patches, for every image in turn; the held-out accuracy is pooled over all patches. 0.5 means the
  classifier cannot tell the sets apart. Written in torch (LBFGS) because scikit-learn is not a
  dependency; a logit of exactly 0 counts half.
"""

from __future__ import annotations

import math
from typing import Dict, Hashable, Mapping, Sequence, Tuple

import torch
from torch import Tensor

CONFIDENCE = 0.95
C2ST_L2 = 1.0  # the penalty ½‖w‖² against the summed log-loss (scikit-learn's C = 1)


def poly_kernel(a: Tensor, b: Tensor) -> Tensor:
    """KID's kernel ``(a·b / d + 1)³`` between the rows of ``a`` and ``b`` (torchmetrics' defaults)."""
    return (a @ b.T / a.shape[1] + 1.0) ** 3


def _image_pairs(gram: Tensor, owner: Tensor, num_images: int) -> Tuple[Tensor, Tensor]:
    """Sums of ``gram`` over pairs of two different patches, per pair of images ``(I, I)``, and how many
    pairs each sum holds."""
    member = torch.zeros(num_images, gram.shape[0], dtype=gram.dtype)
    member[owner, torch.arange(gram.shape[0])] = 1.0
    sums = member @ gram @ member.T - torch.diag(member @ torch.diagonal(gram))
    sizes = member.sum(dim=1)
    return sums, torch.outer(sizes, sizes) - torch.diag(sizes)


def _resampled_mean(sums: Tensor, counts: Tensor, draws: Tensor) -> Tensor:
    """Mean over the pairs of a resample, for each row of ``draws`` ``(B, I)`` (how often each image was
    drawn). A pair of patches from two copies of one image is an artefact of drawing with replacement
    and is left out; pairs within one copy count once per copy, as in the sample itself."""

    def weigh(matrix: Tensor) -> Tensor:
        diagonal = torch.diagonal(matrix)
        return ((draws @ matrix) * draws).sum(dim=1) - (draws**2 * diagonal).sum(dim=1) + (draws * diagonal).sum(dim=1)

    total, count = weigh(sums), weigh(counts)
    return torch.where(count > 0, total / count.clamp_min(1e-12), torch.full_like(total, math.nan))


def _kid_draws(real: Tensor, fake: Tensor, owner: Tensor, num_images: int, draws: Tensor,
               real_pairs: "Tuple[Tensor, Tensor] | None" = None) -> Tensor:
    """KID of paired features ``(N, D)`` (patch ``i`` of ``fake`` decoded from patch ``i`` of ``real``,
    both from image ``owner[i]``) for each row of ``draws``."""
    if real.shape != fake.shape:
        raise ValueError(f"paired KID needs as many decoded as real patches: {tuple(fake.shape)} vs {tuple(real.shape)}")
    means = [_resampled_mean(*pairs, draws) for pairs in (
        real_pairs or _image_pairs(poly_kernel(real, real), owner, num_images),
        _image_pairs(poly_kernel(fake, fake), owner, num_images),
        _image_pairs(poly_kernel(real, fake), owner, num_images),
    )]
    return means[0] + means[1] - 2 * means[2]


def kid(real: Tensor, fake: Tensor) -> float:
    """KID of paired feature sets ``(N, D)`` (row ``i`` of ``fake`` decoded from row ``i`` of ``real``),
    every patch used; see the module docstring."""
    count = real.shape[0]
    ones = torch.ones(1, count, dtype=torch.float64)
    return float(_kid_draws(real.double(), fake.double(), torch.arange(count), count, ones)[0])


def image_draws(num_images: int, draws: int, seed: int = 0) -> Tensor:
    """``(draws, num_images)``: how often each image is drawn in each bootstrap resample."""
    generator = torch.Generator().manual_seed(seed)
    picks = torch.randint(num_images, (draws, num_images), generator=generator)
    return torch.zeros(draws, num_images, dtype=torch.float64).scatter_add_(1, picks, torch.ones_like(picks, dtype=torch.float64))


def _interval(values: Tensor) -> Tuple[float, float]:
    finite = values[torch.isfinite(values)]
    if finite.numel() < 2:
        return math.nan, math.nan
    tail = (1 - CONFIDENCE) / 2
    low, high = torch.quantile(finite, torch.tensor([tail, 1 - tail], dtype=finite.dtype))
    return float(low), float(high)


def bootstrap_kid(
    real: Sequence[Tensor], fakes: Mapping[Hashable, Sequence[Tensor]], pairs: Mapping[Hashable, Hashable] = {},
    draws: int = 1000, seed: int = 0,
) -> Dict[Hashable, Dict[str, float]]:
    """KID of every setting with a 95 % bootstrap interval over images, and for each ``key: base`` in
    ``pairs`` the interval of KID(key) − KID(base) on the same resampled images.

    ``real`` holds one ``(n_i, D)`` feature tensor per image; every ``fakes[key]`` the decoded patches'
    features of the same images in the same order. Returns ``{key: {"kid", "kid_lo", "kid_hi",
    "kid_diff", "kid_diff_lo", "kid_diff_hi"}}`` (the differences ``nan`` for unpaired keys)."""
    counts = torch.tensor([f.shape[0] for f in real])
    real_all = torch.cat(list(real)).double()
    owner = torch.repeat_interleave(torch.arange(len(real)), counts)
    real_pairs = _image_pairs(poly_kernel(real_all, real_all), owner, len(real))
    weights = torch.cat([torch.ones(1, len(real), dtype=torch.float64), image_draws(len(real), draws, seed)])
    values: Dict[Hashable, Tensor] = {}
    for key, fake in fakes.items():
        if [f.shape[0] for f in fake] != counts.tolist():
            raise ValueError(f"setting {key!r}: patch counts per image differ from the reference's")
        values[key] = _kid_draws(real_all, torch.cat(list(fake)).double(), owner, len(real), weights, real_pairs)
    results: Dict[Hashable, Dict[str, float]] = {}
    for key, value in values.items():
        low, high = _interval(value[1:])
        entry = {"kid": float(value[0]), "kid_lo": low, "kid_hi": high,
                 "kid_diff": math.nan, "kid_diff_lo": math.nan, "kid_diff_hi": math.nan}
        base = pairs.get(key)
        if base is not None and base in values:
            diff = value - values[base]
            entry["kid_diff"] = float(diff[0])
            entry["kid_diff_lo"], entry["kid_diff_hi"] = _interval(diff[1:])
        results[key] = entry
    return results


def fid(real: Tensor, fake: Tensor) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets ``(N, D)`` (unbiased covariances)."""
    if min(real.shape[0], fake.shape[0]) < 2:
        return math.nan
    real, fake = real.double(), fake.double()
    a, b = real - real.mean(0), fake - fake.mean(0)
    na, nb = real.shape[0] - 1, fake.shape[0] - 1
    cross = torch.linalg.svdvals(a @ b.T).sum() / math.sqrt(na * nb)
    means = (real.mean(0) - fake.mean(0)).square().sum()
    return float(means + a.square().sum() / na + b.square().sum() / nb - 2 * cross)


def _fit_logistic(x: Tensor, y: Tensor, iterations: int = 100) -> Tuple[Tensor, Tensor]:
    """Weights and bias minimising the summed log-loss + ½‖w‖² / C on ``x`` ``(N, D)``, labels ``y``."""
    w = torch.zeros(x.shape[1], dtype=x.dtype, requires_grad=True)
    b = torch.zeros((), dtype=x.dtype, requires_grad=True)
    optimizer = torch.optim.LBFGS([w, b], max_iter=iterations, line_search_fn="strong_wolfe",
                                  tolerance_grad=1e-9, tolerance_change=1e-12)

    def closure() -> Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(x @ w + b, y, reduction="sum")
        loss = loss + 0.5 * w.square().sum() / C2ST_L2
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    return w.detach(), b.detach()


def c2st_accuracy(real: Sequence[Tensor], fake: Sequence[Tensor]) -> float:
    """Leave-one-image-out held-out accuracy of a logistic regression telling real from decoded patch
    features (one ``(n_i, D)`` tensor per image in each list); ``nan`` with fewer than two images."""
    usable = [i for i in range(len(real)) if real[i].shape[0] and fake[i].shape[0]]
    if len(usable) < 2:
        return math.nan
    correct, total = 0.0, 0
    for held in usable:
        train = [i for i in usable if i != held]
        x = torch.cat([real[i] for i in train] + [fake[i] for i in train]).double()
        y = torch.cat([torch.zeros(sum(real[i].shape[0] for i in train)),
                       torch.ones(sum(fake[i].shape[0] for i in train))]).double()
        mean, std = x.mean(0), x.std(0).clamp_min(1e-6)
        w, b = _fit_logistic((x - mean) / std, y)
        test_x = torch.cat([real[held], fake[held]]).double()
        test_y = torch.cat([torch.zeros(real[held].shape[0]), torch.ones(fake[held].shape[0])]).double()
        logits = ((test_x - mean) / std) @ w + b
        hits = torch.where(logits.abs() < 1e-9, torch.full_like(logits, 0.5), ((logits > 0).double() == test_y).double())
        correct += float(hits.sum())
        total += test_y.numel()
    return correct / total


def realism_scores(
    real: Sequence[Tensor], fakes: Mapping[Hashable, Sequence[Tensor]], pairs: Mapping[Hashable, Hashable] = {},
    draws: int = 1000, seed: int = 0, c2st: bool = True,
) -> Dict[Hashable, Dict[str, float]]:
    """Everything :class:`~multirealism.evaluation.realism.RealismMeter` reports per setting: FID, KID
    with its interval, the paired KID difference, C2ST accuracy and the patch and image counts."""
    results = bootstrap_kid(real, fakes, pairs, draws, seed)
    real_all = torch.cat(list(real))
    for key, fake in fakes.items():
        results[key].update(
            fid=fid(real_all, torch.cat(list(fake))),
            c2st=c2st_accuracy(real, fake) if c2st else math.nan,
            patches=int(real_all.shape[0]),
            images=len(real),
        )
    return results


def empty_scores(patches: int = 0, images: int = 0) -> Dict[str, float]:
    """The scores of a setting that could not be measured (too few patches)."""
    names = ("fid", "kid", "kid_lo", "kid_hi", "kid_diff", "kid_diff_lo", "kid_diff_hi", "c2st")
    scores: Dict[str, float] = {name: math.nan for name in names}
    scores.update(patches=patches, images=images)
    return scores

