"""An openly licensed training corpus built offline from Debian's wallpaper packages, with provenance.

The photographs (not the illustrations) listed in :data:`SOURCES`, each a file of a pinned package version,
are downscaled so the long side is ``long_side`` pixels (Lanczos, as HiFiC preprocesses OpenImages), written
as PNG, and described in ``manifest.json``: package, version, suite, file inside the package, licence and
copyright line from the package's DEP-5 copyright file, original and output size, sha256 of the PNG.
scikit-image's natural images are the validation set: the builder refuses any image that matches one of them.
Sources and counts: docs/training-data.md.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from multirealism.errors import MultiRealismError

#: the keyring of Debian's archive signing keys (package debian-archive-keyring)
DEBIAN_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
#: corpus versions, each including the ones before it: "v1" is the 35 photographs the `small` preset's warm-up
#: was trained on (docs/small-v1-training-data.json), "v2" adds the photographs of docs/training-data.md
CORPORA = ("v1", "v2")


@dataclass(frozen=True)
class PackagePhotos:
    """Photographs kept from one version of a Debian package.

    ``photos`` are paths inside the package; a directory or an Edje file (``.edj``) stands for the largest
    image in it. ``licences`` are the licences the package's DEP-5 copyright file gives these files: the
    builder refuses any other, so a changed licence stops the build instead of slipping into the corpus.
    ``corpus`` is the first corpus version (:data:`CORPORA`) that includes them.
    """

    package: str
    version: str
    suite: str
    licences: Tuple[str, ...]
    photos: Tuple[str, ...]
    corpus: str = "v2"


def _under(folder: str, names: Sequence[str], suffix: str = ".jpg") -> Tuple[str, ...]:
    return tuple(f"{folder}/{name}{suffix}" for name in names)


def _plasma(names: Sequence[str]) -> Tuple[str, ...]:
    return tuple(f"usr/share/wallpapers/{name}/contents/images" for name in names)


#: the photographs of the corpus, checked by eye on contact sheets (the rest of each package is
#: illustrations, renders, gradients, logos or near-duplicates); the order is the manifest's
SOURCES: Tuple[PackagePhotos, ...] = (
    PackagePhotos("lomiri-wallpapers-16.04", "20.04.0-2", "bookworm", ("CC-BY-4.0", "CC-BY-SA-4.0", "CC0-1.0"), _under(
        "usr/share/backgrounds", (
            "Picture_1A_by_freespace", "Wine_by_Jakkub_Mede", "seeding_by_Clements_Engelhardt",
            "aitzgorri_by_Aitzol_Berasategi", "friends_by_Aitzol_Berasategi", "sunset_by_Aitzol_Berasategi",
            "picosdeeuropa_by_Aitzol_Berasategi", "life_by_Aitzol_Berasategi", "Dragonfly_by_Bolly",
            "free_by_Peter_Nerlich", "analogpattern_by_Peter_Nerlich", "Picture_0B_by_freespace",
            "Bridge_by_Sander_Klootwijk",
        )), corpus="v1"),
    PackagePhotos("lomiri-wallpapers-20.04", "20.04.0-2", "bookworm", ("CC-BY-SA-3.0",), _under(
        "usr/share/backgrounds", ("Kleiber_by_Lukas_Baubkus", "Infinite-Sea_by_Aury88")), corpus="v1"),
    PackagePhotos("mate-backgrounds", "1.26.0-1", "bookworm", ("GPL-2+",), _under(
        "usr/share/backgrounds/mate/nature",
        ("Garden", "Dune", "Wood", "TwoWings", "Storm", "RainDrops", "Blinds", "LadyBird", "YellowFlower")),
        corpus="v1"),
    PackagePhotos("plasma-workspace-wallpapers", "4:5.27.5-2", "bookworm", ("GPL-2+",), _plasma((
        "FallenLeaf", "Path", "DarkestHour", "Volna", "summer_1am", "EveningGlow", "Grey", "Kite",
        "OneStandsOut", "ColdRipple", "BytheWater",
    )), corpus="v1"),
    PackagePhotos("mate-backgrounds", "1.26.0-1", "bookworm", ("GPL-2+",), _under(
        "usr/share/backgrounds/mate/nature", ("Aqua", "FreshFlower", "GreenMeadow"))),
    PackagePhotos("lxqt-themes", "1.2.0-1", "bookworm", ("LGPL-2.1+",), (
        "usr/share/lxqt/wallpapers/Butterfly-Kenneth-Wimer.jpg", "usr/share/lxqt/wallpapers/Valendas.png",
        "usr/share/lxqt/wallpapers/after-the-rain.jpg", "usr/share/lxqt/wallpapers/appleflower.png",
        "usr/share/lxqt/wallpapers/beam.png", "usr/share/lxqt/wallpapers/butterfly.png",
        "usr/share/lxqt/wallpapers/cloud.png", "usr/share/lxqt/wallpapers/drop.png",
        "usr/share/lxqt/wallpapers/flowers.png", "usr/share/lxqt/wallpapers/fog.jpg",
        "usr/share/lxqt/wallpapers/this-is-not-windows.jpg",
    )),
    PackagePhotos("sddm-theme-maldives", "0.19.0-5", "bookworm", ("CC-BY-3.0",),
                  ("usr/share/sddm/themes/maldives/background.jpg",)),
    PackagePhotos("enlightenment-data", "0.25.4-2", "bookworm", ("BSD-2-clause",), _under(
        "usr/share/enlightenment/data/backgrounds", (
            "Bamboo", "Foggy-Trees", "God-Rays", "Green-Maple", "Lichen-Branches", "Mountain", "Peaks", "Red-Maple",
            "Sea-of-Lanterns", "Snow-Trees", "Spruce-Needles", "Sunset-Clouds", "White-Flower", "Yellow-Flower",
        ), ".edj")),
    PackagePhotos("budgie-backgrounds", "3.0-1", "trixie", ("CC0-1.0",), _under(
        "usr/share/backgrounds/budgie", (
            "abstract-spiral", "beacon-street-sunset", "blue-periwinkle", "canyon-wren", "casa-mila",
            "extreme-desert-hike", "high-trestle-trail", "lake-sherburne", "oakland-zoo-otters", "perched-osprey",
            "piazza-gae-aulenti", "roman-colosseum", "saturnian-profile", "singaporean-cityscape", "tea-gardens",
        ))),
    PackagePhotos("ukui-wallpapers", "20.04.4-1", "sid", ("CC-BY-SA-3.0",), _under(
        "usr/share/backgrounds", (
            "bluebird", "bridgecity", "bridgecity2", "flamingos", "horse", "house", "look", "mountain-range",
            "mountain", "mountain2", "sea", "sky", "snowy-mountains", "still-life", "sunf",
        ))),
)
#: scikit-image's natural colour images, the validation set (see tests/conftest.py natural_image)
VALIDATION_IMAGES = (
    "astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "retina", "immunohistochemistry",
)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass
class CorpusEntry:
    """Provenance of one output image."""

    file: str
    source_package: str
    package_version: str
    suite: str
    source_file: str
    license: str
    copyright: str
    original_size: Tuple[int, int]
    output_size: Tuple[int, int]
    sha256: str


class CorpusError(MultiRealismError, RuntimeError):
    """A listed photo, package or licence is missing, or an image is a validation image."""


# ---------------------------------------------------------------------------- DEP-5 licences
def parse_copyright(text: str) -> List[Dict[str, str]]:
    """Paragraphs of a DEP-5 copyright file as dicts (continuation lines joined with spaces)."""
    paragraphs: List[Dict[str, str]] = []
    current: Dict[str, str] = {}
    key = None
    for line in text.splitlines():
        if not line.strip():
            if current:
                paragraphs.append(current)
            current, key = {}, None
        elif line[0] in " \t" and key is not None:
            current[key] += " " + line.strip()
        elif ":" in line:
            key, value = line.split(":", 1)
            current[key.strip()] = value.strip()
    if current:
        paragraphs.append(current)
    return paragraphs


def _pattern_matches(pattern: str, path: str) -> bool:
    """Whether a ``Files:`` pattern (relative to the source tree) names the installed ``path``: by full
    path, by path suffix, or by file name when the pattern names files rather than ``*``."""
    if fnmatch.fnmatchcase(path, pattern) or fnmatch.fnmatchcase(path, "*/" + pattern):
        return True
    name = PurePosixPath(pattern).name
    return name != "*" and fnmatch.fnmatchcase(PurePosixPath(path).name, name)


def licence_of(copyright_text: str, path: str) -> Tuple[str, str]:
    """``(licence, copyright)`` of an installed file; the last matching paragraph wins (DEP-5)."""
    found: Optional[Tuple[str, str]] = None
    for para in parse_copyright(copyright_text):
        if "Files" not in para or "License" not in para:
            continue
        patterns = [p for p in para["Files"].split() if not p.startswith("debian/")]
        if any(_pattern_matches(p, path) for p in patterns):
            found = (para["License"].split()[0], para.get("Copyright", ""))
    if found is None:
        raise CorpusError(f"no licence for {path} in the package's copyright file")
    return found


# ---------------------------------------------------------------------------- images
def resize_long_side(image: Image.Image, long_side: int) -> Image.Image:
    """Lanczos downscale so the long side is ``long_side``; smaller images are kept as they are."""
    width, height = image.size
    scale = long_side / max(width, height)
    if scale >= 1:
        return image
    return image.resize((max(1, round(width * scale)), max(1, round(height * scale))), Image.LANCZOS)


def _thumbnail(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("L").resize((32, 32), Image.BILINEAR), dtype=np.float32) / 255.0


def validation_thumbnails() -> Dict[str, np.ndarray]:
    """32x32 grey thumbnails of scikit-image's natural images (and their mirror images)."""
    from skimage import data

    thumbs = {}
    for name in VALIDATION_IMAGES:
        array = np.asarray(getattr(data, name)())
        if array.dtype != np.uint8:
            array = (255 * (array - array.min()) / max(float(np.ptp(array)), 1e-8)).astype(np.uint8)
        image = Image.fromarray(array[..., :3] if array.ndim == 3 else array)
        thumbs[name] = _thumbnail(image)
        thumbs[name + " (mirrored)"] = thumbs[name][:, ::-1]
    return thumbs


def assert_not_validation(image: Image.Image, thumbs: Dict[str, np.ndarray], label: str) -> None:
    """Raise CorpusError if ``image`` looks like a scikit-image validation image: correlation of the
    32x32 grey thumbnails above 0.9 (survives recompression, rescaling and brightness changes)."""
    thumb = _thumbnail(image).ravel()
    for name, ref in thumbs.items():
        if np.corrcoef(thumb, ref.ravel())[0, 1] > 0.9:
            raise CorpusError(f"{label} matches scikit-image's {name}, which is validation data")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------------------- packages
def deb_file_name(package: str, version: str) -> str:
    """The glob of a package version's ``.deb`` as ``apt-get download`` names it (``:`` becomes ``%3a``)."""
    return f"{package}_{version.replace(':', '%3a')}_*.deb"


def debian_mirror() -> str:
    """The Debian archive this machine's apt uses: the first configured repository whose path is ``/debian``."""
    listed = subprocess.run(["apt-get", "indextargets", "--format", "$(REPO_URI)", "Identifier: Packages"],
                            capture_output=True, text=True)
    for uri in listed.stdout.split():
        if uri.rstrip("/").endswith("/debian"):
            return uri.rstrip("/")
    raise CorpusError("no Debian archive in this machine's apt sources (run apt-get update once) or pass --mirror URL")


def download_debs(dest: Path, sources: Sequence[PackagePhotos] = SOURCES, mirror: Optional[str] = None) -> None:
    """``apt-get download`` each listed package version into ``dest`` from ``mirror``, suite by suite.

    ``mirror`` defaults to :func:`debian_mirror`. Each suite gets its own apt lists in a temporary folder
    (``apt-get update`` on them), so the machine's own apt sources stay as they are; the archive's
    signatures are checked against :data:`DEBIAN_KEYRING`.
    """
    dest.mkdir(parents=True, exist_ok=True)
    mirror = mirror or debian_mirror()
    wanted: Dict[str, List[str]] = {}
    for source in sources:
        if not list(dest.glob(deb_file_name(source.package, source.version))):
            wanted.setdefault(source.suite, [])
            spec = f"{source.package}={source.version}"
            if spec not in wanted[source.suite]:
                wanted[source.suite].append(spec)
    for suite, specs in wanted.items():
        with tempfile.TemporaryDirectory() as tmp:
            state = Path(tmp)
            (state / "lists/partial").mkdir(parents=True)
            (state / "cache/archives/partial").mkdir(parents=True)
            (state / "status").touch()
            (state / "sources.list").write_text(f"deb [signed-by={DEBIAN_KEYRING}] {mirror} {suite} main\n")
            options = [
                "-o", f"Dir::Etc::SourceList={state / 'sources.list'}", "-o", "Dir::Etc::SourceParts=/dev/null",
                "-o", f"Dir::State::Lists={state / 'lists'}", "-o", f"Dir::Cache={state / 'cache'}",
                "-o", f"Dir::State::status={state / 'status'}",
                "-o", "Acquire::IndexTargets::deb::Contents-deb::DefaultEnabled=false",
            ]
            # an index this download does not need (say, apt-file's Contents while a mirror syncs) may fail
            # to update: only the download's own failure stops the build, with the update's complaint
            update = subprocess.run(["apt-get", *options, "update"], cwd=dest, capture_output=True, text=True)
            result = subprocess.run(["apt-get", *options, "download", *specs], cwd=dest, capture_output=True,
                                    text=True)
            if result.returncode != 0:
                message = f"apt-get download for Debian {suite} failed: {_last_line(result.stderr)}"
                if update.returncode != 0:
                    message += f" (after apt-get update: {_last_line(update.stderr)})"
                raise CorpusError(message)


def _last_line(text: str) -> str:
    return (text.strip().splitlines() or ["(no message)"])[-1]


def _find_deb(debs: Path, package: str, version: str) -> Path:
    pattern = deb_file_name(package, version)
    matches = sorted(debs.rglob(pattern))
    if not matches:
        raise CorpusError(f"no {pattern} in {debs}")
    return matches[0]


def _deb_field(deb: Path, field: str) -> str:
    return subprocess.run(["dpkg-deb", "-f", str(deb), field], check=True, capture_output=True, text=True).stdout.strip()


def _largest_image(folder: Path, listed: str) -> Path:
    images = [p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    if not images:
        raise CorpusError(f"no image in {listed}")
    return max(images, key=lambda p: (_pixels(p), p.name))


def _unpack_edje(edj: Path, dest: Path) -> Path:
    """Decompile an Edje file with ``edje_decc`` (Debian package libedje-bin) into ``dest``."""
    result = subprocess.run(["edje_decc", str(edj), "-output", str(dest)], capture_output=True, text=True)
    if result.returncode != 0 or not dest.is_dir():
        raise CorpusError(f"edje_decc could not decompile {edj.name}: {result.stderr.strip()[-200:]}")
    return dest


def _pick(root: Path, listed: str, scratch: Path) -> Path:
    """The image a listed path stands for: the file itself, or the largest image of a folder or Edje file."""
    path = root / listed
    if path.is_dir():
        return _largest_image(path, listed)
    if not path.is_file():
        raise CorpusError(f"listed photo {listed} is not in the package")
    if path.suffix == ".edj":
        return _largest_image(_unpack_edje(path, scratch / path.stem), listed)
    return path


def _pixels(path: Path) -> int:
    with Image.open(path) as image:
        return image.size[0] * image.size[1]


def _output_name(package: str, listed: str) -> str:
    parts = PurePosixPath(listed).parts
    stem = parts[-3] if parts[-1] == "images" else PurePosixPath(listed).stem  # plasma: the wallpaper's name
    return f"{package}__{stem}.png"


def _write(image: Image.Image, out: Path, name: str, long_side: int) -> Tuple[Tuple[int, int], Tuple[int, int], str]:
    rgb = image.convert("RGB")
    resized = resize_long_side(rgb, long_side)
    target = out / name
    resized.save(target, format="PNG", optimize=False)
    return rgb.size, resized.size, _sha256(target)


def sources_of(corpus: str, sources: Sequence[PackagePhotos] = SOURCES) -> List[PackagePhotos]:
    """The sources of corpus version ``corpus`` (each version includes the ones before it)."""
    if corpus not in CORPORA:
        raise CorpusError(f"unknown corpus {corpus!r}; choose one of {', '.join(CORPORA)}")
    return [s for s in sources if CORPORA.index(s.corpus) <= CORPORA.index(corpus)]


class _Unpacked:
    """Each ``.deb`` unpacked once into a scratch folder, with its version checked and licences read."""

    def __init__(self, debs: Path, scratch: Path) -> None:
        self.debs, self.scratch = debs, scratch
        self.roots: Dict[Tuple[str, str], Tuple[Path, str]] = {}

    def get(self, package: str, version: str) -> Tuple[Path, str]:
        key = (package, version)
        if key not in self.roots:
            deb = _find_deb(self.debs, package, version)
            if _deb_field(deb, "Version") != version:
                raise CorpusError(f"{deb.name} is version {_deb_field(deb, 'Version')}, not {version}")
            root = self.scratch / f"{package}_{len(self.roots)}"
            subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
            copyright_file = root / "usr/share/doc" / package / "copyright"
            if not copyright_file.is_file():
                raise CorpusError(f"{deb.name} has no usr/share/doc/{package}/copyright")
            self.roots[key] = (root, copyright_file.read_text(encoding="utf-8", errors="replace"))
        return self.roots[key]


def build_corpus(
    out: "str | Path",
    debs: "str | Path | None" = None,
    long_side: int = 1280,
    corpus: str = CORPORA[-1],
    sources: Optional[Sequence[PackagePhotos]] = None,
    mirror: Optional[str] = None,
) -> List[CorpusEntry]:
    """Write corpus version ``corpus`` and its ``manifest.json`` into ``out``; return the manifest's entries.

    ``debs`` is a folder (searched recursively) with the ``.deb`` files; without it they are fetched with
    :func:`download_debs` (from ``mirror``) into a temporary folder. ``sources`` overrides :data:`SOURCES`.
    """
    if long_side < 16:
        raise ValueError(f"long_side must be at least 16, got {long_side}")
    chosen = sources_of(corpus, SOURCES if sources is None else sources)
    if any(p.endswith(".edj") for s in chosen for p in s.photos) and shutil.which("edje_decc") is None:
        raise CorpusError(f"corpus {corpus} has Edje backgrounds: install edje_decc (Debian package libedje-bin)")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    thumbs = validation_thumbnails()
    entries: List[CorpusEntry] = []
    with tempfile.TemporaryDirectory() as tmp:
        debs_dir = Path(debs) if debs is not None else Path(tmp) / "debs"
        if debs is None:
            download_debs(debs_dir, chosen, mirror)
        unpacked = _Unpacked(debs_dir, Path(tmp))
        for source in chosen:
            root, copyright_text = unpacked.get(source.package, source.version)
            for listed in source.photos:
                picked = _pick(root, listed, Path(tmp) / "edje")
                inside = listed if listed.endswith(".edj") else picked.relative_to(root).as_posix()
                licence, holder = licence_of(copyright_text, inside)
                if licence not in source.licences:
                    raise CorpusError(f"{source.package} gives {inside} the licence {licence}, "
                                      f"not one of {', '.join(source.licences)}")
                name = _output_name(source.package, listed)
                if any(e.file == name for e in entries):
                    raise CorpusError(f"two listed photos would both be written as {name}")
                with Image.open(picked) as image:
                    assert_not_validation(image, thumbs, inside)
                    original, size, digest = _write(image, out, name, long_side)
                entries.append(CorpusEntry(name, source.package, source.version, source.suite, inside, licence,
                                           holder, original, size, digest))
    manifest = {"corpus": corpus, "long_side": long_side, "resample": "lanczos", "images": [asdict(e) for e in entries]}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return entries
