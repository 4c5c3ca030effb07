"""Untrusted checkpoints: loading never runs code, and every bad file ends in CheckpointError."""

from __future__ import annotations

import json
import pickle

import pytest
import torch

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
