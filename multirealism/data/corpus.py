"""An openly licensed training corpus built offline from Debian wallpaper packages, with provenance.

The photographs (not the illustrations) of four Debian packages are downscaled so the long side is
``long_side`` pixels (Lanczos, as HiFiC preprocesses OpenImages), written as PNG, and described in
``manifest.json``: package, version, file inside the package, licence and copyright line from the
package's DEP-5 copyright file, original and output size, sha256 of the PNG. scikit-image's natural images are the validation set: the builder refuses
any image that matches one of them.
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

#: photographs in each package, as paths inside the package; a directory means "the largest image in it"
PHOTOS: Dict[str, Tuple[str, ...]] = {
    "lomiri-wallpapers-16.04": tuple(
        f"usr/share/backgrounds/{name}.jpg"
        for name in (
            "Picture_1A_by_freespace", "Wine_by_Jakkub_Mede", "seeding_by_Clements_Engelhardt",
            "aitzgorri_by_Aitzol_Berasategi", "friends_by_Aitzol_Berasategi", "sunset_by_Aitzol_Berasategi",
            "picosdeeuropa_by_Aitzol_Berasategi", "life_by_Aitzol_Berasategi", "Dragonfly_by_Bolly",
            "free_by_Peter_Nerlich", "analogpattern_by_Peter_Nerlich", "Picture_0B_by_freespace",
            "Bridge_by_Sander_Klootwijk",
        )
    ),
    "lomiri-wallpapers-20.04": (
        "usr/share/backgrounds/Kleiber_by_Lukas_Baubkus.jpg",
        "usr/share/backgrounds/Infinite-Sea_by_Aury88.jpg",
    ),
    "mate-backgrounds": tuple(
        f"usr/share/backgrounds/mate/nature/{name}.jpg"
        for name in ("Garden", "Dune", "Wood", "TwoWings", "Storm", "RainDrops", "Blinds", "LadyBird", "YellowFlower")
    ),
    "plasma-workspace-wallpapers": tuple(
        f"usr/share/wallpapers/{name}/contents/images"
        for name in (
            "FallenLeaf", "Path", "DarkestHour", "Volna", "summer_1am", "EveningGlow", "Grey", "Kite",
            "OneStandsOut", "ColdRipple", "BytheWater",
        )
    ),
}
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
    source_file: str
    license: str
    copyright: str
    original_size: Tuple[int, int]
    output_size: Tuple[int, int]
    sha256: str


class CorpusError(RuntimeError):
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
def download_debs(dest: Path, packages: Sequence[str] = tuple(PHOTOS)) -> None:
    """``apt-get download`` the packages into ``dest`` (needs the apt lists: run ``apt-get update`` once)."""
    dest.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(["apt-get", "download", *packages], cwd=dest, capture_output=True, text=True)
    if result.returncode != 0:
        raise CorpusError(f"apt-get download failed: {result.stderr.strip().splitlines()[-1:]}")


def _find_deb(debs: Path, package: str) -> Path:
    matches = sorted(debs.glob(f"{package}_*.deb"))
    if not matches:
        raise CorpusError(f"no {package}_*.deb in {debs}")
    return matches[-1]


def _deb_field(deb: Path, field: str) -> str:
    return subprocess.run(["dpkg-deb", "-f", str(deb), field], check=True, capture_output=True, text=True).stdout.strip()


def _pick(root: Path, listed: str) -> Path:
    path = root / listed
    if path.is_dir():
        images = [p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES]
        if not images:
            raise CorpusError(f"no image in {listed}")
        return max(images, key=lambda p: (_pixels(p), p.name))
    if not path.is_file():
        raise CorpusError(f"listed photo {listed} is not in the package")
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


def build_corpus(
    out: "str | Path",
    debs: "str | Path | None" = None,
    long_side: int = 1280,
    photos: Optional[Dict[str, Tuple[str, ...]]] = None,
) -> List[CorpusEntry]:
    """Write the corpus and ``manifest.json`` into ``out``; return the manifest's entries.

    ``debs`` is a folder with the downloaded ``.deb`` files; without it they are fetched with
    ``apt-get download`` into a temporary folder. ``photos`` overrides :data:`PHOTOS` (tests).
    """
    if long_side < 16:
        raise ValueError(f"long_side must be at least 16, got {long_side}")
    photos = PHOTOS if photos is None else photos
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    thumbs = validation_thumbnails()
    entries: List[CorpusEntry] = []
    with tempfile.TemporaryDirectory() as tmp:
        debs_dir = Path(debs) if debs is not None else Path(tmp) / "debs"
        if debs is None:
            download_debs(debs_dir, list(photos))
        for package, listed_paths in photos.items():
            deb = _find_deb(debs_dir, package)
            root = Path(tmp) / package
            subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
            version = _deb_field(deb, "Version")
            copyright_file = root / "usr/share/doc" / package / "copyright"
            if not copyright_file.is_file():
                raise CorpusError(f"{deb.name} has no usr/share/doc/{package}/copyright")
            copyright_text = copyright_file.read_text(encoding="utf-8", errors="replace")
            for listed in listed_paths:
                source = _pick(root, listed)
                inside = source.relative_to(root).as_posix()
                licence, holder = licence_of(copyright_text, inside)
                with Image.open(source) as image:
                    assert_not_validation(image, thumbs, inside)
                    name = _output_name(package, listed)
                    original, size, digest = _write(image, out, name, long_side)
                entries.append(CorpusEntry(name, package, version, inside, licence, holder, original, size, digest))
            shutil.rmtree(root)
    manifest = {"long_side": long_side, "resample": "lanczos", "images": [asdict(e) for e in entries]}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return entries

