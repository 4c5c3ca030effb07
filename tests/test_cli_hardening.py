"""The command line as an adversary or a hurried user meets it: bounded reads, outputs checked before any
work, the format the extension names, one-line errors, and no torch for --help or argument errors."""

from __future__ import annotations

import subprocess
import sys

import pytest
from PIL import Image

from helpers import make_tiny_codec, natural_image
from multirealism import bitstream_format
from multirealism.cli import codec_commands
from multirealism.cli import main as cli_main
from multirealism.errors import BitstreamError
from multirealism.imageio import save_image


def run(*argv) -> int:
    return cli_main.main([str(a) for a in argv])


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli_hardening")
    codec = make_tiny_codec("hyperprior", seed=3)
    codec.save(root / "codec.pt")
    save_image(natural_image("chelsea", 64)[:, :40, :48], root / "in.png")
    (root / "x.mrc").write_bytes(codec.compress(natural_image("chelsea", 64)[:, :40, :48]))
    return root


@pytest.mark.parametrize("argv", [
    ["--help"], ["compress", "--help"], ["compress"], ["decompress", "a.mrc", "--beta", "x"], ["nope"],
    ["evaluate", "--help"], ["evaluate", "--data", "x"],
    ["evaluate", "--data", "x", "--out", "y", "--perceptual", "lpips-random-test-only"],
    ["evaluate", "--data", "x", "--out", "y", "--baselines", "bpg"],
    ["evaluate", "--data", "x", "--out", "y", "--fid-extractor", "random"],
    ["evaluate", "--data", "x", "--out", "y", "--bd-method", "linear"],
    ["evaluate", "--data", "x", "--out", "y", "--baselines", "jpeg", "--qualities", "500"],
    ["data", "--help"], ["data", "openimages", "--help"], ["data", "corpus", "--help"], ["data"],
    ["data", "openimages", "--out", "x", "--max-images", "1", "--split", "val"], ["data", "corpus"],
])
def test_help_and_argument_errors_do_not_import_torch(argv):
    code = (
        "import sys\nfrom multirealism.cli.main import main\n"
        f"try:\n    main({argv!r})\nexcept SystemExit as e:\n    code = e.code\n"
        "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH', code)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    out = result.stdout.strip().splitlines()[-1]
    assert out.startswith("NO-TORCH"), out
    if argv != ["--help"] and argv[-1] != "--help":
        assert out.endswith(" 2") and len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_oversized_input_is_refused_by_its_size_without_reading_it(tmp_path, files, capsys):
    huge = tmp_path / "huge.mrc"
    with open(huge, "wb") as handle:  # sparse: 1 GiB declared, nothing written
        handle.truncate(2**30)
    assert run("info", huge) == 1
    err = capsys.readouterr().err
    assert "over the limit" in err and len(err.splitlines()) == 1
    assert run("decompress", huge, tmp_path / "y.png", "--ckpt", files / "codec.pt") == 1
    assert "max_bitstream_bytes" in capsys.readouterr().err
    with pytest.raises(BitstreamError, match="more than 1024 bytes"):  # a device or pipe with no size
        codec_commands.read_bitstream("/dev/zero", max_bytes=1024)


def test_a_small_file_declaring_thousands_of_images_writes_nothing(tmp_path, files, capsys):
    codec = make_tiny_codec("hyperprior", seed=3)
    crafted = bitstream_format.pack(bitstream_format.Bitstream(codec.fingerprint, 4096, 1, 1, (1, 1), [[b""] * 4096] * 2))
    (tmp_path / "many.mrc").write_bytes(crafted)
    assert run("decompress", tmp_path / "many.mrc", tmp_path / "out.png", "--ckpt", files / "codec.pt") == 1
    assert "4096 images" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["many.mrc"]
    with pytest.raises(codec_commands.OutputCountError):  # the command's own cap on files per call
        codec_commands.output_names(str(tmp_path / "o.png"), [0.0, 1.0, 2.0], 100)


@pytest.mark.parametrize("name, magic", [("y.jpg", b"\xff\xd8"), ("y.webp", b"RIFF"), ("y.png", b"\x89PNG")])
def test_decompress_writes_the_format_its_extension_names(tmp_path, files, name, magic):
    assert run("decompress", files / "x.mrc", tmp_path / name, "--ckpt", files / "codec.pt") == 0
    assert (tmp_path / name).read_bytes().startswith(magic)


def test_bad_outputs_are_refused_before_any_work(tmp_path, files, capsys, monkeypatch):
    def no_codec(path):
        raise AssertionError("the checkpoint was loaded before the output was checked")

    monkeypatch.setattr(codec_commands, "_load_codec", no_codec)
    (tmp_path / "folder.mrc").mkdir()
    for target in (tmp_path / "missing" / "x.mrc", tmp_path / "folder.mrc"):
        assert run("compress", files / "in.png", target, "--ckpt", files / "codec.pt") == 1
        assert len(capsys.readouterr().err.splitlines()) == 1
    for target in (tmp_path / "y.bmp", tmp_path / "missing" / "y.png"):
        assert run("decompress", files / "x.mrc", target, "--ckpt", files / "codec.pt") == 1
        assert len(capsys.readouterr().err.splitlines()) == 1


def test_force_with_a_folder_among_several_outputs_leaves_nothing_partial(tmp_path, files, capsys):
    (tmp_path / "y_beta5.12.png").mkdir()
    argv = ["decompress", files / "x.mrc", tmp_path / "y.png", "--ckpt", files / "codec.pt", "--force"]
    assert run(*argv, "--beta", "0", "--beta", "5.12") == 1
    assert "is a folder" in capsys.readouterr().err
    assert not (tmp_path / "y_beta0.00.png").exists()


def test_importing_the_codec_prints_no_torch_jit_future_warning():
    """compressai imports torch_geometric, which calls the deprecated torch.jit.script: that one message is
    filtered at its source; other warnings still show (the filter is not a blanket one)."""
    code = (
        "import warnings\nimport multirealism.codec\n"
        "warnings.warn('still shown', FutureWarning)\n"
    )
    result = subprocess.run([sys.executable, "-W", "default", "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "torch.jit.script" not in result.stderr
    assert "still shown" in result.stderr


def _stream_declaring(codec, width: int, height: int) -> bytes:
    """A stream with a valid checksum whose header declares ``width`` x ``height``, strings from a 16x16 image."""
    small = bitstream_format.unpack(codec.compress(natural_image("chelsea", 16)))
    shape = tuple(-(-s // codec.pad_multiple) for s in (height, width))
    return bitstream_format.pack(bitstream_format.Bitstream(small.fingerprint, 1, height, width, shape, small.strings))


_CAPPED = """
import contextlib, io, resource, sys
from multirealism.cli.main import main
import multirealism.codec  # the heavy imports, before the cap
with open("/proc/self/status") as status:
    vm = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))
resource.setrlimit(resource.RLIMIT_AS, (vm + 3 * 2**30, resource.RLIM_INFINITY))
for argv in sys.argv[1:]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(argv.split("|"))
    print(code, len(err.getvalue().strip().splitlines()), err.getvalue().strip().replace("\\n", " / "))
"""


@pytest.mark.slow  # one subprocess importing torch (~20 s on 2 busy cores)
def test_tiny_streams_and_images_declaring_huge_sizes_end_in_one_line_under_a_memory_cap(tmp_path, files):
    """No allocation until the allocator fails: the decode is refused (or reports running out) in one line."""
    codec = make_tiny_codec("hyperprior", seed=3)
    (tmp_path / "square.mrc").write_bytes(_stream_declaring(codec, 8192, 8192))
    (tmp_path / "line.mrc").write_bytes(_stream_declaring(codec, 1048576, 1))
    Image.new("RGB", (8192, 8192)).save(tmp_path / "huge.png")
    ckpt = f"--ckpt|{files / 'codec.pt'}"
    argvs = [f"decompress|{tmp_path / 'square.mrc'}|{tmp_path / 'a.png'}|{ckpt}",
             f"decompress|{tmp_path / 'line.mrc'}|{tmp_path / 'b.png'}|{ckpt}",
             f"compress|{tmp_path / 'huge.png'}|{tmp_path / 'c.mrc'}|{ckpt}"]
    result = subprocess.run([sys.executable, "-c", _CAPPED, *argvs], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 3, result.stdout + result.stderr[-3000:]
    for line in lines:
        code, count, message = line.split(" ", 2)
        assert (code, count) == ("1", "1") and "memory" in message, line
    assert not any(p.suffix == ".png" and p.name != "huge.png" for p in tmp_path.iterdir())


def test_force_writes_through_a_device_or_fifo_never_replacing_it(files, tmp_path):
    import os
    import stat
    import threading

    null = tmp_path / "null"  # a private /dev/null: a broken --force would replace this one, not the system's
    try:
        os.mknod(null, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("creating a device node needs root")
    assert run("compress", files / "in.png", null, "--ckpt", files / "codec.pt", "--force") == 0
    assert stat.S_ISCHR(null.stat().st_mode)
    fifo = tmp_path / "pipe.mrc"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    assert run("compress", files / "in.png", fifo, "--ckpt", files / "codec.pt", "--force") == 0
    reader.join(timeout=60)
    assert stat.S_ISFIFO(fifo.stat().st_mode) and received and received[0][:4] == b"MRIC"


def test_ctrl_c_is_one_line_and_exit_130(files, tmp_path, capsys, monkeypatch):
    from multirealism.codec import MultiRealismCodec

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(MultiRealismCodec, "compress_latent", interrupted)
    assert run("compress", files / "in.png", tmp_path / "x.mrc", "--ckpt", files / "codec.pt") == 130
    assert capsys.readouterr().err.strip() == "multirealism compress: interrupted"


def test_sigterm_during_a_write_leaves_no_temp_file(files, tmp_path, capsys, monkeypatch):
    import os
    import signal

    def killed(fd):
        os.kill(os.getpid(), signal.SIGTERM)  # arrives while the temp file exists

    monkeypatch.setattr(os, "fsync", killed)
    assert run("compress", files / "in.png", tmp_path / "x.mrc", "--ckpt", files / "codec.pt") == 143
    assert capsys.readouterr().err.strip() == "multirealism compress: terminated"
    assert list(tmp_path.iterdir()) == []
