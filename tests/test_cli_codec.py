"""``multirealism compress | decompress | info`` on real files, including the failure paths."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import make_tiny_codec, natural_image
from multirealism import bitstream_format
from multirealism.cli import main as cli_main
from multirealism.imageio import load_image, save_image


@pytest.fixture
def run():
    """Call the CLI in-process (only the subcommand's own module is imported)."""
    return lambda *argv: cli_main.main([str(a) for a in argv])


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    codec = make_tiny_codec("hyperprior", seed=3)
    codec.save(root / "codec.pt")
    save_image(natural_image("chelsea", 64)[:, :45, :61], root / "in.png")
    return root, codec


def test_compress_decompress_info_round_trip(run, files, tmp_path, capsys):
    root, codec = files
    assert run("compress", root / "in.png", tmp_path / "x.mrc", "--ckpt", root / "codec.pt") == 0
    data = (tmp_path / "x.mrc").read_bytes()
    assert data == codec.compress(load_image(root / "in.png"))

    assert run("decompress", tmp_path / "x.mrc", tmp_path / "y.png", "--ckpt", root / "codec.pt", "--beta", "2.56") == 0
    expected = codec.decompress(data, beta=2.56)[0]
    decoded = load_image(tmp_path / "y.png")
    assert decoded.shape == (3, 45, 61)
    assert float((decoded - expected).abs().max()) <= 0.5 / 255 + 1e-6  # 8-bit PNG rounding only

    capsys.readouterr()
    assert run("info", tmp_path / "x.mrc", "--ckpt", root / "codec.pt") == 0
    out = capsys.readouterr().out
    assert f"format version: {bitstream_format.FORMAT_VERSION}" in out and codec.fingerprint.hex() in out
    assert "1 x 61x45" in out and f"bytes:          {len(data)}" in out
    assert f"{8 * len(data) / (45 * 61):.4f}" in out and "matches" in out


def test_several_betas_decode_once_and_write_one_file_each(run, files, tmp_path, monkeypatch):
    root, _ = files
    run("compress", root / "in.png", tmp_path / "x.mrc", "--ckpt", root / "codec.pt")
    from multirealism.codec import MultiRealismCodec

    calls = []
    original = MultiRealismCodec.decode_latent
    monkeypatch.setattr(MultiRealismCodec, "decode_latent", lambda self, d: calls.append(1) or original(self, d))
    argv = ["decompress", tmp_path / "x.mrc", tmp_path / "out.png", "--ckpt", root / "codec.pt"]
    assert run(*argv, "--beta", "0", "--beta", "5.12") == 0
    assert len(calls) == 1
    low, high = load_image(tmp_path / "out_beta0.00.png"), load_image(tmp_path / "out_beta5.12.png")
    assert not torch.equal(low, high)
    assert not (tmp_path / "out.png").exists()


def test_outputs_are_never_overwritten_without_force(run, files, tmp_path, capsys):
    root, _ = files
    ckpt = ("--ckpt", root / "codec.pt")
    (tmp_path / "x.mrc").write_bytes(b"precious")
    assert run("compress", root / "in.png", tmp_path / "x.mrc", *ckpt) == 1
    err = capsys.readouterr().err
    assert "already exists; pass --force" in err and "force=True" not in err  # the CLI's spelling
    assert (tmp_path / "x.mrc").read_bytes() == b"precious"
    assert run("compress", root / "in.png", tmp_path / "x.mrc", *ckpt, "--force") == 0

    (tmp_path / "y_beta1.00.png").write_bytes(b"precious")
    argv = ["decompress", tmp_path / "x.mrc", tmp_path / "y.png", *ckpt, "--beta", "0", "--beta", "1"]
    assert run(*argv) == 1
    assert (tmp_path / "y_beta1.00.png").read_bytes() == b"precious"
    assert not (tmp_path / "y_beta0.00.png").exists()  # checked before anything is written
    assert run(*argv, "--force") == 0
    assert load_image(tmp_path / "y_beta1.00.png").shape == (3, 45, 61)

    assert run("decompress", tmp_path / "x.mrc", tmp_path / "x.png", *ckpt, "--force") == 0
    assert run("decompress", tmp_path / "x.png", tmp_path / "x.png", *ckpt, "--force") == 1
    assert "is the input" in capsys.readouterr().err
    assert load_image(tmp_path / "x.png").shape == (3, 45, 61)
    assert (tmp_path / "x.mrc").read_bytes()[:4] == b"MRIC"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["compress", "{root}/codec.pt", "{tmp}/x.mrc", "--ckpt", "{root}/codec.pt"], "not a readable image"),
        (["compress", "{root}/in.png", "{tmp}/x.mrc", "--ckpt", "{root}/in.png"], "cannot load"),
        (["compress", "{root}/in.png", "{tmp}/none/x.mrc", "--ckpt", "{root}/codec.pt"], "does not exist"),
        (["decompress", "{root}/in.png", "{tmp}/y.png", "--ckpt", "{root}/codec.pt"], "bad magic"),
        (["decompress", "{tmp}/missing.mrc", "{tmp}/y.png", "--ckpt", "{root}/codec.pt"], "cannot read"),
        (["info", "{root}/in.png"], "bad magic"),
    ],
)
def test_failures_exit_1_with_a_message(run, files, tmp_path, capsys, argv, message):
    root, _ = files
    assert run(*[a.format(root=root, tmp=tmp_path) for a in argv]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"multirealism {argv[0]}: error:") and message in err


def test_decompress_with_another_model_and_bad_beta(run, files, tmp_path, capsys):
    root, _ = files
    run("compress", root / "in.png", tmp_path / "x.mrc", "--ckpt", root / "codec.pt")
    make_tiny_codec("hyperprior", seed=4).save(tmp_path / "other.pt")
    assert run("decompress", tmp_path / "x.mrc", tmp_path / "y.png", "--ckpt", tmp_path / "other.pt") == 1
    assert "written by model" in capsys.readouterr().err
    assert run("info", tmp_path / "x.mrc", "--ckpt", tmp_path / "other.pt") == 1
    assert "does NOT match" in capsys.readouterr().out
    assert run("decompress", tmp_path / "x.mrc", tmp_path / "y.png", "--ckpt", root / "codec.pt", "--beta", "9") == 2
    assert "outside" in capsys.readouterr().err
    assert not (tmp_path / "y.png").exists()


def test_rgba_input_policy(run, files, tmp_path, capsys):
    root, _ = files
    rgba = np.zeros((20, 30, 4), np.uint8)
    rgba[..., 3] = 128
    Image.fromarray(rgba).save(tmp_path / "a.png")
    assert run("compress", tmp_path / "a.png", tmp_path / "a.mrc", "--ckpt", root / "codec.pt", "--alpha", "error") == 1
    err = capsys.readouterr().err
    assert "transparent" in err and "--alpha drop" in err and "alpha='drop'" not in err  # the CLI's spelling
    assert run("compress", tmp_path / "a.png", tmp_path / "a.mrc", "--ckpt", root / "codec.pt") == 0
    lines = capsys.readouterr().err.splitlines()  # a plain line, not a Python warning record
    assert len(lines) == 1 and lines[0].startswith("multirealism compress: warning:") and "dropped" in lines[0]
