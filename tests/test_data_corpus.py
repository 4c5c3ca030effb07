"""The offline corpus builder, on tiny .deb packages made here with dpkg-deb -b."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from multirealism.cli.main import main
from multirealism.data import corpus
from multirealism.data.corpus import CorpusError, PackagePhotos, build_corpus, licence_of, resize_long_side

pytestmark = pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb")

COPYRIGHT = """Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/

Files: *
Copyright: 2020, Someone
License: GPL-2+

Files: 16.04/photo_by_A.jpg
  other/second.jpg
Copyright: 2019, A
License: CC-BY-4.0

Files: debian/*
License: GPL-2+
"""


def noise_image(path: Path, size, seed: int) -> None:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)


def make_deb(debs: Path, tmp: Path, package: str = "fake-wallpapers", version: str = "1.2-3") -> None:
    root = tmp / "pkgroot"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN/control").write_text(
        f"Package: {package}\nVersion: {version}\nArchitecture: all\nMaintainer: t <t@example.org>\n"
        "Description: test\n"
    )
    doc = root / "usr/share/doc" / package
    doc.mkdir(parents=True)
    (doc / "copyright").write_text(COPYRIGHT)
    noise_image(root / "usr/share/backgrounds/photo_by_A.jpg", (300, 200), 0)
    noise_image(root / "usr/share/wallpapers/Big/contents/images/640x400.png", (64, 40), 1)
    noise_image(root / "usr/share/wallpapers/Big/contents/images/1280x800.png", (128, 80), 2)
    # an "Edje file": a tar of two images, which the fake edje_decc below unpacks
    noise_image(tmp / "edje/img-small.png", (40, 30), 3)
    noise_image(tmp / "edje/img-large.png", (160, 120), 4)
    with tarfile.open(root / "usr/share/backgrounds/Scene.edj", "w") as tar:
        for name in ("img-small.png", "img-large.png"):
            tar.add(tmp / "edje" / name, arcname=name)
    debs.mkdir(parents=True, exist_ok=True)
    subprocess.run(["dpkg-deb", "--root-owner-group", "-b", str(root), str(debs / f"{package}_{version}_all.deb")],
                   check=True, capture_output=True)


PHOTOS = [PackagePhotos("fake-wallpapers", "1.2-3", "bookworm", ("CC-BY-4.0", "GPL-2+"),
                        ("usr/share/backgrounds/photo_by_A.jpg", "usr/share/wallpapers/Big/contents/images"))]


def test_builds_reproducible_corpus_with_provenance(tmp_path: Path) -> None:
    make_deb(tmp_path / "debs", tmp_path)
    entries = build_corpus(tmp_path / "out", debs=tmp_path / "debs", long_side=100, sources=PHOTOS)
    manifest = json.loads((tmp_path / "out/manifest.json").read_text())
    assert [e["file"] for e in manifest["images"]] == [e.file for e in entries]
    photo, big = manifest["images"]
    assert photo["source_package"] == "fake-wallpapers" and photo["package_version"] == "1.2-3"
    assert photo["source_file"] == "usr/share/backgrounds/photo_by_A.jpg"
    assert photo["license"] == "CC-BY-4.0" and photo["copyright"] == "2019, A"
    assert photo["original_size"] == [300, 200] and photo["output_size"] == [100, 67]
    # a directory means its largest image; the "Files: *" paragraph gives its licence
    assert big["source_file"].endswith("1280x800.png") and big["license"] == "GPL-2+"
    assert big["file"] == "fake-wallpapers__Big.png" and big["output_size"] == [100, 62]
    for entry in manifest["images"]:
        with Image.open(tmp_path / "out" / entry["file"]) as image:
            assert image.format == "PNG" and list(image.size) == entry["output_size"]
    again = build_corpus(tmp_path / "again", debs=tmp_path / "debs", long_side=100, sources=PHOTOS)
    assert [e.sha256 for e in again] == [e.sha256 for e in entries]


def test_cli_subcommand(tmp_path: Path, monkeypatch, capsys) -> None:
    make_deb(tmp_path / "debs", tmp_path)
    monkeypatch.setattr(corpus, "SOURCES", PHOTOS)
    code = main(["data", "corpus", "--out", str(tmp_path / "out"), "--from-debs", str(tmp_path / "debs"),
                 "--long-side", "64"])
    assert code in (0, None)
    assert "2 images" in capsys.readouterr().out
    manifest = json.loads((tmp_path / "out/manifest.json").read_text())
    assert manifest["long_side"] == 64
    assert [max(e["output_size"]) for e in manifest["images"]] == [64, 64]


def test_missing_package_and_validation_image_are_refused(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="no fake-wallpapers_"):
        build_corpus(tmp_path / "out", debs=tmp_path, sources=PHOTOS)
    from skimage import data

    root = tmp_path / "v"
    make_deb(root / "debs", root)
    deb_root = root / "pkgroot"
    Image.fromarray(data.astronaut()).save(deb_root / "usr/share/backgrounds/photo_by_A.jpg")
    subprocess.run(["dpkg-deb", "--root-owner-group", "-b", str(deb_root),
                    str(root / "debs/fake-wallpapers_1.2-3_all.deb")], check=True, capture_output=True)
    with pytest.raises(CorpusError, match="astronaut"):
        build_corpus(tmp_path / "out2", debs=root / "debs", sources=PHOTOS)


def test_licence_lookup_and_resize() -> None:
    assert licence_of(COPYRIGHT, "usr/share/x/other/second.jpg")[0] == "CC-BY-4.0"
    assert licence_of(COPYRIGHT, "usr/share/x/anything.png")[0] == "GPL-2+"
    with pytest.raises(CorpusError, match="no licence"):
        licence_of("Files: a.jpg\nLicense: MIT\n", "b.jpg")
    image = Image.new("RGB", (50, 20))
    assert resize_long_side(image, 100).size == (50, 20)
    assert resize_long_side(image, 25).size == (25, 10)


def fake_tool(folder: Path, name: str, body: str) -> None:
    """A stand-in for a system tool: a Python script named ``name`` in ``folder`` (put first on PATH)."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / name
    script.write_text(f"#!{sys.executable}\n{body}")
    script.chmod(0o755)


FAKE_EDJE_DECC = """import sys, tarfile
tarfile.open(sys.argv[1]).extractall(sys.argv[3])
"""
FAKE_APT_GET = """import os, pathlib, sys
args = sys.argv[1:]
options = dict(a.split("=", 1) for a in args if "::" in a)
if "indextargets" in args:
    print(os.environ["FAKE_APT_ARCHIVES"].replace(",", "\\n"))
with open(os.environ["FAKE_APT_LOG"], "a") as log:
    if "update" in args:
        log.write("update " + pathlib.Path(options["Dir::Etc::SourceList"]).read_text())
        if os.environ.get("FAKE_APT_UPDATE_FAILS"):
            sys.exit("E: Some index files failed to download.")
    if "download" in args:
        specs = args[args.index("download") + 1:]
        log.write("download " + " ".join(specs) + "\\n")
        for spec in specs:
            name, version = spec.split("=")
            if name == "gone":
                sys.exit("E: Can't find a source to download version '" + version + "' of 'gone'")
            pathlib.Path(name + "_" + version.replace(":", "%3a") + "_all.deb").touch()
"""


def test_edje_backgrounds_give_their_largest_image(tmp_path: Path, monkeypatch) -> None:
    make_deb(tmp_path / "debs", tmp_path)
    fake_tool(tmp_path / "bin", "edje_decc", FAKE_EDJE_DECC)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    sources = [PackagePhotos("fake-wallpapers", "1.2-3", "bookworm", ("GPL-2+",), ("usr/share/backgrounds/Scene.edj",))]
    (entry,) = build_corpus(tmp_path / "out", debs=tmp_path / "debs", long_side=100, sources=sources)
    assert entry.file == "fake-wallpapers__Scene.png" and entry.source_file == "usr/share/backgrounds/Scene.edj"
    assert entry.original_size == (160, 120) and entry.output_size == (100, 75) and entry.license == "GPL-2+"
    monkeypatch.setattr(corpus.shutil, "which", lambda name: None)
    with pytest.raises(CorpusError, match="libedje-bin"):
        build_corpus(tmp_path / "out2", debs=tmp_path / "debs", sources=sources)


def test_versions_licences_and_names_are_checked(tmp_path: Path) -> None:
    make_deb(tmp_path / "debs", tmp_path)
    photo = ("usr/share/backgrounds/photo_by_A.jpg",)
    with pytest.raises(CorpusError, match=r"no fake-wallpapers_2%3a1.2-4_\*.deb"):
        build_corpus(tmp_path / "o1", debs=tmp_path / "debs",
                     sources=[PackagePhotos("fake-wallpapers", "2:1.2-4", "sid", ("CC-BY-4.0",), photo)])
    with pytest.raises(CorpusError, match="the licence CC-BY-4.0, not one of GPL-2"):
        build_corpus(tmp_path / "o2", debs=tmp_path / "debs",
                     sources=[PackagePhotos("fake-wallpapers", "1.2-3", "bookworm", ("GPL-2+",), photo)])
    twice = PackagePhotos("fake-wallpapers", "1.2-3", "bookworm", ("CC-BY-4.0",), photo)
    with pytest.raises(CorpusError, match="both be written as fake-wallpapers__photo_by_A.png"):
        build_corpus(tmp_path / "o3", debs=tmp_path / "debs", sources=[twice, twice])


def test_corpus_versions_select_their_sources(tmp_path: Path, monkeypatch, capsys) -> None:
    make_deb(tmp_path / "debs", tmp_path)
    first = PackagePhotos("fake-wallpapers", "1.2-3", "bookworm", ("CC-BY-4.0",),
                          ("usr/share/backgrounds/photo_by_A.jpg",), corpus="v1")
    later = PackagePhotos("fake-wallpapers", "1.2-3", "bookworm", ("GPL-2+",),
                          ("usr/share/wallpapers/Big/contents/images",))
    monkeypatch.setattr(corpus, "SOURCES", (first, later))
    assert main(["data", "corpus", "--out", str(tmp_path / "v1"), "--from-debs", str(tmp_path), "--corpus", "v1",
                 "--long-side", "32"]) in (0, None)
    manifest = json.loads((tmp_path / "v1/manifest.json").read_text())
    assert manifest["corpus"] == "v1" and [e["file"] for e in manifest["images"]] == ["fake-wallpapers__photo_by_A.png"]
    entries = build_corpus(tmp_path / "v2", debs=tmp_path, long_side=32)
    assert [e.file for e in entries] == ["fake-wallpapers__photo_by_A.png", "fake-wallpapers__Big.png"]
    with pytest.raises(CorpusError, match="unknown corpus 'v9'"):
        build_corpus(tmp_path / "v9", debs=tmp_path, corpus="v9")


def test_download_uses_one_private_apt_state_per_suite(tmp_path: Path, monkeypatch) -> None:
    fake_tool(tmp_path / "bin", "apt-get", FAKE_APT_GET)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_APT_LOG", str(tmp_path / "log"))
    monkeypatch.setenv("FAKE_APT_ARCHIVES", "http://security.example/debian-security/,http://mirror.example/debian/")
    dest = tmp_path / "debs"
    dest.mkdir()
    (dest / "have_1-1_all.deb").touch()
    sources = [PackagePhotos("a", "1:2.0-1", "bookworm", ("GPL-2+",), ("x.jpg",)),
               PackagePhotos("b", "3-1", "sid", ("GPL-2+",), ("y.jpg",)),
               PackagePhotos("a", "1:2.0-1", "bookworm", ("GPL-2+",), ("z.jpg",)),
               PackagePhotos("have", "1-1", "sid", ("GPL-2+",), ("w.jpg",))]
    corpus.download_debs(dest, sources)
    assert sorted(p.name for p in dest.iterdir()) == ["a_1%3a2.0-1_all.deb", "b_3-1_all.deb", "have_1-1_all.deb"]
    log = (tmp_path / "log").read_text().splitlines()
    assert log[0].startswith("update deb [signed-by=")
    assert log[0].endswith(" http://mirror.example/debian bookworm main")
    assert log[1] == "download a=1:2.0-1"
    assert log[2].endswith("/debian sid main") and log[3] == "download b=3-1"
    with pytest.raises(CorpusError, match="apt-get download for Debian sid failed: E: Can't find"):
        corpus.download_debs(dest, [PackagePhotos("gone", "1-1", "sid", ("GPL-2+",), ("v.jpg",))])
    # an index that failed to update (say, a Contents file while the mirror syncs) stops nothing by itself
    monkeypatch.setenv("FAKE_APT_UPDATE_FAILS", "1")
    corpus.download_debs(dest, [PackagePhotos("c", "1-1", "forky", ("GPL-2+",), ("u.jpg",))])
    assert (dest / "c_1-1_all.deb").is_file()
    with pytest.raises(CorpusError, match=r"Can't find .* \(after apt-get update: E: Some index files"):
        corpus.download_debs(dest, [PackagePhotos("gone", "1-1", "sid", ("GPL-2+",), ("v.jpg",))])
    monkeypatch.setenv("FAKE_APT_ARCHIVES", "http://archive.example/ubuntu/")
    with pytest.raises(CorpusError, match="no Debian archive in this machine's apt sources"):
        corpus.download_debs(dest, [PackagePhotos("b", "4-1", "sid", ("GPL-2+",), ("y.jpg",))])


def test_the_table_keeps_small_v1_and_names_every_photo_once() -> None:
    names = [corpus._output_name(s.package, listed) for s in corpus.SOURCES for listed in s.photos]
    assert len(names) == len(set(names))
    assert all(s.corpus in corpus.CORPORA and s.licences for s in corpus.SOURCES)
    history = json.loads((Path(__file__).parents[1] / "docs/small-v1-training-data.json").read_text())
    v1 = corpus.sources_of("v1")
    assert [corpus._output_name(s.package, listed) for s in v1 for listed in s.photos] == [
        e["file"] for e in history["images"]]
    assert {(s.package, s.version) for s in v1} == {(e["source_package"], e["package_version"])
                                                    for e in history["images"]}
