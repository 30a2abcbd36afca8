"""`dpgan compare`: several evaluated runs (e.g. the paper's ablation rows) in one table.

Numbers are only comparable when the runs were judged alike: same segmenter file, same
Inception weights, same image count and seed. The table says when they were not instead of
silently mixing them.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from dpgan.errors import DPGANError
from dpgan.evaluate.report import CSS, DIRECTION, METRIC_COLUMNS, fmt, html_table, md_table, metric_headers

EXTRA_HEADERS = ("G", "D", "step")


def load_metrics(path: str | Path) -> dict[str, Any]:
    """metrics.json of a run folder (RUN/eval/metrics.json), an eval folder, or the file itself."""
    path = Path(path)
    candidates = [path] if path.is_file() else [path / "eval" / "metrics.json", path / "metrics.json"]
    for candidate in candidates:
        if candidate.is_file():
            try:
                result = json.loads(candidate.read_text())
            except json.JSONDecodeError as exc:
                raise DPGANError(f"{candidate} is not valid JSON ({exc.msg}).") from None
            if not isinstance(result, dict) or result.get("format") != "dpgan-eval":
                raise DPGANError(f"{candidate} was not written by `dpgan evaluate`.")
            result["_source"] = str(candidate)
            # the run folder: RUN for RUN/eval/metrics.json, an eval folder's parent, or the folder given
            folder = candidate.parent
            result["_run_folder"] = str(folder.parent if folder.name == "eval" and candidate.name == "metrics.json"
                                        else folder)
            return result
    raise DPGANError(f"{path}: no metrics.json found (looked for {candidates[0]}); run `dpgan evaluate --run {path}` first.")


def _judged_by(result: dict[str, Any]) -> tuple:
    nets, protocol = result.get("networks", {}), result.get("protocol", {})
    seg, inc, ref = nets.get("segmenter") or {}, nets.get("inception") or {}, nets.get("reference_segmenter") or {}
    return (seg.get("weights"), inc.get("sha256"), ref.get("weights"), protocol.get("num_images"),
            protocol.get("seed"), tuple(protocol.get("resolution") or ()), result.get("dataset"))


MAX_SETTINGS = 4  # differing settings shown in a row's label; more are counted


def _settings(result: dict[str, Any]) -> dict[str, Any] | None:
    """The run's config.json flattened to section.key -> value; None when the run folder has none."""
    folder = result.get("_run_folder")
    if folder is None:
        return None
    try:
        config = json.loads((Path(folder) / "config.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict):
        return None
    flat = {}
    for section, values in config.items():
        if isinstance(values, dict):
            flat.update({f"{section}.{k}": v for k, v in values.items()})
    return flat


def row_labels(results: list[dict[str, Any]]) -> list[str]:
    """Each run's folder (its name where that tells the runs apart, else its path), followed by the
    settings of its config.json that differ between the compared runs."""
    folders = [r.get("_run_folder") or str(r.get("run", {}).get("name", "run")) for r in results]
    names = [Path(f).name or f for f in folders]
    unique = {n: len({str(Path(f).resolve()) for f, m in zip(folders, names) if m == n}) == 1 for n in names}
    labels = [n if unique[n] else f for n, f in zip(names, folders)]
    settings = [_settings(r) for r in results]
    known = [s for s in settings if s is not None]
    if len(known) < 2:
        return labels
    differ = sorted(k for k in set().union(*known) if len({json.dumps(s.get(k), sort_keys=True) for s in known}) > 1)
    out = []
    for label, s in zip(labels, settings):
        if s is None or not differ:
            out.append(label)
            continue
        shown = [f"{k}={json.dumps(s.get(k)) if not isinstance(s.get(k), str) else s.get(k)}"
                 for k in differ[:MAX_SETTINGS]]
        if len(differ) > MAX_SETTINGS:
            shown.append(f"+{len(differ) - MAX_SETTINGS} more")
        out.append(f"{label} ({', '.join(shown)})")
    return out


def comparison_rows(results: list[dict[str, Any]]) -> tuple[list[str], list[tuple[str, list[str]]], list[str]]:
    """Headers, one row per run (best value per column marked with *), the real-image ceiling
    row when all runs share a judge, and notes."""
    if not results:
        raise DPGANError("dpgan compare needs at least one run.")
    headers = ["run", *EXTRA_HEADERS, *metric_headers()]
    best: dict[str, float] = {}
    for key, *_ in METRIC_COLUMNS:
        values = [r.get("metrics", {}).get(key) for r in results]
        values = [v for v in values if isinstance(v, (int, float))]
        if len(set(values)) > 1:  # nothing to mark when every run scores the same
            best[key] = (min if DIRECTION[key] == "min" else max)(values)
    rows = []
    for r, label in zip(results, row_labels(results)):
        run = r.get("run", {})
        cells = [str(run.get("generator", "?")), str(run.get("discriminator", "?")), str(run.get("step", "?"))]
        for key, _, _, scale, decimals in METRIC_COLUMNS:
            v = r.get("metrics", {}).get(key)
            cells.append(fmt(v, scale, decimals) + ("*" if key in best and v == best[key] else ""))
        rows.append((label, cells))
    notes = []
    same_judge = len({_judged_by(r) for r in results}) == 1
    if same_judge:
        real = results[0].get("real", {})
        if real:
            ceiling = ["", "", ""] + [fmt(real.get(k), s, d) if k in real else "\u2013" for k, _, _, s, d in METRIC_COLUMNS]
            rows.append(("real images (ceiling)", ceiling))
    else:
        notes.append("The runs were not judged alike (segmenter, Inception weights, image count, seed, resolution "
                     "or dataset differ): compare their numbers with care; no ceiling row is shown.")
    if best:
        notes.append("* best value of a column.")
    p = results[0].get("protocol", {})
    seg = (results[0].get("networks", {}).get("segmenter") or {}).get("name")
    notes.append(f"{p.get('num_images')} images per run, seed {p.get('seed')}, segmenter {seg or 'none'}.")
    return headers, rows, notes


def compare_markdown(results: list[dict[str, Any]]) -> str:
    headers, rows, notes = comparison_rows(results)
    return md_table(headers, rows) + "\n\n" + "\n".join(
        f"- {n}" for n in notes) + "\n"


def compare_html(results: list[dict[str, Any]]) -> str:
    headers, rows, notes = comparison_rows(results)
    items = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>dpgan compare</title><style>{CSS}</style>"
            f"</head><body><h1>Comparison of {len(results)} runs</h1>{html_table(headers, rows)}"
            f"<ul class='note'>{items}</ul></body></html>")


def compare_runs(paths: list[str | Path], out: str | Path | None = None) -> str:
    """Markdown table of the runs; also written to `out` (.md or .html) when given."""
    results = [load_metrics(p) for p in paths]
    markdown = compare_markdown(results)
    if out is not None:
        out = Path(out)
        if out.suffix.lower() not in (".md", ".html", ".htm"):
            raise DPGANError(f"--out {out}: the file name must end in .md or .html.")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(compare_html(results) if out.suffix.lower() != ".md" else markdown, encoding="utf-8")
    return markdown
