"""The offline corpus builder, on tiny .deb packages made here with dpkg-deb -b."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from multirealism.cli.main import main
from multirealism.data.corpus import CorpusError, build_corpus, licence_of, resize_long_side

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
    debs.mkdir(parents=True, exist_ok=True)
    subprocess.run(["dpkg-deb", "--root-owner-group", "-b", str(root), str(debs / f"{package}_{version}_all.deb")],
                   check=True, capture_output=True)


PHOTOS = {"fake-wallpapers": ("usr/share/backgrounds/photo_by_A.jpg", "usr/share/wallpapers/Big/contents/images")}


def test_builds_reproducible_corpus_with_provenance(tmp_path: Path) -> None:
    make_deb(tmp_path / "debs", tmp_path)
    entries = build_corpus(tmp_path / "out", debs=tmp_path / "debs", long_side=100, photos=PHOTOS)
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
    again = build_corpus(tmp_path / "again", debs=tmp_path / "debs", long_side=100, photos=PHOTOS)
    assert [e.sha256 for e in again] == [e.sha256 for e in entries]


def test_cli_subcommand(tmp_path: Path, monkeypatch, capsys) -> None:
    from multirealism.data import corpus

    make_deb(tmp_path / "debs", tmp_path)
    monkeypatch.setattr(corpus, "PHOTOS", PHOTOS)
    code = main(["data", "corpus", "--out", str(tmp_path / "out"), "--from-debs", str(tmp_path / "debs"),
                 "--long-side", "64"])
    assert code in (0, None)
    assert "2 images" in capsys.readouterr().out
    manifest = json.loads((tmp_path / "out/manifest.json").read_text())
    assert manifest["long_side"] == 64
    assert [max(e["output_size"]) for e in manifest["images"]] == [64, 64]


def test_missing_package_and_validation_image_are_refused(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="no fake-wallpapers_"):
        build_corpus(tmp_path / "out", debs=tmp_path, photos=PHOTOS)
    from skimage import data

    root = tmp_path / "v"
    make_deb(root / "debs", root)
    deb_root = root / "pkgroot"
    Image.fromarray(data.astronaut()).save(deb_root / "usr/share/backgrounds/photo_by_A.jpg")
    subprocess.run(["dpkg-deb", "--root-owner-group", "-b", str(deb_root),
                    str(root / "debs/fake-wallpapers_1.2-3_all.deb")], check=True, capture_output=True)
    with pytest.raises(CorpusError, match="astronaut"):
        build_corpus(tmp_path / "out2", debs=root / "debs", photos=PHOTOS)


def test_licence_lookup_and_resize() -> None:
    assert licence_of(COPYRIGHT, "usr/share/x/other/second.jpg")[0] == "CC-BY-4.0"
    assert licence_of(COPYRIGHT, "usr/share/x/anything.png")[0] == "GPL-2+"
    with pytest.raises(CorpusError, match="no licence"):
        licence_of("Files: a.jpg\nLicense: MIT\n", "b.jpg")
    image = Image.new("RGB", (50, 20))
    assert resize_long_side(image, 100).size == (50, 20)
    assert resize_long_side(image, 25).size == (25, 10)
