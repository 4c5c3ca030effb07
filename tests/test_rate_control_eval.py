"""``multirealism evaluate`` on one rate-controlled checkpoint: a rate curve and a BD-rate per β."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from compact_codec import load_compact
from helpers import natural_image
from multirealism.cli.main import main
from multirealism.evaluation.baselines import to_pil

MODEL = Path(__file__).parent / "data" / "fitted_tiny_rate_control.safetensors.gz"


@pytest.fixture
def setup(tmp_path):
    ckpt = tmp_path / "rc.safetensors"
    load_compact(MODEL).save(ckpt)
    folder = tmp_path / "images"
    folder.mkdir()
    to_pil(natural_image("rocket", 256)).save(folder / "a.png")
    to_pil(natural_image("chelsea", 256)).save(folder / "b.png")
    return ckpt, folder, tmp_path / "results"


def evaluate(ckpt, folder, out, *extra):
    return main(["evaluate", "--ckpt", str(ckpt), "--data", str(folder), "--betas", "0", "5.12", "--out", str(out),
                 "--baselines", "jpeg", "--qualities", "3", "5", "8", "12", "--fid-extractor", "none",
                 "--no-progress", *extra])


def test_one_checkpoint_gives_a_curve_and_bd_rate_per_beta(setup, capsys):
    ckpt, folder, out = setup
    assert evaluate(ckpt, folder, out) == 0
    assert "BD-rate (PSNR, pchip) against jpeg" in capsys.readouterr().out
    with open(out / "summary.csv") as handle:
        learned = [row for row in csv.DictReader(handle) if row["codec"] == "multirealism"]
    assert sorted((float(r["beta"]), float(r["quality"])) for r in learned) == [
        (b, q) for b in (0.0, 5.12) for q in (0.0, 1.0, 2.0)
    ]
    for beta in (0.0, 5.12):
        rates = [float(r["bpp"]) for r in sorted(learned, key=lambda r: float(r["quality"])) if float(r["beta"]) == beta]
        assert rates == sorted(rates) and rates[0] < rates[-1]
    with open(out / "results.json") as handle:
        table = {entry["series"]: entry for entry in json.load(handle)["bd_rate"]}
    for beta in ("0", "5.12"):
        assert isinstance(table[f"multirealism β={beta}"]["bd_rate"], float)


def test_chosen_qualities_and_bad_ones(setup, capsys):
    ckpt, folder, out = setup
    assert evaluate(ckpt, folder, out, "--model-qualities", "0.5", "1.5") == 0
    with open(out / "rows.csv") as handle:
        qualities = {row["quality"] for row in csv.DictReader(handle) if row["codec"] == "multirealism"}
    assert qualities == {"0.5", "1.5"}
    assert evaluate(ckpt, folder, out, "--model-qualities", "3") == 2
    assert "outside [0, 2]" in capsys.readouterr().err
