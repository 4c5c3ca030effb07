"""Untrusted checkpoints: loading never runs code, and every bad file ends in CheckpointError."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch
from PIL import Image

from helpers import make_tiny_codec
from multirealism import MultiRealismCodec
from multirealism.checkpoint import CONFIG_KEY
from multirealism.errors import CheckpointError


class _Exploit:
    """Unpickling this would run ``touch MARKER`` (via os.system)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def _assert_refused(path, marker) -> None:
    with pytest.raises(CheckpointError):
        MultiRealismCodec.from_checkpoint(path)
    assert not marker.exists(), "loading the checkpoint ran code"


def test_crafted_pickle_in_a_torch_file_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    codec = make_tiny_codec()
    payload = {
        CONFIG_KEY: {"config": codec.config()},
        "state_dict": codec.state_dict(),
        "evil": _Exploit(str(marker)),
    }
    torch.save(payload, tmp_path / "evil.ckpt")
    _assert_refused(tmp_path / "evil.ckpt", marker)


def test_crafted_raw_pickle_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    (tmp_path / "evil.pt").write_bytes(pickle.dumps(_Exploit(str(marker))))
    _assert_refused(tmp_path / "evil.pt", marker)
    pickle.loads((tmp_path / "evil.pt").read_bytes())  # the payload is live: plain pickle runs it
    assert marker.exists()


def test_crafted_lightning_style_checkpoint_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    codec = make_tiny_codec()
    checkpoint = {
        "state_dict": {f"codec.{k}": v for k, v in codec.state_dict().items()},
        CONFIG_KEY: {"config": codec.config()},
        "callbacks": {"x": _Exploit(str(marker))},
    }
    torch.save(checkpoint, tmp_path / "last.ckpt")
    _assert_refused(tmp_path / "last.ckpt", marker)
    del checkpoint["callbacks"]
    torch.save(checkpoint, tmp_path / "clean.ckpt")
    loaded = MultiRealismCodec.from_checkpoint(tmp_path / "clean.ckpt")
    assert loaded.fingerprint == codec.fingerprint


def test_bad_files_give_checkpoint_errors(tmp_path):
    from safetensors.torch import save

    codec = make_tiny_codec()
    state = {k: v.contiguous() for k, v in codec.state_dict().items()}
    cases = {
        "missing.pt": None,
        "text.pt": b"hello",
        "list.pt": [torch.zeros(1)],
        "noconfig.pt": {"state_dict": state},
        "mixed.pt": {"state_dict": {"a": 1}},
        "bad.safetensors": b"\x00" * 16,
        "badjson.safetensors": save(state, metadata={CONFIG_KEY: "{not json"}),
        "unknown.safetensors": save(state, metadata={CONFIG_KEY: json.dumps({"encoder": "nope"})}),
        "shapes.pt": {CONFIG_KEY: {"config": make_tiny_codec("charm").config()}, "state_dict": state},
    }
    for name, content in cases.items():
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        elif content is not None:
            torch.save(content, path)
        with pytest.raises(CheckpointError):
            MultiRealismCodec.from_checkpoint(path)


def test_config_claiming_huge_widths_is_refused_before_allocating(tmp_path):
    """Tiny weights under a config that claims a 2048-wide generator (211 M parameters, 0.84 GB to
    allocate): compared on the meta device first, so the error comes at no memory cost."""
    import resource

    codec = make_tiny_codec()
    config = codec.config()
    config["generator"]["args"]["channels"] = 2048
    path = tmp_path / "huge.pt"
    torch.save({CONFIG_KEY: {"config": config}, "state_dict": codec.state_dict()}, path)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(CheckpointError, match=r"(?s)do not match.*generator"):
        MultiRealismCodec.from_checkpoint(path)
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mib < 100


def test_weights_of_another_architecture_name_what_differs(tmp_path):
    codec = make_tiny_codec()
    state = codec.state_dict()
    state.pop(next(k for k in state if k.startswith("encoder.")))
    state["encoder.extra.weight"] = torch.zeros(1)
    path = tmp_path / "other.pt"
    torch.save({CONFIG_KEY: {"config": codec.config()}, "state_dict": state}, path)
    with pytest.raises(CheckpointError, match=r"missing: encoder\..*unexpected: encoder\.extra\.weight"):
        MultiRealismCodec.from_checkpoint(path)


@pytest.mark.timeout(60)  # a no-hang guard, not a speed target: the refusal takes milliseconds
def test_config_claiming_huge_depth_is_refused_quickly(tmp_path):
    """A million blocks per stage would take minutes and gigabytes of module objects to build, even on
    the meta device: the build stops once it registers more modules than the weights could belong to."""
    codec = make_tiny_codec()
    config = codec.config()
    config["encoder"]["args"]["blocks_per_stage"] = 1_000_000
    path = tmp_path / "deep.pt"
    torch.save({CONFIG_KEY: {"config": config}, "state_dict": codec.state_dict()}, path)
    with pytest.raises(CheckpointError, match="more than .* modules"):
        MultiRealismCodec.from_checkpoint(path)


def test_metadata_config_nested_100000_deep_is_one_line_on_the_command_line(tmp_path, capsys):
    from safetensors.torch import save_file

    from multirealism.cli.main import main

    deep = "[" * 100_000 + "]" * 100_000
    save_file(make_tiny_codec().state_dict(), str(tmp_path / "deep.safetensors"), metadata={CONFIG_KEY: deep})
    with pytest.raises(CheckpointError, match="nested too deeply"):
        MultiRealismCodec.from_checkpoint(tmp_path / "deep.safetensors")
    Image.new("RGB", (8, 8)).save(tmp_path / "in.png")
    for argv in (["compress", tmp_path / "in.png", tmp_path / "x.mrc", "--ckpt", tmp_path / "deep.safetensors"],
                 ["export", tmp_path / "deep.safetensors", tmp_path / "out.safetensors"]):
        assert main([str(a) for a in argv]) == 1
        assert len(capsys.readouterr().err.strip().splitlines()) == 1


def _lightning_style(path, codec, objective) -> None:
    state = {f"codec.{k}": v for k, v in codec.state_dict().items()}
    torch.save({CONFIG_KEY: {"config": codec.config(), "objective": objective}, "state_dict": state}, path)


@pytest.mark.parametrize("objective, message", [
    ({"lambdas": [0.1, 0.2]}, "2 λ values for a model of 3 rate levels"),
    ({"lambdas": [0.1, 0.2, 0.3], "perceptual": "bogus", "perceptual_weight": 1.0}, "'bogus' is not a known"),
    ({"lambdas": [0.1, 0.2, 0.3], "lpips_weight": 1.0}, "unknown objective field"),
])
def test_a_training_objective_that_does_not_fit_the_model_is_refused(tmp_path, objective, message):
    from helpers import small_rate_codec_config

    torch.manual_seed(0)
    codec = MultiRealismCodec.from_config(small_rate_codec_config("residual_cond", num_levels=3))
    _lightning_style(tmp_path / "run.ckpt", codec, objective)
    with pytest.raises(CheckpointError, match=message):
        MultiRealismCodec.from_checkpoint(tmp_path / "run.ckpt")


def test_fit_refuses_a_bad_resume_or_init_checkpoint_in_one_line(tmp_path, capsys):
    """A pickle that would run code, a truncated file and NaN weights: one line, exit 1, nothing run."""
    from multirealism.cli.main import main

    marker = tmp_path / "pwned"
    torch.save({"state_dict": {"codec.w": torch.zeros(1)}, "x": _Exploit(str(marker))}, tmp_path / "evil.ckpt")
    good = tmp_path / "good.ckpt"
    torch.save({"state_dict": {"codec.w": torch.zeros(1000)}}, good)
    (tmp_path / "cut.ckpt").write_bytes(good.read_bytes()[:600])
    torch.save({"state_dict": {"codec.w": torch.tensor([float("nan")])}, "global_step": 3}, tmp_path / "nan.ckpt")
    tiny = Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml"
    config = ["--config", str(tiny), "--trainer.max_steps=1", "--trainer.logger=false"]
    for name, reason in (("evil", "could run code"), ("cut", "not a torch checkpoint"), ("nan", "NaN")):
        for option in ("--ckpt_path", "--model.init.checkpoint"):
            if option == "--model.init.checkpoint" and name == "nan":
                continue  # its NaN refusal is the loader's (test below); fit would start the run
            assert main(["fit", *config, option, str(tmp_path / f"{name}.ckpt")]) == 1
            err = capsys.readouterr().err.strip().splitlines()
            assert err[-1].startswith("multirealism fit: error:") and reason in err[-1]
            assert not any("Traceback" in line for line in err)
    assert not marker.exists()


def test_init_weights_with_nan_are_refused_by_the_loader(tmp_path):
    from multirealism.checkpoint import load_weights

    torch.save({"state_dict": {"codec.w": torch.tensor([1.0, float("inf")])}}, tmp_path / "inf.ckpt")
    with pytest.raises(CheckpointError, match="NaN or infinite"):
        load_weights(tmp_path / "inf.ckpt")
