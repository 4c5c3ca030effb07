"""examples/readme_figures.py on the committed fitted rate-control codec: one small image, JPEG only."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from compact_codec import load_compact
from helpers import natural_image
from multirealism.evaluation.plots import CROP_LABEL_PX, crop_grid
from multirealism.imageio import to_pil

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "tests" / "data" / "fitted_tiny_rate_control.safetensors.gz"


def _script():
    spec = importlib.util.spec_from_file_location("readme_figures", ROOT / "examples" / "readme_figures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_figures_from_a_rate_controlled_checkpoint(tmp_path, capsys) -> None:
    codec = load_compact(MODEL)
    ckpt = tmp_path / "rc.safetensors"
    codec.save(ckpt)
    folder = tmp_path / "images"
    folder.mkdir()
    to_pil(natural_image("chelsea", 96)).save(folder / "chelsea.png")
    out = tmp_path / "figures"
    script = _script()
    argv = ["--ckpt", str(ckpt), "--data", str(folder), "--out", str(out), "--crop", "64",
            "--baselines", "jpeg", "--baseline-qualities", "10", "50", "90"]

    assert script.main(argv) == 0
    assert script.main(argv + ["--out", str(tmp_path / "again")]) == 0  # deterministic: same files
    for name in ("crops.png", "figures.json", "rate_psnr.csv"):
        assert (out / name).read_bytes() == (tmp_path / "again" / name).read_bytes()
    with Image.open(out / "crops.png") as crops:  # original, β=0, β_max; one image
        assert crops.size == (3 * 64, 64 + CROP_LABEL_PX)
    matched = tmp_path / "matched"
    assert script.main(argv + ["--out", str(matched), "--crop-baselines", "jpeg"]) == 0
    with Image.open(matched / "crops.png") as crops:  # original, JPEG at the model's file size, β=0, β_max
        assert crops.size == (4 * 64, 64 + CROP_LABEL_PX)
    with Image.open(out / "rate_psnr.png") as plot:
        assert plot.format == "PNG" and plot.width > plot.height > 200
    numbers = json.loads((out / "figures.json").read_text())
    assert numbers["betas"] == [0.0, codec.beta_max] and numbers["qualities"] == [codec.num_levels // 2]

    curves = {}
    for point in numbers["rate_psnr"]:
        curves.setdefault(point["series"], []).append(point)
    assert sorted(curves) == ["jpeg", "multirealism β=0", f"multirealism β={codec.beta_max:g}"]
    zero, top = (sorted(curves[f"multirealism β={b:g}"], key=lambda p: p["quality"]) for b in (0, codec.beta_max))
    assert [p["quality"] for p in zero] == [float(q) for q in range(codec.num_levels)]
    rates = [p["bpp"] for p in zero]
    assert all(a < b for a, b in zip(rates, rates[1:]))
    assert [p["bpp"] for p in top] == rates  # one bitstream per quality, decoded at both β
    assert all(p["psnr"] != q["psnr"] for p, q in zip(zero, top))
    assert len(curves["jpeg"]) == 3
    assert len((out / "rate_psnr.csv").read_text().splitlines()) == 1 + len(numbers["rate_psnr"])

    beta0, beta_max = numbers["crops"]
    assert beta0["bpp"] == beta_max["bpp"] and beta0["psnr"] != beta_max["psnr"]
    crop_curve_point = next(p for p in zero if p["quality"] == numbers["qualities"][0])
    assert beta0["bpp"] == crop_curve_point["bpp"]  # the crops are the curve's middle point

    two = tmp_path / "two"  # the two lowest levels: one row each, the lower first
    assert script.main(argv + ["--out", str(two), "--quality", "0", "1", "--crop-images", "chelsea"]) == 0
    with Image.open(two / "crops.png") as crops:
        assert crops.size == (3 * 64, 2 * (64 + CROP_LABEL_PX))
    low, high = (json.loads((two / "figures.json").read_text())["crops"][i] for i in (0, 2))
    assert (low["quality"], high["quality"]) == (0.0, 1.0) and low["bpp"] < high["bpp"]
    assert script.main(argv + ["--out", str(two), "--crop-images", "coffee"]) == 2
    assert "--crop-images names an image not in --data (its images: chelsea.png)" in capsys.readouterr().err

    assert script.main(argv + ["--quality", str(codec.num_levels)]) == 2
    assert "outside [0," in capsys.readouterr().err
    assert script.main(argv + ["--crop", "128"]) == 2
    assert "chelsea.png is 96x96, smaller than --crop 128" in capsys.readouterr().err


def test_crop_grid_refuses_crops_of_different_sizes(tmp_path) -> None:
    rows = [[("a", torch.zeros(3, 8, 8)), ("b", torch.zeros(3, 8, 6))]]
    with pytest.raises(ValueError, match="crops of one size"):
        crop_grid(rows, str(tmp_path / "grid.png"))
    assert not (tmp_path / "grid.png").exists()
