"""Shared fixtures: seeded tiny codecs and natural test images (helpers live in tests/helpers.py)."""

from __future__ import annotations

import warnings
from typing import Callable

import lightning.pytorch  # noqa: F401  (see below)
import pytest
import torch

from helpers import make_tiny_codec, natural_image
from multirealism import MultiRealismCodec

warnings.filterwarnings("ignore", message=".*torch.jit.script.*")
# Lightning gives its loggers a handler on the sys.stderr of its first import. Imported here, that is the real
# stderr; imported first inside a test using capsys, it would be the capture stream, which closes with that
# test, and every later Lightning log line would print "--- Logging error ---" and a traceback.


@pytest.fixture
def tiny_codec_factory() -> Callable[..., MultiRealismCodec]:
    return make_tiny_codec


@pytest.fixture
def astronaut() -> torch.Tensor:
    return natural_image("astronaut", 256)
