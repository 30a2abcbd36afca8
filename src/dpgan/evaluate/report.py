"""Evaluation reports: metrics.json, a self-contained report.html and report.md.

The HTML file carries everything inline (CSS, SVG bar charts, the example grid as a base64
PNG) so it can be mailed or attached to an issue and still open offline; no matplotlib, no
script, no external URL. The Markdown twin points at examples.png written beside it.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

# (key in metrics, column header, better direction, scale for display, decimals)
METRIC_COLUMNS: tuple[tuple[str, str, str, float, int], ...] = (
    ("fid", "FID", "min", 1.0, 2),
    ("kid", "KID x1000", "min", 1000.0, 2),
    ("miou", "mIoU", "max", 100.0, 1),
    ("obj_miou", "obj-mIoU", "max", 100.0, 1),
    ("pixel_accuracy", "pixel acc.", "max", 100.0, 1),
    ("refseg_fd", "RefSeg-FD", "min", 1.0, 3),
    ("noise_diversity", "noise diversity", "max", 1.0, 1),
)
DIRECTION = {key: direction for key, _, direction, _, _ in METRIC_COLUMNS}
_ARROW = {"min": "\u2193", "max": "\u2191"}


def json_safe(obj: Any) -> Any:
    """NaN/inf -> None and numpy scalars -> Python, so that metrics.json is strict JSON."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def fmt(value: float | None, scale: float = 1.0, decimals: int = 2) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "\u2013"
    return f"{value * scale:.{decimals}f}"


def run_label(result: dict[str, Any]) -> str:
    run = result.get("run", {})
    parts = [str(run.get("name", "run"))]
    if run.get("generator"):
        parts.append(f"G={run['generator']} D={run.get('discriminator', '?')}")
    if run.get("step") is not None:
        parts.append(f"step {run['step']}")
    return ", ".join(parts)


def summary_rows(result: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """The paper-style table: the generated images, then the real ones (the ceiling)."""
    gen, real = result.get("metrics", {}), result.get("real", {})
    cells = [fmt(gen.get(k), s, d) for k, _, _, s, d in METRIC_COLUMNS]
    ceiling = [fmt(real.get(k), s, d) if k in real else "\u2013" for k, _, _, s, d in METRIC_COLUMNS]
    return [(run_label(result), cells), ("real images (ceiling)", ceiling)]


def metric_headers() -> list[str]:
    return [f"{header} {_ARROW[direction]}" for _, header, direction, _, _ in METRIC_COLUMNS]


def protocol_lines(result: dict[str, Any]) -> list[str]:
    p, nets = result.get("protocol", {}), result.get("networks", {})
    lines = [
        f"{p.get('num_images')} {p.get('split', 'val')} label maps at {p.get('resolution')}, "
        f"EMA generator, noise of image i from seed {p.get('seed')} + i",
    ]
    seg = nets.get("segmenter")
    if seg:
        kind = "published" if seg.get("published") else "trained with dpgan train-segmenter"
        lines.append(f"segmenter: {seg['name']} ({kind}; {seg.get('weights')}); mIoU policy {seg['miou_policy']}")
    else:
        lines.append("segmenter: none given, so no mIoU")
    inc = nets.get("inception")
    lines.append(f"FID/KID: Inception {inc['weights']} (sha256 {str(inc.get('sha256'))[:12]})" if inc
                 else "FID/KID: no --inception-weights, so not computed")
    ref = nets.get("reference_segmenter")
    if ref:
        lines.append(f"RefSeg-FD: Frechet distance of the reference segmenter's pooled bottleneck features "
                     f"({ref['feature_dims']}-d; {ref['weights']}); not FID")
    lines += [f"note: {n}" for n in result.get("notes", [])]
    return lines


# ---- SVG ------------------------------------------------------------------------------------
SERIES_COLOURS = ("#3465a4", "#bbbbbb", "#cc0000", "#4e9a06", "#f57900", "#75507b")


def svg_bar_chart(
    labels: Sequence[str],
    series: dict[str, Sequence[float | None]],
    *,
    max_value: float = 1.0,
    scale: float = 100.0,
    annotations: Sequence[str] | None = None,
    bar_height: int = 12,
    width: int = 640,
) -> str:
    """Horizontal grouped bars, one group per label; missing values are drawn as 'n/a'."""
    label_w, value_w = 150, 46
    plot_w = width - label_w - value_w - 10
    group_h = bar_height * len(series) + 6
    legend_h = 20
    height = legend_h + group_h * len(labels) + 4
    out = [f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
           'font-family="sans-serif" font-size="11">']
    for k, name in enumerate(series):
        x = label_w + 120 * k
        out.append(f'<rect x="{x}" y="4" width="10" height="10" fill="{SERIES_COLOURS[k % 6]}"/>'
                   f'<text x="{x + 14}" y="13">{html.escape(name)}</text>')
    for i, label in enumerate(labels):
        y0 = legend_h + i * group_h
        text = label if annotations is None else f"{label} {annotations[i]}"
        out.append(f'<text x="{label_w - 6}" y="{y0 + group_h / 2 + 3:.1f}" text-anchor="end">'
                   f"{html.escape(text)}</text>")
        for k, values in enumerate(series.values()):
            v = values[i]
            y = y0 + 3 + k * bar_height
            if v is None or not math.isfinite(v):
                out.append(f'<text x="{label_w + 2}" y="{y + bar_height - 1}" fill="#888">n/a</text>')
                continue
            w = max(0.0, min(v / max_value, 1.0)) * plot_w
            out.append(f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_height - 1}" '
                       f'fill="{SERIES_COLOURS[k % 6]}"/>'
                       f'<text x="{label_w + w + 3:.1f}" y="{y + bar_height - 2}">{v * scale:.1f}</text>')
    out.append(f'<line x1="{label_w}" y1="{legend_h}" x2="{label_w}" y2="{height}" stroke="#444"/></svg>')
    return "".join(out)


def png_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


# ---- HTML and Markdown -------------------------------------------------------------------
CSS = (
    "body{font-family:sans-serif;max-width:980px;margin:2em auto;color:#222}"
    "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
    "td:first-child,th:first-child{text-align:left}th{background:#f0f0f0}.note{color:#555;font-size:90%}"
    "img{max-width:100%;image-rendering:pixelated}"
)


def html_table(headers: Sequence[str], rows: Sequence[tuple[str, Sequence[str]]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr><td>" + html.escape(name) + "</td>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>"
        for name, cells in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def md_table(headers: Sequence[str], rows: Sequence[tuple[str, Sequence[str]]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join([name.replace("|", "/"), *cells]) + " |" for name, cells in rows]
    return "\n".join(lines)


def _per_class(result: dict[str, Any]) -> tuple[list[str], list, list]:
    pc = result.get("per_class_iou") or {}
    return list(pc.get("classes", [])), list(pc.get("generated", [])), list(pc.get("real", []))


def render_html(result: dict[str, Any], examples_png: bytes | None = None) -> str:
    title = f"DP-GAN evaluation: {run_label(result)}"
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>"]
    parts.append(html_table(["", *metric_headers()], summary_rows(result)))
    parts.append("<ul class='note'>" + "".join(f"<li>{html.escape(s)}</li>" for s in protocol_lines(result)) + "</ul>")
    classes, gen, real = _per_class(result)
    if classes:
        parts.append("<h2>IoU per class</h2>")
        parts.append(svg_bar_chart(classes, {"generated": gen, "real (ceiling)": real}))
    sizes = result.get("iou_by_size")
    if sizes and sum(sizes["real"]["instances"]) > 0:
        parts.append("<h2>IoU by object size</h2><p class='note'>" + html.escape(sizes.get("definition", "")) + "</p>")
        counts = [f"(n={n})" for n in sizes["real"]["instances"]]
        parts.append(svg_bar_chart(sizes["bins"], {"generated": sizes["generated"]["iou"],
                                                   "real (ceiling)": sizes["real"]["iou"]}, annotations=counts))
    if examples_png is not None:
        data = base64.b64encode(examples_png).decode("ascii")
        parts.append("<h2>Examples: label | generated | real</h2>"
                     f"<img alt='label, generated and real images' src='data:image/png;base64,{data}'>")
    parts.append("</body></html>")
    return "".join(parts)


def render_markdown(result: dict[str, Any], examples_name: str | None = None) -> str:
    out = [f"# DP-GAN evaluation: {run_label(result)}", "",
           md_table(["", *metric_headers()], summary_rows(result)), ""]
    out += [f"- {s}" for s in protocol_lines(result)]
    classes, gen, real = _per_class(result)
    if classes:
        rows = [(c, [fmt(g, 100, 1), fmt(r, 100, 1)]) for c, g, r in zip(classes, gen, real)]
        out += ["", "## IoU per class", "", md_table(["class", "generated", "real (ceiling)"], rows)]
    sizes = result.get("iou_by_size")
    if sizes and sum(sizes["real"]["instances"]) > 0:
        rows = [
            (b, [fmt(g, 100, 1), fmt(r, 100, 1), str(n)])
            for b, g, r, n in zip(sizes["bins"], sizes["generated"]["iou"], sizes["real"]["iou"],
                                  sizes["real"]["instances"])
        ]
        out += ["", "## IoU by object size", "", sizes.get("definition", ""), "",
                md_table(["relative area", "generated", "real (ceiling)", "instances"], rows)]
    if examples_name:
        out += ["", "## Examples: label | generated | real", "", f"![examples]({examples_name})"]
    return "\n".join(out) + "\n"


def write_reports(result: dict[str, Any], out_dir: str | Path, examples: np.ndarray | None = None) -> dict[str, Path]:
    """metrics.json, report.html, report.md (and examples.png) in `out_dir`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"metrics": out / "metrics.json", "html": out / "report.html", "markdown": out / "report.md"}
    png = png_bytes(examples) if examples is not None else None
    if png is not None:
        paths["examples"] = out / "examples.png"
        paths["examples"].write_bytes(png)
    paths["metrics"].write_text(json.dumps(json_safe(result), indent=2, allow_nan=False) + "\n")
    paths["html"].write_text(render_html(result, png), encoding="utf-8")
    paths["markdown"].write_text(render_markdown(result, "examples.png" if png else None), encoding="utf-8")
    return paths
