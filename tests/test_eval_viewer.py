"""The viewer page: a tiny codec and JPEG swept on two small images at 3 β, the HTML parsed back."""

import base64
import io
import json
from html.parser import HTMLParser

import pytest
from helpers import make_tiny_codec, natural_image
from PIL import Image

from multirealism.evaluation.inputs import EvalImage
from multirealism.evaluation.sweep import run_sweep
from multirealism.evaluation.viewer import render

BETAS = [2.56, 0.0, 5.12]  # out of order on purpose: the slider runs over increasing β


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.sliders, self.figures, self.urls, self.captions = [], [], [], [], []
        self._in_caption = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.urls += [v for v in attrs.values() if v and v.lower().startswith(("http://", "https://", "//"))]
        if tag == "img" and "src" in attrs:  # the zoomed crops get their source from the page's script
            self.images.append(attrs["src"])
        elif tag == "input" and attrs.get("type") == "range":
            self.sliders.append(attrs)
        elif tag == "figure":
            self.figures.append(attrs)
        self._in_caption = tag == "figcaption"

    def handle_data(self, data):
        if self._in_caption:
            self.captions.append(data)
            self._in_caption = False
        self.urls += [w for w in data.split() if w.startswith(("http://", "https://"))]


@pytest.fixture(scope="module")
def sweep():
    codec = make_tiny_codec("hyperprior", seed=0)
    crops = {"astronaut": natural_image("astronaut", 64), "coffee": natural_image("coffee", 48)[:, :, :40]}
    images = [EvalImage(name, lambda image=image: image) for name, image in crops.items()]
    return crops, run_sweep(images, [("tiny", codec)], BETAS, ["jpeg"], [10, 50, 90], viewer=True)


def _decode(uri):
    assert uri.startswith("data:image/webp;base64,")
    with Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))) as image:
        return image.convert("RGB")


def test_page_embeds_each_original_once_every_decoding_and_the_classical_codec(sweep):
    crops, result = sweep
    page = _Page()
    text = render(result.viewer)
    page.feed(text)
    assert len(page.images) == len(crops) * (1 + len(BETAS) + 1)
    assert all(src.startswith("data:image/webp;base64,") for src in page.images)
    assert page.urls == [] and "<script src" not in text
    for entry in result.viewer:
        assert text.count(entry.original) == 1
    originals = [f for f in page.figures if f["class"] == "original"]
    decoded = [f for f in page.figures if f["class"] == "decoded"]
    classical = [f for f in page.figures if f["class"] == "classical"]
    assert len(originals) == len(crops) and len(decoded) == len(crops) * len(BETAS)
    assert [f["data-codec"] for f in classical] == ["jpeg"] * len(crops)
    (slider,) = page.sliders
    assert (int(slider["min"]), int(slider["max"])) == (0, len(BETAS) - 1)
    assert json.loads(slider["data-betas"]) == sorted(BETAS)
    assert [float(f["data-beta"]) for f in decoded] == sorted(BETAS) * len(crops)
    assert [int(f["data-beta-index"]) for f in decoded] == list(range(len(BETAS))) * len(crops)
    assert text.count('class="zoom"') == len(page.figures)


def test_embedded_images_and_captions_are_the_measured_ones(sweep):
    crops, result = sweep
    for entry in result.viewer:
        original = crops[entry.image]
        assert _decode(entry.original).size == (original.shape[-1], original.shape[-2])
        (level,) = entry.levels
        rows = {r["beta"]: r for r in result.rows if r["image"] == entry.image and r["codec"] == "multirealism"}
        for beta, uri, bpp, psnr in level.decoded:
            assert (bpp, psnr) == (rows[beta]["bpp"], rows[beta]["psnr"])
            assert _decode(uri).size == (original.shape[-1], original.shape[-2])
        # the classical codec shown is the grid's largest file not above the learned codec's file
        jpeg = [r for r in result.rows if r["image"] == entry.image and r["codec"] == "jpeg"]
        fitting = [r for r in jpeg if r["bytes"] <= level.bytes] or [min(jpeg, key=lambda r: r["bytes"])]
        best = max(fitting, key=lambda r: r["bytes"])
        (codec, quality, _, bpp, psnr), = level.classical
        assert (codec, quality, bpp, psnr) == ("jpeg", best["codec_quality"], best["bpp"], best["psnr"])
    page = _Page()
    page.feed(render(result.viewer))
    row = result.rows[0]
    assert f"tiny · β={row['beta']:g} · {row['bpp']:.4f} bpp · PSNR {row['psnr']:.2f} dB" in page.captions


def test_the_page_needs_images_at_one_set_of_betas(sweep):
    _, result = sweep
    with pytest.raises(ValueError, match="at least one"):
        render([])
    first = result.viewer[0]
    level = type(first.levels[0])("tiny", None, 1, first.levels[0].decoded[:1])
    other = type(first)("x", first.original, first.width, first.height, [level])
    with pytest.raises(ValueError, match="same β"):
        render([first, other])
