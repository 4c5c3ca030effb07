"""What a user of a Unix command line expects: --version, '-' for standard input and output, --json for
scripts, optional output names, several inputs per call, exit 2 for usage and 1 for failures, --time and
a progress bar for --refine."""

from __future__ import annotations

import io
import json

import pytest

from helpers import make_tiny_codec, natural_image
from multirealism import __version__
from multirealism.cli import main as cli_main
from multirealism.imageio import encode_png, load_image, save_image


def run(*argv) -> int:
    return cli_main.main([str(a) for a in argv])


class _Stream:
    """A text stream whose ``buffer`` is a BytesIO, like sys.stdin/sys.stdout, that is not a terminal."""

    def __init__(self, data: bytes = b"") -> None:
        self.buffer = io.BytesIO(data)

    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> int:  # print() to stdout still works
        return len(text)

    def flush(self) -> None:
        pass


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli_conventions")
    codec = make_tiny_codec("hyperprior", seed=3)
    codec.save(root / "codec.pt")
    save_image(natural_image("chelsea", 64)[:, :40, :48], root / "in.png")
    (root / "x.mrc").write_bytes(codec.compress(natural_image("chelsea", 64)[:, :40, :48]))
    return root, codec


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        run("--version")
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"multirealism {__version__}"


def test_compress_to_stdout_and_decompress_from_stdin_to_stdout(files, monkeypatch, capsys):
    root, codec = files
    ckpt = ("--ckpt", root / "codec.pt")
    stdout = _Stream()
    monkeypatch.setattr("sys.stdout", stdout)
    assert run("compress", root / "in.png", "-", *ckpt) == 0
    data = stdout.buffer.getvalue()
    assert data == codec.compress(load_image(root / "in.png"))
    assert "bytes" in capsys.readouterr().err  # the summary moves to stderr, stdout carries the data

    monkeypatch.setattr("sys.stdin", _Stream(data))
    stdout = _Stream()
    monkeypatch.setattr("sys.stdout", stdout)
    assert run("decompress", "-", "-", *ckpt, "--beta", "1") == 0
    assert stdout.buffer.getvalue() == encode_png(codec.decompress(data, beta=1.0))
    assert run("decompress", root / "x.mrc", "-", *ckpt, "--beta", "0", "--beta", "1") == 2
    assert "one --beta" in capsys.readouterr().err


def test_compress_from_stdin_and_decompress_from_stdin_to_a_file(files, tmp_path, monkeypatch):
    root, codec = files
    ckpt = ("--ckpt", root / "codec.pt")
    monkeypatch.setattr("sys.stdin", _Stream((root / "in.png").read_bytes()))
    assert run("compress", "-", tmp_path / "a.mrc", *ckpt) == 0
    assert (tmp_path / "a.mrc").read_bytes() == codec.compress(load_image(root / "in.png"))
    monkeypatch.setattr("sys.stdin", _Stream((tmp_path / "a.mrc").read_bytes()))
    assert run("decompress", "-", tmp_path / "a.png", *ckpt) == 0
    assert load_image(tmp_path / "a.png").shape == (3, 40, 48)


def test_binary_output_is_not_written_to_a_terminal(files, monkeypatch, capsys):
    root, _ = files
    terminal = _Stream()
    terminal.isatty = lambda: True
    monkeypatch.setattr("sys.stdout", terminal)
    assert run("compress", root / "in.png", "-", "--ckpt", root / "codec.pt") == 2
    assert "terminal" in capsys.readouterr().err and terminal.buffer.getvalue() == b""


def test_info_and_models_json(files, capsys):
    root, codec = files
    assert run("info", root / "x.mrc", "--json") == 0
    fields = json.loads(capsys.readouterr().out)
    assert fields["width"] == 48 and fields["height"] == 40 and fields["model"] == codec.fingerprint.hex()
    assert fields["bytes"] == (root / "x.mrc").stat().st_size and fields["shipped_model"] is None
    assert run("info", root / "x.mrc", "--json", "--ckpt", root / "codec.pt") == 0
    assert json.loads(capsys.readouterr().out)["checkpoint_matches"] is True
    assert run("models", "--json") == 0
    models = json.loads(capsys.readouterr().out)
    assert sum(m["default"] for m in models) == 1 and all(m["name"] and m["summary"] for m in models)


def test_outputs_named_after_inputs_and_several_inputs_per_call(files, tmp_path, capsys):
    root, codec = files
    ckpt = ("--ckpt", root / "codec.pt")
    for name in ("a.png", "b.png"):
        save_image(natural_image("coffee", 32), tmp_path / name)
    assert run("compress", tmp_path / "a.png", tmp_path / "b.png", *ckpt) == 0
    assert (tmp_path / "a.mrc").read_bytes() == codec.compress(load_image(tmp_path / "a.png"))
    assert (tmp_path / "b.mrc").is_file()
    (tmp_path / "a.png").unlink()
    (tmp_path / "b.png").unlink()
    assert run("decompress", tmp_path / "a.mrc", tmp_path / "b.mrc", *ckpt) == 0
    assert load_image(tmp_path / "a.png").shape == load_image(tmp_path / "b.png").shape == (3, 32, 32)
    (tmp_path / "b.png").unlink()
    assert run("decompress", tmp_path / "b.mrc", *ckpt) == 0  # one input, no output: b.png
    assert (tmp_path / "b.png").is_file()
    capsys.readouterr()
    assert run("compress", tmp_path / "a.png", tmp_path / "b.png", tmp_path / "c.mrc", *ckpt) == 2
    assert "leave it out" in capsys.readouterr().err and not (tmp_path / "c.mrc").exists()


@pytest.mark.parametrize("argv, code", [
    (["compress", "{root}/in.png", "{tmp}/x.mrc", "--ckpt", "{root}/codec.pt", "--quality", "3"], 2),
    (["compress", "{root}/in.png", "{tmp}/x.mrc", "--ckpt", "{root}/codec.pt", "--bogus"], 2),
    (["decompress", "{root}/x.mrc", "{tmp}/y.png", "--ckpt", "{root}/codec.pt", "--beta", "9"], 2),
    (["compress", "{root}/codec.pt", "{tmp}/x.mrc", "--ckpt", "{root}/codec.pt"], 1),  # not an image
    (["decompress", "{root}/in.png", "{tmp}/y.png", "--ckpt", "{root}/codec.pt"], 1),  # not a bitstream
    (["compress", "{root}/in.png", "{tmp}/x.mrc", "--ckpt", "{root}/in.png"], 1),  # not a checkpoint
    (["compress", "{root}/in.png", "{tmp}/none/x.mrc", "--ckpt", "{root}/codec.pt"], 1),  # I/O
])
def test_usage_errors_exit_2_and_failures_exit_1(files, tmp_path, capsys, argv, code):
    root, _ = files
    if "--bogus" in argv:
        with pytest.raises(SystemExit) as exit_info:
            run(*[a.format(root=root, tmp=tmp_path) for a in argv])
        assert exit_info.value.code == code
    else:
        assert run(*[a.format(root=root, tmp=tmp_path) for a in argv]) == code
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_time_prints_timing(files, tmp_path, capsys):
    root, _ = files
    assert run("compress", root / "in.png", tmp_path / "x.mrc", "--ckpt", root / "codec.pt", "--time") == 0
    err = capsys.readouterr().err
    assert "time: model load" in err and f"time: {root / 'in.png'}" in err
    assert run("decompress", tmp_path / "x.mrc", "--ckpt", root / "codec.pt", "--time") == 0
    assert "time:" in capsys.readouterr().err


def test_duplicate_betas_write_one_file_and_minus_zero_is_zero(files, tmp_path, capsys):
    root, _ = files
    argv = ["decompress", root / "x.mrc", tmp_path / "y.png", "--ckpt", root / "codec.pt"]
    assert run(*argv, "--beta", "0", "--beta", "-0") == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["y.png"]
    assert run("compress", root / "in.png", tmp_path / "q.mrc", "--ckpt", root / "codec.pt", "--quality", "-0") == 0
    capsys.readouterr()
    assert run("info", tmp_path / "q.mrc") == 0
    assert "quality:        0\n" in capsys.readouterr().out


def test_refine_shows_progress_on_request(tmp_path, capsys):
    from multirealism import MultiRealismCodec
    from multirealism.objective import RateDistortionObjective

    codec = make_tiny_codec("hyperprior", seed=3)
    codec.save(tmp_path / "codec.pt")
    objective = RateDistortionObjective((0.01,))
    original = MultiRealismCodec.from_checkpoint
    save_image(natural_image("chelsea", 32), tmp_path / "in.png")
    argv = ["compress", tmp_path / "in.png", tmp_path / "x.mrc", "--ckpt", tmp_path / "codec.pt", "--refine", "3"]
    with pytest.MonkeyPatch.context() as patch:  # a .pt file carries no objective: give it one
        patch.setattr(MultiRealismCodec, "from_checkpoint",
                      classmethod(lambda cls, p: setattr(c := original(p), "objective", objective) or c))
        assert run(*argv, "--progress") == 0
        assert "refining" in capsys.readouterr().err
        assert run(*argv, "--force") == 0  # stderr is not a terminal here: no bar unless asked
        assert "refining" not in capsys.readouterr().err
