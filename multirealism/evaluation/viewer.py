"""A self-contained HTML page to look at what was measured: β slider, rate level, classical codecs, zoom.

Every original is embedded once, with, for each model and rate level, its decoding at every β and each
classical codec's decoding of about the same file size (the one matched to that level's file with
``--match-bytes``, otherwise the quality-grid file closest below it). All are lossless WebP data URIs,
so the page needs no server and no network. Inline JavaScript shows, for the β the slider and the
level the menu pick, the original, the learned codec's decoding and the classical ones side by side,
each with its bpp and PSNR, and under each a zoomed crop (pixels enlarged, no smoothing) around the
point last clicked on any of that photograph's images. The zoomed views reuse the embedded images, so
zoom adds nothing to the file. The images are the 8-bit images the metrics are computed on.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

from torch import Tensor

from multirealism.imageio import to_pil

# lossless WebP at the fastest effort: smaller than PNG and about 3x faster to write here
WEBP_OPTIONS = {"lossless": True, "quality": 0, "method": 0}
ZOOM_BOX = 160  # px: the side of each zoomed crop on the page


@dataclass
class ViewerLevel:
    """One model at one rate level on one image: ``(β, data URI, bpp, PSNR)`` per β in increasing β, and
    ``(codec, Pillow quality, data URI, bpp, PSNR)`` per classical codec of about the same file size."""

    model: str
    quality: Optional[float]
    bytes: int
    decoded: List[Tuple[float, str, float, float]] = field(default_factory=list)
    classical: List[Tuple[str, int, str, float, float]] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.model if self.quality is None else f"{self.model} level {self.quality:g}"


@dataclass
class ViewerImage:
    """One photograph: its original (embedded once) and every model and rate level's decodings."""

    image: str
    original: str
    width: int
    height: int
    levels: List[ViewerLevel] = field(default_factory=list)


def data_uri(image: Tensor) -> str:
    """``data:image/webp;base64,...`` of a ``(3, H, W)`` image in [0, 1] (8-bit, lossless)."""
    buffer = io.BytesIO()
    to_pil(image).save(buffer, format="WEBP", **WEBP_OPTIONS)
    return "data:image/webp;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


_STYLE = f"""body{{font-family:sans-serif;margin:1em;background:#fafafa}}
.row{{display:flex;gap:8px;flex-wrap:wrap;margin-bottom:1.5em}}
figure{{margin:0}}figcaption{{font-size:small;color:#333;max-width:30vw}}
img.full{{max-width:30vw;height:auto;cursor:crosshair}}
.zoom{{position:relative;overflow:hidden;width:{ZOOM_BOX}px;height:{ZOOM_BOX}px;border:1px solid #999;margin-top:4px}}
.zoom img{{position:absolute;image-rendering:pixelated;max-width:none}}
#controls{{position:sticky;top:0;background:#fafafa;padding:.5em 0;z-index:1}}"""

_SCRIPT = f"""const beta=document.getElementById('beta'),level=document.getElementById('level'),
zoom=document.getElementById('zoom'),betas=JSON.parse(beta.dataset.betas),box={ZOOM_BOX};
function place(sec){{const z=+zoom.value,cx=+sec.dataset.cx,cy=+sec.dataset.cy,w=+sec.dataset.width;
for(const f of sec.querySelectorAll('figure')){{if(f.hidden)continue;const img=f.querySelector('.zoom img');
if(!img.src)img.src=f.querySelector('img.full').src;img.style.width=(w*z)+'px';
img.style.left=(box/2-cx*z)+'px';img.style.top=(box/2-cy*z)+'px';}}}}
function show(){{document.getElementById('beta-value').textContent=betas[beta.value];
for(const f of document.querySelectorAll('figure[data-level]')){{const b=f.dataset.betaIndex;
f.hidden=f.dataset.level!==level.value||(b!==undefined&&b!==beta.value);}}
document.querySelectorAll('section').forEach(place);}}
for(const sec of document.querySelectorAll('section')){{sec.addEventListener('click',e=>{{
if(!e.target.classList.contains('full'))return;const r=e.target.getBoundingClientRect();
sec.dataset.cx=(e.clientX-r.left)/r.width*sec.dataset.width;sec.dataset.cy=(e.clientY-r.top)/r.height*sec.dataset.height;
place(sec);}});}}
for(const c of [beta,level,zoom])c.addEventListener('input',show);show();"""


def _psnr_text(value: float) -> str:
    return "∞ dB" if math.isinf(value) else f"{value:.2f} dB"


def _figure(uri: str, alt: str, caption: str, attributes: str = "") -> str:
    return (f'<figure{attributes}><img class="full" src="{uri}" alt="{html.escape(alt)}">'
            f'<div class="zoom"><img alt=""></div><figcaption>{html.escape(caption)}</figcaption></figure>')


def render(entries: Sequence[ViewerImage], title: str = "multirealism: decoded images by β") -> str:
    """The HTML page: a global β slider, rate-level menu and zoom factor over every photograph."""
    if not entries or not entries[0].levels:
        raise ValueError("the viewer needs at least one decoded image")
    betas = [beta for beta, _, _, _ in entries[0].levels[0].decoded]
    labels = [level.label for level in entries[0].levels]
    for entry in entries:
        if [level.label for level in entry.levels] != labels:
            raise ValueError("every image in the viewer must be decoded at the same models and rate levels")
        if any([beta for beta, _, _, _ in level.decoded] != betas for level in entry.levels):
            raise ValueError("every image in the viewer must be decoded at the same β values")
    beta_json = html.escape(json.dumps(betas))
    options = "".join(f'<option value="{i}">{html.escape(label)}</option>' for i, label in enumerate(labels))
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        '<div id="controls"><label for="beta">β = <span id="beta-value"></span></label> '
        f'<input type="range" id="beta" min="0" max="{len(betas) - 1}" step="1" value="0" data-betas="{beta_json}"> '
        f'<label for="level">rate</label> <select id="level">{options}</select> '
        '<label for="zoom">zoom</label> <select id="zoom"><option value="2">2x</option>'
        '<option value="4" selected>4x</option><option value="8">8x</option></select> '
        "<small>click an image to move the zoomed crop</small></div>",
    ]
    for entry in entries:
        name = entry.image
        parts.append(f'<section data-width="{entry.width}" data-height="{entry.height}" '
                     f'data-cx="{entry.width / 2:g}" data-cy="{entry.height / 2:g}"><h2>{html.escape(name)}</h2>'
                     '<div class="row">')
        parts.append(_figure(entry.original, f"{name} original", "original", ' class="original"'))
        for index, level in enumerate(entry.levels):
            for beta_index, (beta, uri, bpp, value) in enumerate(level.decoded):
                parts.append(_figure(
                    uri, f"{name} {level.label} β={beta:g}",
                    f"{level.label} · β={beta:g} · {bpp:.4f} bpp · PSNR {_psnr_text(value)}",
                    f' class="decoded" data-level="{index}" data-beta-index="{beta_index}" data-beta="{beta:g}"'))
            for codec, quality, uri, bpp, value in level.classical:
                parts.append(_figure(
                    uri, f"{name} {codec} q{quality}",
                    f"{codec} q{quality} · {bpp:.4f} bpp · PSNR {_psnr_text(value)}",
                    f' class="classical" data-level="{index}" data-codec="{html.escape(codec)}"'))
        parts.append("</div></section>")
    parts.append(f"<script>{_SCRIPT}</script></body></html>")
    return "\n".join(parts)


def write_viewer(entries: Sequence[ViewerImage], path: str) -> str:
    """Write :func:`render`'s page to ``path``; returns the path."""
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(render(entries))
    return path
