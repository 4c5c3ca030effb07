"""Shared fixtures: seeded tiny codecs and natural test images (helpers live in tests/helpers.py)."""

from __future__ import annotations

import warnings
from typing import Callable

import pytest
import torch

from helpers import make_tiny_codec, natural_image
from multirealism import MultiRealismCodec

warnings.filterwarnings("ignore", message=".*torch.jit.script.*")


@pytest.fixture
def tiny_codec_factory() -> Callable[..., MultiRealismCodec]:
    return make_tiny_codec


@pytest.fixture
def astronaut() -> torch.Tensor:
    return natural_image("astronaut", 256)
