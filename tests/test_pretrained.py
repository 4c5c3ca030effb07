"""The model shipped in the package: it loads, codes a real photograph as well as when it was released,
and the command line uses it when no checkpoint is named."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from helpers import make_tiny_codec, natural_image
from PIL import Image

from multirealism import MultiRealismCodec, create_codec, list_pretrained
from multirealism.checkpoint import shipped_weights
from multirealism.weights import SHIPPED_DIR
from multirealism.cli.main import main
from multirealism.errors import CheckpointError
from multirealism.evaluation.metrics import psnr
from multirealism.imageio import to_pil
from multirealism.zoo import default_pretrained, find_pretrained, pretrained_info

DEFAULT_MODEL = default_pretrained()

#: per shipped model, (quality, β) -> (bytes, PSNR dB) on the 128x128 centre crop of scikit-image's
#: coffee, measured when the weights were committed. A broken weight file or a silent change to the
#: architecture or the coder moves these.
REFERENCE = {
    "medium": {
        (0.0, 0.0): (263, 26.025),
        (0.0, 5.12): (263, 25.603),
        (11.0, 0.0): (1403, 30.631),
        (11.0, 5.12): (1403, 29.300),
    },
}


@pytest.fixture(scope="module")
def codec() -> MultiRealismCodec:
    return MultiRealismCodec.pretrained()


def test_the_default_model_is_listed_and_matches_its_entry(codec) -> None:
    assert DEFAULT_MODEL in list_pretrained()
    assert codec.fingerprint.hex() == pretrained_info(DEFAULT_MODEL)["fingerprint"]
    assert find_pretrained(codec.fingerprint) == DEFAULT_MODEL
    assert codec.num_levels == 12 and codec.beta_max == 5.12
    assert sorted(REFERENCE) == list_pretrained()  # every shipped model has its reference
    # one full weight file (convolution kernels in float16), no delta chain, 20 MiB at most
    files = sorted(p.name for p in SHIPPED_DIR.glob("*.safetensors"))
    assert files == sorted(pretrained_info(name)["file"] for name in list_pretrained()) and len(files) == 1
    assert sum(shipped_weights(name).stat().st_size for name in list_pretrained()) <= 20 * 2**20


def test_create_codec_builds_a_preset_fresh_or_with_its_shipped_weights(codec) -> None:
    fresh = create_codec(DEFAULT_MODEL)
    assert fresh.config() == codec.config() and fresh.fingerprint != codec.fingerprint
    assert create_codec(DEFAULT_MODEL, pretrained=True).fingerprint == codec.fingerprint
    with pytest.raises(ValueError, match="architecture is fixed"):
        create_codec(DEFAULT_MODEL, pretrained=True, num_levels=3)
    with pytest.raises(CheckpointError, match="no shipped weights for 'tiny'"):
        create_codec("tiny", pretrained=True)


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_round_trip_matches_the_committed_reference(name) -> None:
    model = MultiRealismCodec.pretrained(name)
    x = natural_image("coffee", 128).unsqueeze(0)
    for quality in sorted({quality for quality, _ in REFERENCE[name]}):  # the lowest and the highest level
        data = model.compress(x, quality=quality)
        images = model.decompress(data, beta=[0.0, 5.12])
        for beta, image in zip((0.0, 5.12), images):
            size, reference = REFERENCE[name][(quality, beta)]
            assert len(data) == pytest.approx(size, rel=0.01), (quality, beta)
            assert psnr(image, x) == pytest.approx(reference, abs=0.02), (quality, beta)


def test_beta_trades_distortion_for_detail_in_the_default_model(codec) -> None:
    """One bitstream, two decodings: β = 5.12 moves away from the β = 0 reconstruction (lower PSNR)
    and adds high-frequency energy (the realism synthesis's texture), at both ends of the rate range."""
    x = natural_image("coffee", 128).unsqueeze(0)

    def detail(image):  # mean absolute Laplacian-like difference to the 4-neighbour average
        centre = image[..., 1:-1, 1:-1]
        around = (image[..., :-2, 1:-1] + image[..., 2:, 1:-1] + image[..., 1:-1, :-2] + image[..., 1:-1, 2:]) / 4
        return float((centre - around).abs().mean())

    for quality in (0.0, codec.num_levels - 1.0):
        low, high = codec.decompress(codec.compress(x, quality=quality), beta=[0.0, 5.12])
        # measured: 3.51 / 3.77 at levels 0 / 11
        assert float((low - high).abs().mean()) * 255 > 2.0, quality
        assert psnr(high, x) < psnr(low, x) - 0.1, quality  # measured: 0.42 dB at level 0, 1.33 at level 11
        assert detail(high) > 1.2 * detail(low), quality  # measured: 1.54 / 1.33 at levels 0 / 11


def test_unknown_and_damaged_models_are_refused(codec, tmp_path, monkeypatch) -> None:
    with pytest.raises(CheckpointError, match=f"no shipped model named 'nope'; shipped: {', '.join(list_pretrained())}"):
        MultiRealismCodec.pretrained("nope")
    shutil.copytree(SHIPPED_DIR, tmp_path / "weights")
    damaged = tmp_path / "weights" / pretrained_info(DEFAULT_MODEL)["file"]
    with open(damaged, "r+b") as handle:
        handle.seek(-100, 2)
        flipped = bytes(b ^ 0xFF for b in handle.read(4))  # the bytes there may already be zeros
        handle.seek(-100, 2)
        handle.write(flipped)
    monkeypatch.setattr("multirealism.weights.SHIPPED_DIR", tmp_path / "weights")
    with pytest.raises(CheckpointError, match="is damaged or replaced"):
        MultiRealismCodec.pretrained()
    damaged.unlink()
    with pytest.raises(CheckpointError, match="is not installed"):
        MultiRealismCodec.pretrained()


def test_the_command_line_uses_the_shipped_model_without_ckpt(tmp_path, capsys) -> None:
    image = tmp_path / "coffee.png"
    to_pil(natural_image("coffee", 64)).save(image)
    bitstream = tmp_path / "coffee.mrc"
    assert main(["compress", str(image), str(bitstream), "--quality", "1"]) == 0
    assert main(["info", str(bitstream)]) == 0
    assert f"shipped model:  {DEFAULT_MODEL}" in capsys.readouterr().out
    assert main(["decompress", str(bitstream), str(tmp_path / "out.png"), "--beta", "5.12"]) == 0
    assert Image.open(tmp_path / "out.png").size == (64, 64)
    capsys.readouterr()
    assert main(["models"]) == 0
    listing = capsys.readouterr().out.strip().splitlines()
    assert 1 <= len(listing) <= 6 and listing[0].startswith(f"{DEFAULT_MODEL} (default): 12 levels, 0.108-0.854 bpp")
    assert "beta 0-5.12" in listing[0] and "M parameters" in listing[0]


def test_a_bitstream_of_another_model_asks_for_its_checkpoint(tmp_path, capsys) -> None:
    other = make_tiny_codec().eval()
    bitstream = tmp_path / "other.mrc"
    bitstream.write_bytes(other.compress(natural_image("coffee", 32).unsqueeze(0)))
    assert main(["info", str(bitstream)]) == 0
    assert "shipped model:  none (pass --ckpt" in capsys.readouterr().out
    assert main(["decompress", str(bitstream), str(tmp_path / "out.png")]) == 1
    err = capsys.readouterr().err
    assert "which is not a shipped model; pass --ckpt" in err and "\n" not in err.strip()


def test_export_writes_the_inference_weights_of_a_checkpoint(codec, tmp_path, capsys) -> None:
    source = tmp_path / "source.pt"
    codec.save(source)
    out = tmp_path / "exported.safetensors"
    assert main(["export", str(source), str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"fingerprint: {codec.fingerprint.hex()}" in printed
    exported = MultiRealismCodec.from_checkpoint(out)
    assert exported.fingerprint == codec.fingerprint and exported.objective == codec.objective
    assert main(["export", str(source), str(out)]) == 1  # no overwrite without --force
    assert "already exists" in capsys.readouterr().err


def test_export_half_stores_kernels_in_float16_and_codes_as_before(codec, tmp_path, capsys) -> None:
    """--half: the kernels in float16, the rest in float32; the printed fingerprint is the loaded model's, and
    it codes the photograph as the full-precision model does (the rounding moves PSNR by hundredths of a dB).
    The shipped model was exported so: halving it again changes nothing."""
    from safetensors import safe_open

    shipped = tmp_path / "shipped.safetensors"
    assert main(["export", "--half", str(shipped_weights(DEFAULT_MODEL)), str(shipped)]) == 0
    assert MultiRealismCodec.from_checkpoint(shipped).fingerprint == codec.fingerprint
    torch.manual_seed(0)
    fresh = create_codec("small").eval()  # full precision, random weights
    source, full, half = tmp_path / "source.pt", tmp_path / "full.safetensors", tmp_path / "half.safetensors"
    fresh.save(source)
    assert main(["export", str(source), str(full)]) == 0
    capsys.readouterr()
    assert main(["export", "--half", str(source), str(half)]) == 0
    printed = capsys.readouterr().out
    loaded = MultiRealismCodec.from_checkpoint(half)
    assert f"fingerprint: {loaded.fingerprint.hex()}" in printed and loaded.fingerprint != fresh.fingerprint
    with safe_open(str(half), framework="pt") as handle:
        dtypes = {name: handle.get_slice(name).get_dtype() for name in handle.keys()}
    kernels = {name for name, tensor in fresh.state_dict().items() if tensor.is_floating_point() and tensor.dim() == 4}
    assert kernels and all(dtypes[name] == "F16" for name in kernels)
    assert all(dtype != "F16" for name, dtype in dtypes.items() if name not in kernels)
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    assert half.stat().st_size < 0.6 * full.stat().st_size
    x = natural_image("coffee", 128).unsqueeze(0)
    data_full, data_half = fresh.compress(x, quality=0.0), loaded.compress(x, quality=0.0)
    assert len(data_half) == pytest.approx(len(data_full), rel=0.02)
    pairs = zip(fresh.decompress(data_full, beta=[0.0, 5.12]), loaded.decompress(data_half, beta=[0.0, 5.12]))
    for full_image, half_image in pairs:
        assert float(psnr(half_image, x)) == pytest.approx(float(psnr(full_image, x)), abs=0.05)


def test_evaluate_measures_the_shipped_model_without_ckpt(tmp_path, capsys) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    to_pil(natural_image("astronaut", 64)).save(folder / "a.png")
    argv = ["evaluate", "--data", str(folder), "--out", str(tmp_path / "out"), "--betas", "0", "5.12",
            "--model-qualities", "0", "5", "--perceptual", "stlpips-vgg", "--fid-extractor", "none",
            "--no-progress", "--no-viewer"]
    assert main(argv) == 0
    assert DEFAULT_MODEL in capsys.readouterr().out
    summary = (tmp_path / "out" / "summary.csv").read_text()
    assert summary.count(DEFAULT_MODEL) == 4  # 2 qualities x 2 β


def test_the_codec_module_imports_neither_the_zoo_nor_the_refinement() -> None:
    """The codec is the model; the zoo, loading and latent refinement import it, not the other way round."""
    import ast

    import multirealism.codec

    tree = ast.parse(Path(multirealism.codec.__file__).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert "multirealism.codec" not in imported
    assert not imported & {"multirealism.zoo", "multirealism.latent_refinement"}
