"""A self-contained HTML page with a β slider over the learned codec's decoded images.

Every image (original and one decoding per β) is embedded as a lossless WebP data URI, so the page
needs no server and no network; a few lines of inline JavaScript show, for the β the global slider
picks, each image's decoding with its bpp and PSNR next to the original. The images are the 8-bit
images the metrics are computed on, so what the page shows is what was measured.
"""

from __future__ import annotations

import base64
import html
import io
import math
from dataclasses import dataclass
from typing import List, Sequence, Tuple

from torch import Tensor

from multirealism.imageio import to_pil

# lossless WebP at the fastest effort: smaller than PNG and about 3x faster to write here
WEBP_OPTIONS = {"lossless": True, "quality": 0, "method": 0}


@dataclass
class ViewerImage:
    """One image under one model: the original and ``(β, data URI, bpp, PSNR)`` per β, in increasing β."""

    image: str
    model: str
    original: str
    decoded: List[Tuple[float, str, float, float]]


def data_uri(image: Tensor) -> str:
    """``data:image/webp;base64,...`` of a ``(3, H, W)`` image in [0, 1] (8-bit, lossless)."""
    buffer = io.BytesIO()
    to_pil(image).save(buffer, format="WEBP", **WEBP_OPTIONS)
    return "data:image/webp;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def viewer_image(image: str, model: str, original: Tensor, decoded: Sequence[Tensor],
                 rows: Sequence[dict]) -> ViewerImage:
    """Embed ``original`` and its decodings; ``rows`` are the sweep's rows for them (β, bpp, PSNR)."""
    if len(decoded) != len(rows):
        raise ValueError(f"{len(decoded)} decoded images but {len(rows)} rows")
    entries = sorted(
        ((float(row["beta"]), data_uri(out), float(row["bpp"]), float(row["psnr"])) for out, row in zip(decoded, rows)),
        key=lambda entry: entry[0],
    )
    return ViewerImage(image, model, data_uri(original), entries)


_STYLE = """body{font-family:sans-serif;margin:1em;background:#fafafa}
.pair{display:flex;gap:8px;flex-wrap:wrap;margin-bottom:1.5em}
figure{margin:0}figcaption{font-size:small;color:#333}img{max-width:48vw;height:auto;image-rendering:pixelated}
#controls{position:sticky;top:0;background:#fafafa;padding:.5em 0}"""

_SCRIPT = """const slider=document.getElementById('beta');
const betas=JSON.parse(slider.dataset.betas);
function show(){const i=slider.value;
document.getElementById('beta-value').textContent=betas[i];
for(const f of document.querySelectorAll('figure.decoded')){f.hidden=f.dataset.betaIndex!==i;}}
slider.addEventListener('input',show);show();"""


def _psnr_text(value: float) -> str:
    return "∞ dB" if math.isinf(value) else f"{value:.2f} dB"


def render(entries: Sequence[ViewerImage], title: str = "multirealism: decoded images by β") -> str:
    """The HTML page: one global β slider (index into the sorted β list) over every image."""
    if not entries:
        raise ValueError("the viewer needs at least one decoded image")
    betas = [beta for beta, _, _, _ in entries[0].decoded]
    if any([beta for beta, _, _, _ in entry.decoded] != betas for entry in entries):
        raise ValueError("every image in the viewer must be decoded at the same β values")
    beta_json = html.escape("[" + ",".join(f"{b:g}" for b in betas) + "]")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        '<div id="controls"><label for="beta">β = <span id="beta-value"></span></label> '
        f'<input type="range" id="beta" min="0" max="{len(betas) - 1}" step="1" value="0" data-betas="{beta_json}">'
        "</div>",
    ]
    for entry in entries:
        name = html.escape(f"{entry.image} ({entry.model})")
        parts.append(f'<h2>{name}</h2><div class="pair">')
        parts.append(f'<figure class="original"><img src="{entry.original}" alt="{name} original">'
                     "<figcaption>original</figcaption></figure>")
        for index, (beta, uri, bpp, value) in enumerate(entry.decoded):
            parts.append(
                f'<figure class="decoded" data-beta-index="{index}" data-beta="{beta:g}">'
                f'<img src="{uri}" alt="{name} β={beta:g}">'
                f"<figcaption>β={beta:g} · {bpp:.4f} bpp · PSNR {_psnr_text(value)}</figcaption></figure>"
            )
        parts.append("</div>")
    parts.append(f"<script>{_SCRIPT}</script></body></html>")
    return "\n".join(parts)


def write_viewer(entries: Sequence[ViewerImage], path: str) -> str:
    """Write :func:`render`'s page to ``path``; returns the path."""
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(render(entries))
    return path
