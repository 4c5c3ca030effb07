"""LPIPS (Zhang et al. 2018) as a loss and a validation metric, built so it never silently runs
on an untrained network.

The ``lpips`` package ships only LPIPS' linear heads; the AlexNet backbone is torchvision's
ImageNet checkpoint (``alexnet-owt-7be5be79.pth``), normally downloaded on first use. It is read,
in order, from ``backbone_path``, from torch hub's cache (``$TORCH_HOME/hub/checkpoints``), or
downloaded when ``allow_download`` is true. If none works a :class:`PerceptualWeightsError` says
how to provide it. A random backbone is only built when asked for by name
(``"lpips-random-test-only"``), for tests.

``"stlpips-alex"`` / ``"stlpips-vgg"`` are shift-tolerant LPIPS (Ghildyal & Liu, ECCV 2022) from the
``stlpips-pytorch`` package, whose wheel ships the complete networks (backbone and linear heads), so
they work offline. ST-LPIPS is a different metric from LPIPS (anti-aliased, stride-1 backbone,
retrained heads): its numbers are labelled "ST-LPIPS" and are not comparable with published LPIPS.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from pathlib import Path
from typing import Iterator, Optional

import torch
from torch import Tensor, nn

from multirealism.errors import MultiRealismError
from multirealism.perceptual_names import PERCEPTUAL_CHOICES, PERCEPTUAL_LABELS

STLPIPS_INSTALL = "pip install stlpips-pytorch ipython torchsummary"
ALEXNET_URL = "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"


class PerceptualWeightsError(MultiRealismError, RuntimeError):
    """The pretrained weights of the perceptual network are not available."""


def _alexnet_state_dict(backbone_path: Optional[str], allow_download: bool) -> dict:
    if backbone_path is not None:
        path = Path(backbone_path).expanduser()
        if not path.is_file():
            raise PerceptualWeightsError(f"lpips_backbone_path {str(path)!r} does not exist")
        return torch.load(path, map_location="cpu", weights_only=True)
    cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(ALEXNET_URL)
    if cached.is_file():
        return torch.load(cached, map_location="cpu", weights_only=True)
    hint = (
        "LPIPS (alex) needs torchvision's ImageNet AlexNet weights. Download "
        f"{ALEXNET_URL} on a machine with internet and either pass its path as "
        f"lpips_backbone_path (model.lpips_backbone_path=... on the command line) or copy it to {cached}. "
        "For tests only, perceptual='lpips-random-test-only' uses an untrained backbone."
    )
    if not allow_download:
        raise PerceptualWeightsError(f"AlexNet weights not found and downloading is disabled. {hint}")
    try:
        return torch.hub.load_state_dict_from_url(ALEXNET_URL, map_location="cpu", progress=False)
    except Exception as err:  # URLError, HTTPError, OSError: all mean "not available here"
        raise PerceptualWeightsError(f"could not download the AlexNet weights ({err}). {hint}") from err


def _load_alexnet_backbone(model: nn.Module, state: dict) -> None:
    """Copy torchvision AlexNet ``features.{i}`` weights into lpips' sliced copy of the same layers."""
    features = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
    if not features:
        raise PerceptualWeightsError("the AlexNet file holds no 'features.*' weights (is it torchvision's alexnet?)")
    target = {}
    for name, _ in model.net.named_parameters():
        index_and_param = name.split(".", 1)[1]  # "slice1.0.weight" -> "0.weight"
        if index_and_param not in features:
            raise PerceptualWeightsError(f"AlexNet weights lack features.{index_and_param}")
        target[name] = features[index_and_param]
    model.net.load_state_dict(target, strict=True)


def load_stlpips(net: str) -> nn.Module:
    """ST-LPIPS with the wheel's shipped weights, loaded so that every tensor must come from the file."""
    try:
        from stlpips_pytorch import stlpips
    except ImportError as err:  # the package, or IPython/torchsummary it imports without declaring them
        raise PerceptualWeightsError(f"ST-LPIPS needs the stlpips-pytorch package ({err}); {STLPIPS_INSTALL}") from err
    model = stlpips.LPIPS(net=net, variant="shift_tolerant", pretrained=False, verbose=False)
    path = Path(stlpips.__file__).parent / "weights" / "vST0.0" / f"{net}_shift_tolerant.pth"
    if not path.is_file():
        raise PerceptualWeightsError(f"stlpips-pytorch is installed without its weights file {path}; {STLPIPS_INSTALL}")
    missing, unexpected = model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=False)
    missing = [k for k in missing if not k.startswith("lins.")]  # ``lins.i`` aliases ``lin{i}`` (same modules)
    if missing or unexpected:
        raise PerceptualWeightsError(f"{path} does not match ST-LPIPS ({net}): missing {missing}, unexpected {unexpected}")
    return model


class Perceptual(nn.Module):
    """Frozen LPIPS-style distance for images in [0, 1]: per-image ``(B, 1, 1, 1)`` or a ``(B, 1, H, W)`` map.

    ``name`` is the :data:`PERCEPTUAL_CHOICES` entry; ``label`` the metric's name for people
    (e.g. "ST-LPIPS (alex)") and ``key`` its name in training logs (``lpips`` or ``st_lpips``), so
    reports and loss curves never call ST-LPIPS "LPIPS".
    """

    def __init__(self, lpips_model: nn.Module, name: str) -> None:
        super().__init__()
        self.lpips = lpips_model.eval().requires_grad_(False)
        self.name = name
        self.label = PERCEPTUAL_LABELS.get(name, name)
        self.key = "st_lpips" if name.startswith("stlpips-") else "lpips"

    def train(self, mode: bool = True) -> "Perceptual":
        return super().train(False)  # dropout in the linear heads stays off

    @contextlib.contextmanager
    def _spatial(self, on: bool) -> Iterator[None]:
        previous = self.lpips.spatial
        self.lpips.spatial = on
        try:
            yield
        finally:
            self.lpips.spatial = previous

    def forward(self, x_hat: Tensor, x: Tensor, spatial: bool = False) -> Tensor:
        with self._spatial(spatial):
            return self.lpips(x_hat.float(), x.float(), normalize=True)


def build_perceptual(
    name: str = "lpips-alex", backbone_path: Optional[str] = None, allow_download: bool = True
) -> Optional[nn.Module]:
    """The perceptual network named ``name`` (see :data:`PERCEPTUAL_CHOICES`), or None for ``"none"``:
    a :class:`Perceptual`, or for ``"wasserstein-vgg"`` a
    :class:`~multirealism.training.wasserstein.WassersteinDistortion` with the same interface.

    ``backbone_path`` and ``allow_download`` concern ``"lpips-alex"`` only; ST-LPIPS is read from its wheel.
    """
    if name not in PERCEPTUAL_CHOICES:
        raise ValueError(f"perceptual must be one of {PERCEPTUAL_CHOICES}, got {name!r}")
    if name == "none":
        return None
    if name == "wasserstein-vgg":
        from multirealism.training.wasserstein import WassersteinDistortion

        return WassersteinDistortion()
    if name.startswith("stlpips-"):
        return Perceptual(load_stlpips(name[len("stlpips-"):]), name)
    import lpips

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module="torchvision")
        model = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False)
    if name == "lpips-alex":
        _load_alexnet_backbone(model, _alexnet_state_dict(backbone_path, allow_download))
    else:
        warnings.warn("perceptual='lpips-random-test-only': LPIPS runs on an untrained AlexNet", stacklevel=2)
    return Perceptual(model, name)
