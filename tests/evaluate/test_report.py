"""Reports are written, self-contained and strict JSON; `compare` gives one row per run."""

import argparse
import base64
import io
import json
import re

import numpy as np
import pytest
from PIL import Image

from dpgan.errors import DPGANError
from dpgan.evaluate.compare import compare_runs, comparison_rows, load_metrics
from dpgan.evaluate.report import json_safe, svg_bar_chart, write_reports
from dpgan.commands.evaluate import register

NAN = float("nan")


def fake_result(name="synthetic-streets", fid=None, miou=0.4, segmenter="seg.pt", step=800, generator="dp"):
    metrics = {"miou": miou, "obj_miou": 0.2, "pixel_accuracy": 0.7, "refseg_fd": 1.5}
    if fid is not None:
        metrics["fid"], metrics["kid"] = fid, 0.01
    return {
        "format": "dpgan-eval", "version": 1, "dataset": "synthetic-streets",
        "run": {"name": name, "step": step, "generator": generator, "discriminator": "dp"},
        "protocol": {"num_images": 200, "seed": 0, "split": "val", "resolution": [64, 128]},
        "networks": {"inception": None, "reference_segmenter": {"weights": segmenter, "feature_dims": 128},
                     "segmenter": {"name": "reference U-Net", "published": False, "weights": segmenter,
                                   "num_classes": 3, "miou_policy": "drn", "object_classes": ["car"]}},
        "metrics": metrics,
        "real": {"miou": 0.85, "obj_miou": 0.7, "pixel_accuracy": 0.98},
        "per_class_iou": {"classes": ["sky", "road", "car"], "generated": [0.9, NAN, 0.1], "real": [1.0, NAN, 0.7]},
        "iou_by_size": {"bins": ["<1%", ">=1%"], "edges": [0.01], "definition": "pooled per bin",
                        "generated": {"iou": [0.05, 0.5], "instances": [10, 3]},
                        "real": {"iou": [0.6, NAN], "instances": [10, 3]}},
        "notes": [],
    }  # fmt: skip


def test_reports_are_written_and_self_contained(tmp_path):
    examples = np.zeros((20, 30, 3), dtype=np.uint8)
    examples[:, :10] = 255
    paths = write_reports(fake_result(), tmp_path, examples)
    for key in ("metrics", "html", "markdown", "examples"):
        assert paths[key].is_file()

    def no_nan(text):
        raise AssertionError(f"non-standard JSON constant {text}")

    saved = json.loads(paths["metrics"].read_text(), parse_constant=no_nan)
    assert saved["per_class_iou"]["generated"] == [0.9, None, 0.1]

    page = paths["html"].read_text()
    without_data = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", page)
    assert "http" not in without_data.lower() and "//" not in without_data, "the report must not load anything"
    assert "<script" not in page and "<link" not in page and "href=" not in page
    assert all(src.startswith("data:") for src in re.findall(r"src='([^']*)'", page))
    assert page.count("<svg") == 2  # per-class IoU and IoU by object size
    embedded = re.search(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page).group(1)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(base64.b64decode(embedded)))), examples)
    assert "real images (ceiling)" in page and "85.0" in page and "RefSeg-FD" in page

    md = paths["markdown"].read_text()
    assert "| real images (ceiling) | \u2013 | \u2013 | 85.0 | 70.0 | 98.0 | \u2013 |" in md
    assert "| car | 10.0 | 70.0 |" in md and "| road | \u2013 | \u2013 |" in md
    assert "![examples](examples.png)" in md


def test_bar_lengths_follow_values():
    svg = svg_bar_chart(["a", "b", "c"], {"x": [0.25, 1.0, None]}, width=640)
    widths = [float(w) for w in re.findall(r'<rect x="150" y="\d+" width="([\d.]+)" height="11"', svg)]
    assert widths[1] == pytest.approx(4 * widths[0]) and len(widths) == 2
    assert "n/a" in svg


def test_json_safe():
    assert json_safe({"a": [NAN, np.float32(0.5), np.int64(3)], "b": float("inf")}) == {"a": [None, 0.5, 3], "b": None}


def _write_run(root, name, **kwargs):
    (root / name / "eval").mkdir(parents=True)
    (root / name / "eval" / "metrics.json").write_text(json.dumps(json_safe(fake_result(name=name, **kwargs))))
    return root / name


def test_compare_has_a_row_per_run_and_marks_the_best(tmp_path):
    runs = [_write_run(tmp_path, "oa-oa", miou=0.3, fid=60.0, generator="oa"),
            _write_run(tmp_path, "dp-dp", miou=0.5, fid=44.0),
            _write_run(tmp_path, "dp-oa", miou=0.4, fid=50.0)]
    md = compare_runs(runs, tmp_path / "table.html")
    rows = [line for line in md.splitlines() if line.startswith("| ")]
    assert len(rows) == 1 + 3 + 1  # header, one per run, ceiling
    assert [r.split("|")[1].strip() for r in rows[1:4]] == ["oa-oa", "dp-dp", "dp-oa"]
    assert "44.00*" in rows[2] and "50.0*" in rows[2] and "60.00*" not in rows[1]
    assert rows[4].startswith("| real images (ceiling)")
    page = (tmp_path / "table.html").read_text()
    assert page.count("<tr>") == 5 and "http" not in page


def test_compare_warns_when_runs_were_judged_differently(tmp_path):
    a = load_metrics(_write_run(tmp_path, "a", segmenter="one.pt"))
    b = load_metrics(_write_run(tmp_path, "b", segmenter="other.pt"))
    _, rows, notes = comparison_rows([a, b])
    assert [name for name, _ in rows] == ["a", "b"]  # no ceiling row: whose would it be?
    assert any("not judged alike" in n for n in notes)


def test_compare_errors_and_command(tmp_path, capsys):
    with pytest.raises(DPGANError, match="dpgan evaluate"):
        load_metrics(tmp_path / "never-evaluated")
    run = _write_run(tmp_path, "r1")
    with pytest.raises(DPGANError, match=r"\.md or \.html"):
        compare_runs([run], tmp_path / "table.txt")
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["compare", str(run), str(run / "eval" / "metrics.json"), "--out", str(tmp_path / "t.md")])
    assert args.func(args) == 0
    assert capsys.readouterr().out.count("| r1 |") == 2
    assert (tmp_path / "t.md").read_text().startswith("| run |")


def test_compare_labels_rows_by_run_folder_and_the_settings_that_differ(tmp_path):
    from dpgan.presets import preset

    base = preset("synthetic-streets")
    configs = {"a": base, "b": base.override(model={"generator": "oa"}, train={"seed": 7})}
    runs = []
    for folder, cfg in configs.items():
        run = tmp_path / folder  # both evaluated under the same config name
        (run / "eval").mkdir(parents=True)
        (run / "eval" / "metrics.json").write_text(json.dumps(json_safe(fake_result(name="synthetic-streets"))))
        (run / "config.json").write_text(cfg.to_json())
        runs.append(run)
    _, rows, _ = comparison_rows([load_metrics(r) for r in runs])
    assert [name for name, _ in rows[:2]] == ["a (model.generator=dp, train.seed=43)",
                                              "b (model.generator=oa, train.seed=7)"]
    # folders of the same name in different places are told apart by their paths
    (tmp_path / "x").mkdir()
    other = _write_run(tmp_path / "x", "a")
    labels = [name for name, _ in comparison_rows([load_metrics(runs[0]), load_metrics(other)])[1][:2]]
    assert labels[0].startswith(str(runs[0])) and labels[1] == str(other)
