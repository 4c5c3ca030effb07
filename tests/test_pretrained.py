"""The model shipped in the package: it loads, codes a real photograph as well as when it was released,
and the command line uses it when no checkpoint is named."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from helpers import make_tiny_codec, natural_image
from PIL import Image

from multirealism import MultiRealismCodec, list_pretrained
from multirealism.cli.main import main
from multirealism.errors import CheckpointError
from multirealism.evaluation.metrics import psnr
from multirealism.imageio import to_pil
from multirealism.pretrained import DEFAULT_MODEL, find_pretrained, pretrained_info, weights_path

#: per shipped model, (quality, β) -> (bytes, PSNR dB) on the 128x128 centre crop of scikit-image's
#: coffee, measured when the weights were committed. A broken weight file or a silent change to the
#: architecture or the coder moves these.
REFERENCE = {
    "small-v1": {
        (0.0, 0.0): (515, 28.356),
        (0.0, 5.12): (515, 28.323),
        (5.0, 0.0): (1359, 30.098),
        (5.0, 5.12): (1359, 30.067),
    },
    "small-v2": {
        (0.0, 0.0): (455, 28.174),
        (0.0, 5.12): (455, 27.805),
        (5.0, 0.0): (1287, 30.400),
        (5.0, 5.12): (1287, 29.682),
    },
    "small-v3": {
        (0.0, 0.0): (431, 28.543),
        (0.0, 5.12): (431, 28.290),
        (5.0, 0.0): (1235, 30.937),
        (5.0, 5.12): (1235, 30.497),
    },
    "small-v4": {  # small-v3's encoder and rates: β = 0 as small-v3's, β = 5.12 from its vgg-trained head
        (0.0, 0.0): (431, 28.543),
        (0.0, 5.12): (431, 28.207),
        (5.0, 0.0): (1235, 30.937),
        (5.0, 5.12): (1235, 30.130),
    },
    "small-v5": {  # small-v3's encoder and rates again; β = 5.12 from its level-scaled vgg head
        (0.0, 0.0): (431, 28.543),
        (0.0, 5.12): (431, 28.197),
        (5.0, 0.0): (1235, 30.937),
        (5.0, 5.12): (1235, 30.187),
    },
    "small-v6": {  # small-v5 with three lower levels: its level 0 is new, its level 8 is small-v5's level 5
        (0.0, 0.0): (203, 24.780),
        (0.0, 5.12): (203, 24.683),
        (8.0, 0.0): (1231, 30.940),
        (8.0, 5.12): (1231, 30.222),
    },
    "small-v7": {  # small-v6 with a gain per level on its head: a stronger β = 5.12 at level 0, a milder one at 8
        (0.0, 0.0): (203, 24.778),
        (0.0, 5.12): (203, 24.516),
        (8.0, 0.0): (1231, 30.939),
        (8.0, 5.12): (1231, 30.345),
    },
    "small-v8": {  # small-v7 with its head trained on beside the gate: the same rates and β = 0
        (0.0, 0.0): (203, 24.779),
        (0.0, 5.12): (203, 24.487),
        (8.0, 0.0): (1231, 30.939),
        (8.0, 5.12): (1231, 30.389),
    },
    "small-v9": {  # small-v7's head and gate retrained on a three-scale perceptual term: the same rates and β = 0
        (0.0, 0.0): (203, 24.778),
        (0.0, 5.12): (203, 24.455),
        (8.0, 0.0): (1231, 30.939),
        (8.0, 5.12): (1231, 30.656),
    },
}


@pytest.fixture(scope="module")
def codec() -> MultiRealismCodec:
    return MultiRealismCodec.pretrained()


def test_the_default_model_is_listed_and_matches_its_entry(codec) -> None:
    assert DEFAULT_MODEL in list_pretrained()
    assert codec.fingerprint.hex() == pretrained_info(DEFAULT_MODEL).fingerprint
    assert find_pretrained(codec.fingerprint) == DEFAULT_MODEL
    assert codec.num_levels == 9 and codec.beta_max == 5.12
    assert weights_path(DEFAULT_MODEL).stat().st_size <= 20 * 2**20
    assert sorted(REFERENCE) == list_pretrained()  # every shipped model has its reference


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
    and adds high-frequency energy (the realism head's detail), at both ends of the rate range."""
    x = natural_image("coffee", 128).unsqueeze(0)

    def detail(image):  # mean absolute Laplacian-like difference to the 4-neighbour average
        centre = image[..., 1:-1, 1:-1]
        around = (image[..., :-2, 1:-1] + image[..., 2:, 1:-1] + image[..., 1:-1, :-2] + image[..., 1:-1, 2:]) / 4
        return float((centre - around).abs().mean())

    for quality in (0.0, codec.num_levels - 1.0):
        low, high = codec.decompress(codec.compress(x, quality=quality), beta=[0.0, 5.12])
        # small-v9: 2.79 / 1.04 at levels 0 / 8 (its gate is milder at the top rate than small-v8's 1.43); small-v1: 0.49
        assert float((low - high).abs().mean()) * 255 > 0.75, quality
        assert psnr(high, x) < psnr(low, x) - 0.05, quality  # small-v9: 0.32 dB at level 0, 0.28 at level 8
        assert detail(high) > 1.1 * detail(low), quality  # small-v9: 2.27 / 1.20 at levels 0 / 8; small-v1: 1.02


def test_unknown_and_damaged_models_are_refused(codec, tmp_path, monkeypatch) -> None:
    with pytest.raises(CheckpointError, match=f"no shipped model named 'nope'; shipped: {', '.join(list_pretrained())}"):
        MultiRealismCodec.pretrained("nope")
    (tmp_path / "weights").mkdir()
    base = pretrained_info(DEFAULT_MODEL).base
    while base is not None:  # a model shipped as a delta loads its base's file first (and that one's base)
        shutil.copy(weights_path(base), tmp_path / "weights" / pretrained_info(base).filename)
        base = pretrained_info(base).base
    damaged = tmp_path / "weights" / pretrained_info(DEFAULT_MODEL).filename
    shutil.copy(weights_path(DEFAULT_MODEL), damaged)
    with open(damaged, "r+b") as handle:
        handle.seek(-100, 2)
        flipped = bytes(b ^ 0xFF for b in handle.read(4))  # the bytes there may already be zeros
        handle.seek(-100, 2)
        handle.write(flipped)
    monkeypatch.setattr("multirealism.pretrained.resources.files", lambda package: tmp_path)
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
    assert main(["models"]) == 0
    assert f"{DEFAULT_MODEL} (default)" in capsys.readouterr().out


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
    assert MultiRealismCodec.from_checkpoint(out).fingerprint == codec.fingerprint
    assert main(["export", str(source), str(out)]) == 1  # no overwrite without --force
    assert "already exists" in capsys.readouterr().err


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


def exported_on_small_v3(model: MultiRealismCodec, tmp_path: Path, capsys) -> "tuple[Path, str]":
    """``model`` saved and written by ``export --base small-v3``: the delta file and what the command printed."""
    source = tmp_path / "model.pt"
    model.save(source)
    out = tmp_path / "delta.safetensors"
    assert main(["export", str(source), str(out), "--base", "small-v3"]) == 0
    return out, capsys.readouterr().out


def test_a_model_shipped_as_a_delta_on_its_base(tmp_path, capsys) -> None:
    """small-v4's file holds only what differs from small-v3's; ``export --base`` writes such a file from a
    checkpoint, and the base plus that file is the model (same fingerprint). A delta for another
    architecture is refused by name."""
    from multirealism.checkpoint import load_weights
    from multirealism.pretrained import apply_delta

    v4 = MultiRealismCodec.pretrained("small-v4")
    shipped = load_weights(weights_path("small-v4"))[1]
    assert 0 < len(shipped) < len(v4.state_dict()) // 4 and all(k.startswith(("generator.refiner.", "entropy_model."))
                                                               for k in shipped)
    assert weights_path("small-v4").stat().st_size < weights_path("small-v3").stat().st_size // 20
    out, printed = exported_on_small_v3(v4, tmp_path, capsys)
    assert f"fingerprint: {v4.fingerprint.hex()}" in printed
    assert sorted(load_weights(out)[1]) == sorted(shipped)
    rebuilt = MultiRealismCodec.pretrained("small-v3")
    rebuilt = apply_delta(rebuilt, out, "test")
    assert rebuilt.fingerprint == v4.fingerprint
    other = tmp_path / "tiny.safetensors"
    make_tiny_codec().save(other)
    with pytest.raises(CheckpointError, match="another architecture than its base"):
        apply_delta(MultiRealismCodec.pretrained("small-v3"), other, "test")
    assert main(["export", str(other), str(tmp_path / "x.safetensors"), "--base", "small-v3"]) == 1
    assert "--base small-v3: the checkpoint's architecture is not the base model's" in capsys.readouterr().err


def test_a_delta_with_some_of_the_coder_tables_loads() -> None:
    """small-v9's hyper-latent quantiles differ from small-v8's, but not by enough to move the tables' offsets,
    so its file holds the CDFs and lengths and not the offsets: those come from the base (CompressAI's loader
    once raised KeyError on the missing buffer)."""
    from multirealism.checkpoint import load_weights

    stored = [k.rsplit(".", 1)[1] for k in load_weights(weights_path("small-v9"))[1] if ".entropy_bottleneck." in k]
    assert "_quantized_cdf" in stored and "_offset" not in stored
    ours, base = (MultiRealismCodec.pretrained(name).entropy_model.state_dict() for name in ("small-v9", "small-v8"))
    offsets = [k for k in ours if k.endswith("entropy_bottleneck._offset")]
    assert offsets and all(torch.equal(ours[k], base[k]) for k in offsets)


def test_a_delta_model_is_put_on_the_requested_device(monkeypatch) -> None:
    """small-v6 and later have their own architecture (more rate levels), so the delta loader builds them
    afresh; ``map_location`` must still place the model returned (once a CUDA run got a CPU model here).
    CI has no GPU: the test records where the returned codec was last moved."""
    moved = {}
    original = MultiRealismCodec.to

    def recording_to(self, *args, **kwargs):
        moved[id(self)] = args[0] if args else kwargs.get("device")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(MultiRealismCodec, "to", recording_to)
    codec = MultiRealismCodec.pretrained(DEFAULT_MODEL, map_location="cpu")
    assert pretrained_info(DEFAULT_MODEL).base is not None
    assert moved.get(id(codec)) == "cpu"


def test_a_delta_may_give_its_base_more_rate_levels(tmp_path, capsys) -> None:
    """A model with more rate levels than its base ships as a delta too: its file holds the config and the
    rate control (new shape) and the loader builds the new architecture, taking the other tensors from the base.
    A file that leaves a reshaped tensor to the base is refused by name."""
    from multirealism.checkpoint import load_weights, save_weights
    from multirealism.components.rate_control import extrapolate_levels
    from multirealism.pretrained import apply_delta

    base = MultiRealismCodec.pretrained("small-v3")
    config = base.config()
    config["rate_control"]["args"]["num_levels"] = 8
    wider = MultiRealismCodec.from_config(config)
    state = {k: extrapolate_levels(v, below=2) if k.startswith("rate_control.") else v for k, v in base.state_dict().items()}
    wider.load_state_dict(state)
    wider.update(force=True)
    out, _ = exported_on_small_v3(wider, tmp_path, capsys)
    assert {k for k in load_weights(out)[1] if not k.startswith("entropy_model.")} == {
        "rate_control.log_gain", "rate_control.log_inverse_gain"}
    rebuilt = apply_delta(MultiRealismCodec.pretrained("small-v3"), out, "test")
    assert rebuilt.num_levels == 8 and rebuilt.fingerprint == wider.fingerprint
    x = natural_image("coffee", 64).unsqueeze(0)
    data = rebuilt.compress(x, quality=2)  # the base's lowest level, now level 2
    assert len(data) == len(base.compress(x, quality=0))
    assert torch.equal(rebuilt.decompress(data, 5.12), base.decompress(base.compress(x, quality=0), 5.12))
    assert len(rebuilt.compress(x, quality=0)) < len(data)
    partial = tmp_path / "partial.safetensors"
    save_weights(partial, config, {k: v for k, v in wider.state_dict().items() if k.startswith("generator.refiner.")})
    with pytest.raises(CheckpointError, match="lacks tensors that its base model lacks or has in another shape: .*rate_control"):
        apply_delta(MultiRealismCodec.pretrained("small-v3"), partial, "test")


def test_a_delta_may_give_its_base_new_tensors(tmp_path, capsys) -> None:
    """A model whose architecture adds tensors to its base's (a realism head that reads the rate) ships as a
    delta holding them; one that leaves a new tensor out is refused by name."""
    from multirealism.checkpoint import load_weights, save_weights
    from multirealism.pretrained import apply_delta

    base = MultiRealismCodec.pretrained("small-v3")
    config = base.config()
    config["generator"]["name"] = "residual_cond_rate_refined"
    aware = MultiRealismCodec.from_config(config)
    missing, unexpected = aware.load_state_dict(base.state_dict(), strict=False)
    assert missing and all(k.startswith("generator.refiner.from_rate.") for k in missing) and not unexpected
    aware.update(force=True)
    out, _ = exported_on_small_v3(aware, tmp_path, capsys)
    assert {k for k in load_weights(out)[1] if not k.startswith("entropy_model.")} == set(missing)
    rebuilt = apply_delta(MultiRealismCodec.pretrained("small-v3"), out, "test")
    assert rebuilt.generator.reads_rate and rebuilt.fingerprint == aware.fingerprint
    partial = tmp_path / "partial.safetensors"
    save_weights(partial, config, {k: v for k, v in aware.state_dict().items() if k.startswith("entropy_model.")})
    with pytest.raises(CheckpointError, match="lacks tensors that its base model lacks .*from_rate"):
        apply_delta(MultiRealismCodec.pretrained("small-v3"), partial, "test")
