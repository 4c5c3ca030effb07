"""Figures of a sweep, drawn with matplotlib's object API on the Agg canvas (no display needed)."""

from __future__ import annotations

import math
import os
from typing import Dict, List, Optional, Sequence, Tuple

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import Tensor

from multirealism.evaluation.report import curves
from multirealism.evaluation.sweep import LEARNED, Row, Strip


def _save(fig: Figure, path: str) -> str:
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    return path


def rate_distortion(summary: Sequence[Row], path: str) -> str:
    """bpp–PSNR: one line per classical codec, one marker series per β for the learned codec."""
    fig = Figure(figsize=(6, 4.5))
    ax = fig.add_subplot()
    for name, rows in curves(summary).items():
        learned = rows[0]["codec"] == LEARNED
        ax.plot([r["bpp"] for r in rows], [r["psnr"] for r in rows], marker="o" if learned else ".",
                linestyle="-" if len(rows) > 1 else "none", label=name)
    ax.set_xlabel("bits per pixel")
    ax.set_ylabel("PSNR (dB, RGB, 8-bit)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    return _save(fig, path)


def distortion_realism(summary: Sequence[Row], path: str, label: str) -> Optional[str]:
    """PSNR vs FID: the learned codec's β sweep (one point per β, annotated) and the baselines.

    Returns None (and writes nothing) when no FID was computed."""
    points = [r for r in summary if not math.isnan(float(r["fid"]))]  # type: ignore[arg-type]
    if not points:
        return None
    fig = Figure(figsize=(6, 4.5))
    ax = fig.add_subplot()
    by_model: Dict[str, List[Row]] = {}
    for row in points:
        if row["codec"] == LEARNED:
            by_model.setdefault(str(row["model"]), []).append(row)
    for model, rows in by_model.items():
        rows = sorted(rows, key=lambda r: float(r["beta"]))  # type: ignore[arg-type]
        ax.plot([r["psnr"] for r in rows], [r["fid"] for r in rows], marker="o", label=f"{LEARNED} ({model})")
        for r in rows:
            ax.annotate(f"β={r['beta']:g}", (r["psnr"], r["fid"]), textcoords="offset points", xytext=(4, 4),
                        fontsize="x-small")
    for name, rows in curves([r for r in points if r["codec"] != LEARNED]).items():
        ax.plot([r["psnr"] for r in rows], [r["fid"] for r in rows], marker=".", linestyle="--", label=name)
    ax.set_xlabel("PSNR (dB)  → less distortion")
    _finish_realism_axes(ax, label, "FID  ↓ more realism", "Fréchet distance of random test features (not FID)")
    return _save(fig, path)


def realism_rate(summary: Sequence[Row], path: str, label: str) -> Optional[str]:
    """bpp–KID: one curve per β of the learned codec and per classical codec (matched-size ones
    included), with the 95 % bootstrap interval over images as error bars. None when no KID was computed."""
    points = [r for r in summary if not math.isnan(float(r["kid"]))]  # type: ignore[arg-type]
    if not points:
        return None
    fig = Figure(figsize=(6, 4.5))
    ax = fig.add_subplot()
    for name, rows in curves(points).items():
        learned = rows[0]["codec"] == LEARNED
        kid = [float(r["kid"]) for r in rows]  # type: ignore[arg-type]
        bounds = [(float(r["kid_lo"]), float(r["kid_hi"])) for r in rows]  # type: ignore[arg-type]
        low = [k - lo if math.isfinite(lo) else 0.0 for k, (lo, _) in zip(kid, bounds)]
        high = [hi - k if math.isfinite(hi) else 0.0 for k, (_, hi) in zip(kid, bounds)]
        ax.errorbar([r["bpp"] for r in rows], kid, yerr=[low, high], marker="o" if learned else ".", capsize=3,
                    linestyle="-" if learned else "--", label=name)
    ax.axhline(0.0, color="grey", linewidth=0.8)
    ax.set_xlabel("bits per pixel")
    _finish_realism_axes(ax, label, "KID  ↓ more realism (95 % interval over images)", "MMD² of random test features")
    return _save(fig, path)


def _finish_realism_axes(ax, label: str, ylabel: str, test_ylabel: str) -> None:
    """Title, grid and legend of a realism plot; ``test_ylabel`` when the features are the random test
    network's (its label says "not comparable"), so no figure calls them FID or KID."""
    ax.set_ylabel(ylabel if "not comparable" not in label else test_ylabel)
    ax.set_title(label, fontsize="small")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")


def beta_strip(strip: Strip, path: str) -> str:
    """The original crop beside the same crop decoded at increasing β."""
    panels = [("original", strip.original)] + [(f"β={beta:g}", image) for beta, image in strip.decoded]
    fig = Figure(figsize=(2.6 * len(panels), 2.9))
    for index, (title, image) in enumerate(panels, start=1):
        ax = fig.add_subplot(1, len(panels), index)
        ax.imshow(image.clamp(0, 1).permute(1, 2, 0).numpy(), interpolation="nearest")
        ax.set_title(title, fontsize="small")
        ax.set_axis_off()
    fig.suptitle(f"{strip.image} ({strip.model})", fontsize="small")
    return _save(fig, path)


CROP_LABEL_PX = 24
GRID_DPI = 100


def crop_grid(rows: Sequence[Sequence[Tuple[str, Tensor]]], path: str) -> str:
    """A grid of equal-size image crops, each shown pixel for pixel under its label.

    ``rows`` holds one list of ``(label, (3, S, S) image)`` per row, all rows the same length. The
    PNG is exactly ``columns · S`` wide and ``rows · (S + CROP_LABEL_PX)`` high: no resampling, so a
    crop in the figure is the 8-bit image that was measured.
    """
    sizes = {tuple(image.shape) for row in rows for _, image in row}
    if len(sizes) != 1 or len({len(row) for row in rows}) != 1:
        raise ValueError(f"crop_grid needs rows of equal length and crops of one size, got sizes {sorted(sizes)}")
    (_, height, width), = sizes
    cell_h = height + CROP_LABEL_PX
    fig_w, fig_h = len(rows[0]) * width, len(rows) * cell_h
    fig = Figure(figsize=(fig_w / GRID_DPI, fig_h / GRID_DPI), dpi=GRID_DPI)
    for r, row in enumerate(rows):
        for c, (label, image) in enumerate(row):
            bottom = fig_h - (r + 1) * cell_h
            ax = fig.add_axes((c * width / fig_w, bottom / fig_h, width / fig_w, height / fig_h))
            ax.imshow(image.clamp(0, 1).permute(1, 2, 0).numpy(), interpolation="nearest")
            ax.set_axis_off()
            fig.text((c + 0.5) * width / fig_w, (bottom + height + CROP_LABEL_PX / 2) / fig_h, label,
                     ha="center", va="center", fontsize=8)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=GRID_DPI)
    return path


def write_figures(summary: Sequence[Row], strip: Optional[Strip], out_dir: str,
                  realism_label: Optional[str]) -> Dict[str, str]:
    """All figures that the data allows; ``{name: path}``."""
    written = {"rate_distortion": rate_distortion(summary, os.path.join(out_dir, "rate_psnr.png"))}
    if realism_label is not None:
        plane = distortion_realism(summary, os.path.join(out_dir, "psnr_fid.png"), realism_label)
        if plane:
            written["distortion_realism"] = plane
        rate = realism_rate(summary, os.path.join(out_dir, "rate_kid.png"), realism_label)
        if rate:
            written["realism_rate"] = rate
    if strip is not None and strip.decoded:
        written["beta_strip"] = beta_strip(strip, os.path.join(out_dir, "beta_strip.png"))
    return written
