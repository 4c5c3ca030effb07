"""Tables and files from a sweep: per-setting means, BD-rate against an anchor, CSV and JSON.

Per-image metrics are averaged over images (PSNR too: mean of per-image dB, as Kodak/CLIC tables
do). FID/KID/C2ST are per setting over all patches; ``kid_lo``/``kid_hi`` are the 95 % bootstrap
interval over images, ``kid_diff`` (with ``kid_diff_lo``/``kid_diff_hi``) is KID minus that of the
same model and level at the lowest β, on the same resampled images (see
:mod:`multirealism.evaluation.realism_stats`). Non-finite numbers are written as ``inf``/``nan`` in
CSV and as ``null`` in JSON (which has no such values).

The sweep keeps the perceptual distance under the key ``lpips``; on output it is written under the
metric's own column name (``perceptual_column``, e.g. ``st_lpips_alex`` for ST-LPIPS), so a table
never calls a different metric "lpips".
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections import defaultdict
from typing import Dict, List, Optional, Sequence

import numpy as np

from multirealism.evaluation.bdrate import bd_rate
from multirealism.evaluation.sweep import LEARNED, ROW_FIELDS, Row, SettingKey, SweepResult, setting_key

MEAN_FIELDS = ("bpp", "bpp_estimate", "psnr", "ms_ssim", "lpips", "encode_s", "decode_s")
REALISM_FIELDS = ("fid", "kid", "kid_lo", "kid_hi", "kid_diff", "kid_diff_lo", "kid_diff_hi", "c2st")
SUMMARY_FIELDS = ("codec", "model", "beta", "quality", "images", *MEAN_FIELDS, *REALISM_FIELDS,
                  "fid_patches", "fid_features")


def summarize(result: SweepResult) -> List[Row]:
    """One row per setting: means over images plus the setting's FID/KID, in first-seen order."""
    groups: Dict[SettingKey, List[Row]] = defaultdict(list)
    for row in result.rows:
        groups[setting_key(row)].append(row)
    summary = []
    for key, rows in groups.items():
        codec, model, beta, quality = key
        entry: Row = {"codec": codec, "model": model, "beta": beta, "quality": quality, "images": len(rows)}
        for name in MEAN_FIELDS:
            entry[name] = float(np.mean([float(r[name]) for r in rows]))  # type: ignore[arg-type]
        scores = result.realism.get(key, {})
        entry.update({name: scores.get(name, math.nan) for name in REALISM_FIELDS})
        entry.update(
            fid_patches=int(scores.get("patches", 0)),
            fid_features=result.realism_label or "",
        )
        summary.append(entry)
    return summary


def series_name(row: Row) -> str:
    """Curve a summary row belongs to: the learned codec at one β, a classical codec over its quality grid,
    or a classical codec at the file sizes of one model (``--match-bytes``)."""
    if row["codec"] == LEARNED:
        return f"{LEARNED} β={row['beta']:g}"
    return f"{row['codec']} (size of {row['model']})" if row["model"] else str(row["codec"])


def curves(summary: Sequence[Row]) -> Dict[str, List[Row]]:
    """Summary rows grouped into rate curves, sorted by rate."""
    grouped: Dict[str, List[Row]] = defaultdict(list)
    for row in summary:
        grouped[series_name(row)].append(row)
    return {name: sorted(rows, key=lambda r: float(r["bpp"])) for name, rows in grouped.items()}  # type: ignore


def bd_rates(summary: Sequence[Row], anchor: str, method: str = "pchip") -> List[Dict[str, object]]:
    """BD-rate (PSNR) of every curve against ``anchor``'s curve; a reason replaces the number when
    it cannot be computed (e.g. a learned codec evaluated at a single rate)."""
    by_curve = curves(summary)
    if anchor not in by_curve:
        return [{"series": name, "anchor": anchor, "bd_rate": None, "note": f"anchor {anchor!r} was not evaluated"}
                for name in by_curve]
    base = by_curve[anchor]
    table = []
    for name, rows in by_curve.items():
        entry: Dict[str, object] = {"series": name, "anchor": anchor, "bd_rate": None, "note": ""}
        try:
            value = bd_rate([r["bpp"] for r in base], [r["psnr"] for r in base],  # type: ignore[misc]
                            [r["bpp"] for r in rows], [r["psnr"] for r in rows], method)  # type: ignore[misc]
        except ValueError as err:
            entry["note"] = str(err) if len(rows) > 1 else "one rate point (evaluate several checkpoints for a curve)"
        else:
            entry["bd_rate"] = value
            if math.isnan(value):
                entry["note"] = "PSNR ranges do not overlap"
        table.append(entry)
    return table


def realism_tradeoff(summary: Sequence[Row]) -> List[Dict[str, object]]:
    """What one bitstream trades as β rises: for every learned model and rate, each β's change from the
    lowest β evaluated — PSNR in dB, the perceptual distance in % (negative: closer), and both KIDs."""
    groups: Dict[tuple, List[Row]] = defaultdict(list)
    for row in summary:
        if row["codec"] == LEARNED:
            groups[(row["model"], row["quality"])].append(row)
    table = []
    for (model, quality), rows in groups.items():
        base, *others = sorted(rows, key=lambda r: float(r["beta"]))  # type: ignore[arg-type]
        base_lpips = float(base["lpips"])  # type: ignore[arg-type]
        for row in others:
            lpips = float(row["lpips"])  # type: ignore[arg-type]
            table.append({
                "model": model, "quality": quality, "beta_from": base["beta"], "beta": row["beta"],
                "psnr_change_db": float(row["psnr"]) - float(base["psnr"]),  # type: ignore[arg-type]
                "lpips_change_pct": 100.0 * (lpips / base_lpips - 1.0) if base_lpips > 0 else math.nan,
                "kid_from": base["kid"], "kid": row["kid"], "kid_diff": row.get("kid_diff", math.nan),
                "kid_diff_lo": row.get("kid_diff_lo", math.nan), "kid_diff_hi": row.get("kid_diff_hi", math.nan),
            })
    return table


def format_tradeoff_table(table: Sequence[Dict[str, object]], perceptual_column: str = "lpips") -> str:
    """Aligned plain-text view of :func:`realism_tradeoff`."""
    lines = ["Realism trade-off (one bitstream; change from the lowest β):"]
    for e in table:
        change = e["lpips_change_pct"]
        perceptual = f"{change:+.1f} %" if isinstance(change, float) and math.isfinite(change) else "n/a"
        lines.append(f"  {e['model']:<12} q={_fmt(e['quality'], 2):<5} β {_fmt(e['beta_from'], 2)} -> "
                     f"{_fmt(e['beta'], 2):<5}  PSNR {e['psnr_change_db']:+.2f} dB  {perceptual_column} {perceptual}"
                     f"  KID {_fmt(e['kid_from'], 4)} -> {_fmt(e['kid'], 4)}"
                     f"  (difference {_interval(e.get('kid_diff'), e.get('kid_diff_lo'), e.get('kid_diff_hi'))})")
    return "\n".join(lines)


def with_perceptual_column(rows: Sequence[Row], column: str, key: str = "lpips") -> List[Row]:
    """``rows`` with their ``key`` renamed to ``column`` (the perceptual metric's true name)."""
    return [{(column if name == key else name): value for name, value in row.items()} for row in rows]


def _perceptual_fields(fields: Sequence[str], column: str) -> List[str]:
    return [column if name == "lpips" else name for name in fields]


def _fmt(value: object, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def _interval(value: object, low: object, high: object, digits: int = 4) -> str:
    """``value [low, high]``, or ``-`` when not measured."""
    if not isinstance(value, float) or math.isnan(value):
        return "-"
    return f"{value:.{digits}f} [{_fmt(low, digits)}, {_fmt(high, digits)}]"


def format_realism_table(summary: Sequence[Row]) -> str:
    """The realism view of every setting that has a KID: bpp, PSNR, KID with its 95 % interval over
    images, the paired KID difference from the same level's lowest β, C2ST accuracy and FID."""
    measured = [r for r in summary if isinstance(r.get("kid"), float) and not math.isnan(r["kid"])]  # type: ignore[arg-type]
    if not measured:
        return "Realism: not measured"
    header = ["setting", "quality", "bpp", "psnr", "KID [95 % interval]", "KID - KID(lowest β) [95 %]", "C2ST", "FID"]
    cells = [header]
    for r in measured:
        cells.append([series_name(r), _fmt(r["quality"], 2), _fmt(r["bpp"], 4), _fmt(r["psnr"], 2),
                      _interval(r["kid"], r["kid_lo"], r["kid_hi"]),
                      _interval(r["kid_diff"], r["kid_diff_lo"], r["kid_diff_hi"]),
                      _fmt(r["c2st"], 3), _fmt(r["fid"], 1)])
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_table(summary: Sequence[Row], perceptual_column: str = "lpips") -> str:
    """Aligned plain-text table of the per-setting means (the perceptual column headed ``perceptual_column``)."""
    columns = [("codec", 0), ("model", 0), ("beta", 2), ("quality", 0), ("images", 0), ("bpp", 4), ("bpp_estimate", 4), ("psnr", 2),
               ("ms_ssim", 4), ("lpips", 4), ("fid", 2), ("kid", 4), ("c2st", 3), ("encode_s", 3), ("decode_s", 3)]
    cells = [_perceptual_fields([name for name, _ in columns], perceptual_column)]
    cells += [[_fmt(row[name], digits) for name, digits in columns] for row in summary]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_bd_table(table: Sequence[Dict[str, object]], method: str) -> str:
    lines = [f"BD-rate (PSNR, {method}) against {table[0]['anchor']}:" if table else "BD-rate: nothing to compare"]
    for entry in table:
        value = entry["bd_rate"]
        text = f"{value:+.2f} %" if isinstance(value, float) and not math.isnan(value) else "n/a"
        note = f"  ({entry['note']})" if entry["note"] else ""
        lines.append(f"  {entry['series']:<28} {text}{note}")
    return "\n".join(lines)


def _csv_value(value: object) -> object:
    return "" if value is None else value


def write_csv(rows: Sequence[Row], path: str, fields: Sequence[str]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(fields))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _csv_value(row.get(k)) for k in fields})


def _json_safe(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def write_outputs(out_dir: str, result: SweepResult, summary: Sequence[Row], bd_table: Sequence[Dict[str, object]],
                  tradeoff: Sequence[Dict[str, object]], metadata: Dict[str, object],
                  perceptual_column: str = "lpips") -> Dict[str, str]:
    """Write ``rows.csv``, ``summary.csv`` and ``results.json`` (everything, the realism trade-off of
    :func:`realism_tradeoff` included) into ``out_dir``, the perceptual distance under ``perceptual_column``."""
    os.makedirs(out_dir, exist_ok=True)
    paths = {
        "rows_csv": os.path.join(out_dir, "rows.csv"),
        "summary_csv": os.path.join(out_dir, "summary.csv"),
        "json": os.path.join(out_dir, "results.json"),
    }
    tradeoff = with_perceptual_column(tradeoff, f"{perceptual_column}_change_pct", key="lpips_change_pct")
    rows = with_perceptual_column(result.rows, perceptual_column)
    summary = with_perceptual_column(summary, perceptual_column)
    write_csv(rows, paths["rows_csv"], _perceptual_fields(ROW_FIELDS, perceptual_column))
    write_csv(summary, paths["summary_csv"], _perceptual_fields(SUMMARY_FIELDS, perceptual_column))
    document = {
        "metadata": metadata,
        "rows": rows,
        "summary": summary,
        "bd_rate": list(bd_table),
        "realism_tradeoff": tradeoff,
    }
    with open(paths["json"], "w") as handle:
        json.dump(_json_safe(document), handle, indent=2, allow_nan=False)
    return paths


def realism_note(result: SweepResult) -> Optional[str]:
    """How FID/KID were made (extractor, patch counts, excluded images), for the terminal and JSON."""
    if result.realism_label is None:
        return None
    size = result.patch_size
    note = (f"{result.realism_label}; {result.reference_patches} reference patches of {size} px (grid + grid "
            f"shifted by {size // 2} px); KID intervals: 95 % bootstrap over images; C2ST: leave-one-image-out "
            "logistic regression accuracy (0.5 = indistinguishable)")
    if result.too_small_for_patches:
        names = ", ".join(result.too_small_for_patches)
        note += (f"; {len(result.too_small_for_patches)} image(s) smaller than {size}x{size} excluded from "
                 f"FID/KID: {names}")
    return note
