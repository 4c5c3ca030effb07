"""ST-LPIPS (stlpips-pytorch) as an offline perceptual backend: loading, behaviour, labels."""

import csv
import json
import socket
import sys
from pathlib import Path

import pytest
import torch
from helpers import natural_image

from multirealism.cli.main import build_parser, main
from multirealism.evaluation.baselines import to_pil
from multirealism.evaluation.metrics import LPIPSMetric
from multirealism.cli.lightning_commands import run_lightning_cli
from multirealism.training.perceptual import PerceptualWeightsError, build_perceptual

pytest.importorskip("stlpips_pytorch")
CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _no_network(*args, **kwargs):
    raise AssertionError("network access attempted")


@pytest.fixture(scope="module")
def stlpips_alex():
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", _no_network)
        patch.setattr(socket, "create_connection", _no_network)
        return build_perceptual("stlpips-alex")


def test_loads_every_tensor_from_the_wheel_without_network(stlpips_alex):
    import stlpips_pytorch

    path = Path(stlpips_pytorch.__file__).parent / "weights" / "vST0.0" / "alex_shift_tolerant.pth"
    shipped = torch.load(path, map_location="cpu", weights_only=True)
    own = stlpips_alex.lpips.state_dict()
    for key, value in shipped.items():
        assert torch.equal(own[key], value), key
    assert {k for k in own if k not in shipped} == {k for k in own if k.startswith("lins.")}  # aliases of lin0..4
    assert stlpips_alex.label == "ST-LPIPS (alex)"
    assert stlpips_alex.key == "st_lpips"  # training logs never call it "lpips"
    assert not any(p.requires_grad for p in stlpips_alex.parameters())


def test_zero_on_identical_and_grows_with_noise(stlpips_alex):
    image = natural_image("astronaut", 64).unsqueeze(0)
    generator = torch.Generator().manual_seed(0)
    noise = torch.randn(image.shape, generator=generator)
    distances = [float(stlpips_alex((image + s * noise).clamp(0, 1), image)) for s in (0.0, 0.02, 0.08, 0.2)]
    assert distances[0] == pytest.approx(0.0, abs=1e-6)
    assert distances == sorted(distances) and distances[1] > 1e-4


def test_gradients_reach_the_input_and_spatial_map_has_image_size(stlpips_alex):
    image = natural_image("coffee", 48).unsqueeze(0)
    x_hat = (image + 0.1 * torch.randn_like(image)).clamp(0, 1).requires_grad_(True)
    stlpips_alex(x_hat, image).sum().backward()
    assert x_hat.grad is not None and x_hat.grad.abs().sum() > 0
    assert stlpips_alex(x_hat.detach(), image, spatial=True).shape == (1, 1, 48, 48)


def test_missing_package_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "stlpips_pytorch", None)  # import now raises ImportError
    with pytest.raises(PerceptualWeightsError, match="pip install stlpips-pytorch"):
        build_perceptual("stlpips-alex")


def test_one_name_table_gives_training_names_evaluate_options_and_labels():
    with pytest.raises(ValueError, match=r"perceptual must be one of \('lpips-alex', 'stlpips-alex', 'stlpips-vgg', "
                       r"'wasserstein-vgg', 'lpips-random-test-only', 'none'\), got 'vgg'"):
        build_perceptual("vgg")
    assert build_perceptual("none") is None
    evaluate = build_parser("evaluate")._subparsers._group_actions[0].choices["evaluate"]
    offered = next(a.choices for a in evaluate._actions if a.dest == "perceptual")
    assert list(offered) == ["lpips-alex", "stlpips-alex", "stlpips-vgg"]  # the test-only backbone is not offered
    with pytest.warns(UserWarning, match="untrained"):
        assert build_perceptual("lpips-random-test-only").label == "LPIPS (random test backbone)"


def test_tiny_config_uses_stlpips_alex(capsys):
    with pytest.raises(SystemExit):
        run_lightning_cli(["fit", "--config", str(CONFIGS / "tiny.yaml"), "--print_config"])
    assert "perceptual: stlpips-alex" in capsys.readouterr().out


def test_metric_column_and_label_are_st_lpips():
    metric = LPIPSMetric(network="stlpips-alex")
    assert metric.column == "st_lpips_alex"
    assert metric.label.startswith("ST-LPIPS (alex)") and "not comparable with LPIPS" in metric.label
    with pytest.raises(ValueError, match="lpips-alex only"):
        LPIPSMetric(backbone="alexnet.pth", network="stlpips-alex")


def test_evaluate_names_the_column_st_lpips(tmp_path, capsys):
    folder = tmp_path / "images"
    folder.mkdir()
    to_pil(natural_image("astronaut", 64)).save(folder / "a.png")
    out = tmp_path / "results"
    argv = ["evaluate", "--data", str(folder), "--out", str(out), "--model", "none", "--baselines", "jpeg",
            "--qualities", "20", "90",
            "--fid-extractor", "none", "--no-progress", "--perceptual", "stlpips-alex"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "st_lpips_alex" in printed and "ST-LPIPS (alex)" in printed
    for name in ("rows.csv", "summary.csv"):
        with open(out / name) as handle:
            reader = csv.DictReader(handle)
            rows = list(reader)
        assert "st_lpips_alex" in reader.fieldnames and "lpips" not in reader.fieldnames
        low, high = sorted(rows, key=lambda r: int(r["quality"]))
        assert float(low["st_lpips_alex"]) > float(high["st_lpips_alex"]) > 0  # worse JPEG, larger distance
    document = json.loads((out / "results.json").read_text())
    assert document["metadata"]["st_lpips_alex"].startswith("ST-LPIPS (alex)")
    assert "lpips" not in document["metadata"] and "lpips" not in document["summary"][0]


def test_evaluate_refuses_lpips_weights_with_st_lpips(tmp_path, capsys):
    argv = ["evaluate", "--data", "samples", "--out", str(tmp_path), "--baselines", "jpeg",
            "--perceptual", "stlpips-alex", "--lpips-weights", str(tmp_path / "alexnet.pth")]
    assert main(argv) == 2
    assert "--lpips-weights is for --perceptual lpips-alex" in capsys.readouterr().err
