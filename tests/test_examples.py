"""The Python API example runs as documented (offline, the shipped model)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from PIL import Image

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_python_api_example_writes_a_strip(tmp_path) -> None:
    out = tmp_path / "strip.png"
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "python_api.py"), "--out", str(out)],
        capture_output=True, text=True, timeout=300, check=True,
    )
    assert "bpp (counted from bytes)" in result.stdout
    with Image.open(out) as strip:
        assert strip.size == (600 * 5, 400)
