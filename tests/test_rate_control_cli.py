"""``multirealism compress --quality`` and ``info`` on the fitted variable-rate codec."""

from __future__ import annotations

from pathlib import Path

import pytest

from compact_codec import load_compact
from helpers import natural_image
from multirealism import bitstream_format
from multirealism.cli import main as cli_main
from multirealism.imageio import load_image, save_image

MODEL = Path(__file__).parent / "data" / "fitted_tiny_rate_control.safetensors.gz"


@pytest.fixture
def run():
    """Call the CLI in-process (only the subcommand's own module is imported)."""
    return lambda *argv: cli_main.main([str(a) for a in argv])


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("rc_cli")
    codec = load_compact(MODEL)
    codec.save(root / "codec.safetensors")
    save_image(natural_image("rocket", 64), root / "in.png")
    return root, codec


def test_compress_at_a_quality_and_info_reports_it(run, files, tmp_path, capsys):
    root, codec = files
    ckpt = root / "codec.safetensors"
    assert run("compress", root / "in.png", tmp_path / "low.mrc", "--ckpt", ckpt, "--quality", "0.5") == 0
    assert run("compress", root / "in.png", tmp_path / "top.mrc", "--ckpt", ckpt) == 0
    low, top = (tmp_path / "low.mrc").read_bytes(), (tmp_path / "top.mrc").read_bytes()
    assert low == codec.compress(load_image(root / "in.png"), quality=0.5)
    assert bitstream_format.unpack(top).quality == 2.0 and len(low) < len(top)

    capsys.readouterr()
    assert run("info", tmp_path / "low.mrc", "--ckpt", ckpt) == 0
    out = capsys.readouterr().out
    assert "quality:        0.5" in out
    assert "model name:     elic + hyperprior + elic_cond + gain" in out
    assert "beta_max:       5.12" in out and "rate levels:    3" in out


@pytest.mark.parametrize("quality", ["-1", "2.5", "nan"])
def test_quality_outside_the_levels_exits_2(run, files, tmp_path, capsys, quality):
    root, _ = files
    code = run("compress", root / "in.png", tmp_path / "x.mrc", "--ckpt", root / "codec.safetensors", "--quality", quality)
    assert code == 2 and "outside [0, 2]" in capsys.readouterr().err
    assert not (tmp_path / "x.mrc").exists()
