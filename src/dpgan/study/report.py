"""The study's tables, plots and summary, from the runs' study_result.json files.

Every number is a mean over seeds with its sample standard deviation; a row with one seed
shows no spread and the summary says it cannot tell. "Exceeds the seed-to-seed spread" means
that the intervals mean +- std of the two rows do not overlap: |difference| > std_a + std_b.
That is a readable rule, not a significance test, and with 3 seeds it says so.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from statistics import mean, stdev
from typing import Any

from dpgan.evaluate.report import SERIES_COLOURS, svg_bar_chart
from dpgan.study.grid import Table, distinct_models, tables_of

# (key in metrics, column header, lower is better, scale for display)
METRICS = (
    ("refseg_fd", "RefSeg-FD ↓", True, 1.0),
    ("miou", "mIoU ↑", False, 100.0),
    ("obj_miou", "obj-mIoU ↑", False, 100.0),
    ("noise_diversity", "noise diversity ↑", False, 1.0),  # 0-255; real: two renderings of a map
)


def _stats(values: list[float]) -> tuple[float, float | None, int]:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    if not vals:
        return math.nan, None, 0
    return mean(vals), (stdev(vals) if len(vals) > 1 else None), len(vals)


def _num(v: float, scale: float) -> str:
    # percentages with 2 decimals; distances (scale 1) with 3 significant digits, as they span decades
    return f"{v * scale:.2f}" if scale != 1.0 else f"{v:.3g}"


def _fmt(m: float, s: float | None, scale: float) -> str:
    if not math.isfinite(m):
        return "n/a"
    return _num(m, scale) if s is None else f"{_num(m, scale)} ± {_num(s, scale)}"


def by_row(results: list[dict[str, Any]], tables: list[Table]) -> dict[str, list[dict[str, Any]]]:
    """ablation row -> the results of its model's runs (shared rows get the same runs)."""
    runs_of = distinct_models(tables)
    out: dict[str, list[dict[str, Any]]] = {}
    for table in tables:
        for name, _ in table.rows:
            out[name] = [r for r in results if r["ablation"] == runs_of[name]]
    return out


def size_bins(results: list[dict[str, Any]]) -> list[str]:
    for r in results:
        if r.get("iou_by_size"):
            return list(r["iou_by_size"]["bins"])
    return []


def row_stats(runs: list[dict[str, Any]], bins: list[str]) -> dict[str, tuple[float, float | None, int]]:
    stats = {key: _stats([r["metrics"].get(key) for r in runs]) for key, *_ in METRICS}
    for i, b in enumerate(bins):
        stats[f"size:{b}"] = _stats([
            r["iou_by_size"]["generated"]["iou"][i] for r in runs if r.get("iou_by_size")
        ])
    return stats


def markdown_tables(results: list[dict[str, Any]], tables: list[Table]) -> str:
    rows = by_row(results, tables)
    bins = size_bins(results)
    ceiling = ceiling_cells(results, bins)
    out = []
    for table in tables:
        headers = [table.column, "seeds", *(h for _, h, _, _ in METRICS), *(f"IoU {b} ↑" for b in bins)]
        out += [f"### {table.title}", "", "| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
        for name, label in table.rows:
            st = row_stats(rows[name], bins)
            cells = [label, str(len(rows[name]))]
            cells += [_fmt(st[key][0], st[key][1], scale) for key, _, _, scale in METRICS]
            cells += [_fmt(st[f"size:{b}"][0], st[f"size:{b}"][1], 100.0) for b in bins]
            out.append("| " + " | ".join(cells) + " |")
        if ceiling:
            out.append("| " + " | ".join(ceiling) + " |")
        out.append("")
    return "\n".join(out)


def ceiling_cells(results: list[dict[str, Any]], bins: list[str]) -> list[str]:
    """The segmenter on the real validation images: what a perfect generator would score."""
    real = next((r for r in results if r.get("real")), None)
    if real is None:
        return []
    cells = ["*real images*", "-"]
    for key, _, _, scale in METRICS:
        v = real["real"].get(key) if key != "refseg_fd" else None
        cells.append("-" if v is None else f"*{v * scale:.2f}*")
    sizes = (real.get("iou_by_size") or {}).get("real", {}).get("iou", [])
    cells += [f"*{v * 100:.2f}*" if v is not None and math.isfinite(v) else "n/a" for v in sizes][: len(bins)]
    return cells


def summary(results: list[dict[str, Any]], tables: list[Table]) -> list[str]:
    """One sentence per (row, metric) against the table's DP-GAN row."""
    rows = by_row(results, tables)
    bins = size_bins(results)
    lines = []
    for table in tables:
        ref = row_stats(rows[table.reference], bins)
        ref_label = dict(table.rows)[table.reference]
        for name, label in table.rows:
            if name == table.reference:
                continue
            st = row_stats(rows[name], bins)
            for key, header, lower_better, scale in METRICS:
                (m, s, n), (rm, rs, rn) = st[key], ref[key]
                metric = header.rstrip(" ↑↓")
                if not (math.isfinite(m) and math.isfinite(rm)):
                    continue
                diff = (m - rm) * scale
                if m == rm:
                    lines.append(f"- {table.key}: {label} vs {ref_label}, {metric}: identical")
                    continue
                better = (diff < 0) == lower_better
                if s is None or rs is None:
                    verdict = f"cannot tell (only {min(n, rn)} seed)"
                elif abs(m - rm) > s + rs:
                    verdict = f"exceeds the seed spread ({_num(s + rs, scale)})"
                else:
                    verdict = f"within the seed spread ({_num(s + rs, scale)})"
                shown = f"{diff:+.2f}" if scale != 1.0 else f"{diff:+.3g}"
                lines.append(f"- {table.key}: {label} vs {ref_label}, {metric}: {shown} "
                             f"({'better' if better else 'worse'} than {ref_label}), {verdict}")
    return lines


def svg_lines(series: dict[str, list[tuple[int, float]]], *, title: str, width: int = 640, height: int = 260) -> str:
    """A small line chart: x = training step, one line (mean over seeds) per series."""
    pts = [p for s in series.values() for p in s if math.isfinite(p[1])]
    left, right, top, bottom = 56, 170, 24, 30
    w, h = width - left - right, height - top - bottom
    out = [f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
           f'font-family="sans-serif" font-size="11"><text x="{left}" y="14" font-weight="bold">{html.escape(title)}</text>']
    if not pts:
        return "".join(out) + f'<text x="{left}" y="{top + 20}">no evaluations</text></svg>'
    x0, x1 = min(p[0] for p in pts), max(p[0] for p in pts)
    y0, y1 = min(p[1] for p in pts), max(p[1] for p in pts)
    x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 1e-9)

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * w

    def sy(y: float) -> float:
        return top + (1 - (y - y0) / (y1 - y0)) * h

    out.append(f'<rect x="{left}" y="{top}" width="{w}" height="{h}" fill="none" stroke="#888"/>')
    for v, anchor in ((y0, top + h), (y1, top + 8)):
        out.append(f'<text x="{left - 4}" y="{anchor}" text-anchor="end">{v:.3g}</text>')
    out.append(f'<text x="{left}" y="{top + h + 14}">{x0}</text>'
               f'<text x="{left + w}" y="{top + h + 14}" text-anchor="end">{x1} steps</text>')
    for k, (name, s) in enumerate(series.items()):
        colour = SERIES_COLOURS[k % len(SERIES_COLOURS)]
        good = [p for p in s if math.isfinite(p[1])]
        if good:
            path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in good)
            out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        out.append(f'<rect x="{left + w + 10}" y="{top + 14 * k}" width="10" height="10" fill="{colour}"/>'
                   f'<text x="{left + w + 24}" y="{top + 9 + 14 * k}">{html.escape(name)}</text>')
    return "".join(out) + "</svg>"


def history_series(runs: list[dict[str, Any]], key: str) -> list[tuple[int, float]]:
    steps: dict[int, list[float]] = {}
    for r in runs:
        for e in r.get("history", []):
            v = e.get(key)
            if v is not None and math.isfinite(v):
                steps.setdefault(int(e["step"]), []).append(float(v))
    return [(s, mean(v)) for s, v in sorted(steps.items())]


def write_report(out: Path, results: list[dict[str, Any]], grid: str, header_lines: list[str]) -> Path:
    """OUT/results.md with the tables, the summary and links to OUT/plots/*.svg."""
    tables = tables_of(grid)
    rows = by_row(results, tables)
    bins = size_bins(results)
    plots = out / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    lines = ["# Study results", "", *header_lines, "", markdown_tables(results, tables), "## Summary", ""]
    lines += summary(results, tables) or ["- no finished runs to compare yet"]
    lines += ["", "## Plots", ""]
    for table in tables:
        for key, header, _, scale in METRICS:
            name = f"{key}_vs_step_{table.key}.svg"
            series = {label: [(x, y * scale) for x, y in history_series(rows[r], key)] for r, label in table.rows}
            (plots / name).write_text(svg_lines(series, title=f"{table.title}: {header} vs training step"))
            lines.append(f"![{header} vs step, table {table.key}](plots/{name})")
        if bins:
            name = f"iou_by_size_{table.key}.svg"
            series = {label: [row_stats(rows[r], bins)[f"size:{b}"][0] for b in bins] for r, label in table.rows}
            (plots / name).write_text(svg_bar_chart(bins, series, width=720))
            lines.append(f"![IoU by object size, table {table.key}](plots/{name})")
        lines.append("")
    path = out / "results.md"
    path.write_text("\n".join(lines) + "\n")
    return path
