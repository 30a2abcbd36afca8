"""`dpgan check-data` and the start-up check: every kind of problem is found and reported."""

import argparse
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dpgan.config import DataConfig
from dpgan.commands import check_data
from dpgan.data import check
from dpgan.data.check import CheckReport, check_before_training, check_dataset
from dpgan.data.folder import FolderDataset
from dpgan.data.info import DatasetInfo
from dpgan.errors import DataError

INFO = DatasetInfo("streets", ("void", "road", "car"), ((0, 0, 0), (128, 64, 128), (0, 0, 142)), ignore_index=0)


def save(path: Path, arr: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


def make_folder(root: Path, n: int = 4, splits=("train", "val")) -> Path:
    """Label k is road with k + 1 car pixels, so the class counts are known exactly."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "classes.json").write_text(INFO.to_json())
    for split in splits:
        base = root / split if split else root
        for k in range(n):
            label = np.ones((8, 16), np.uint8)
            label.flat[: k + 1] = 2
            save(base / "images" / f"s{k}.png", np.zeros((8, 16, 3), np.uint8))
            save(base / "labels" / f"s{k}.png", label)
    return root


def cfg_for(root: Path, dataset: str = "folder") -> DataConfig:
    return DataConfig(dataset=dataset, root=str(root), height=8, width=16)


def test_clean_dataset_reports_pairs_and_class_frequencies(tmp_path):
    report = check_dataset(cfg_for(make_folder(tmp_path / "ds")), "train", progress=False)
    assert report.ok and report.pairs_found == report.files_checked == 4
    assert report.class_pixels == [0, 4 * 128 - 10, 10] and report.class_files == [0, 4, 4]
    text = report.format()
    assert "pairs found" in text and "-> OK" in text and "car" in text and "never seen: 1 of 3 classes (ids 0)" in text


def test_every_problem_is_counted_with_paths(tmp_path):
    root = make_folder(tmp_path / "ds", n=6, splits=("train",))
    t = root / "train"
    (t / "labels" / "s0.png").unlink()                                     # missing partner
    save(t / "labels" / "orphan.png", np.zeros((8, 16), np.uint8))          # missing partner
    save(t / "labels" / "s1.png", np.full((8, 16), 7, np.uint8))           # id out of range
    save(t / "labels" / "s2.png", np.ones((8, 12), np.uint8))              # size mismatch
    (t / "images" / "s3.png").write_bytes(b"not an image")                  # unreadable image
    (t / "labels" / "s4.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")  # unreadable label
    rgb = np.zeros((8, 16, 3), np.uint8)
    rgb[0, 0] = (5, 5, 5)
    save(t / "labels" / "s5.png", rgb)                                      # colour not in the table
    report = check_dataset(cfg_for(root), "train", progress=False)
    assert not report.ok and report.pairs_found == 5
    assert report.missing_partners.count == 2 and report.out_of_range.count == 2
    assert report.size_mismatches.count == 1 and report.unreadable.count == 2
    text = report.format()
    for needle in ("s0.png: image without a label", "orphan.png: label without an image",
                   "s1.png: label ids 7 are out of range", "s2.png: label is 12x8 but its image s2.png is 16x8",
                   "s3.png: cannot read this image", "s4.png: cannot read this label",
                   "s5.png: colour (5, 5, 5)", "-> FAILED"):
        assert needle in text, needle


def test_examples_are_capped_but_counts_are_not(tmp_path):
    root = make_folder(tmp_path / "ds", n=8, splits=("train",))
    for k in range(8):
        save(root / "train" / "labels" / f"s{k}.png", np.full((8, 16), 9, np.uint8))
    report = check_dataset(cfg_for(root), "train", max_examples=3, progress=False)
    assert report.out_of_range.count == 8 and len(report.out_of_range.examples) == 3
    assert "... and 5 more" in report.format()


def test_quick_mode_pairs_everything_but_opens_a_sample(tmp_path, monkeypatch):
    root = make_folder(tmp_path / "ds", n=40, splits=("train",))
    (root / "train" / "images" / "extra.png").write_bytes(b"")
    report = check_dataset(cfg_for(root), "train", full=False, progress=False)
    assert report.pairs_found == 40 and report.files_checked == check.QUICK_SAMPLE
    assert report.missing_partners.count == 1 and not report.ok


def test_structural_errors_become_a_failed_report(tmp_path):
    report = check_dataset(DataConfig(dataset="cityscapes", root=str(tmp_path)), "train", progress=False)
    assert not report.ok and f"folder {tmp_path / 'leftImg8bit' / 'train'} not found" in report.error
    assert "ERROR" in report.format()
    report = check_dataset(DataConfig(dataset="ade20k"), "val", progress=False)
    assert "needs --data-root" in report.error


def test_check_accepts_a_dataset_object(tmp_path):
    ds = FolderDataset(make_folder(tmp_path / "ds"), "val")
    report = check_dataset(ds, "val", progress=False)
    assert report.ok and report.dataset == "streets" and report.files_checked == 4


def test_startup_check_refuses_a_broken_dataset_with_the_report(tmp_path):
    root = make_folder(tmp_path / "ds")
    assert all(r.ok for r in check_before_training(cfg_for(root)))
    save(root / "val" / "labels" / "s2.png", np.ones((4, 4), np.uint8))
    with pytest.raises(DataError, match=r"(?s)dataset folder \(split val\) failed its check.*s2\.png: label is 4x4"):
        check_before_training(cfg_for(root))
    flat = make_folder(tmp_path / "flat", splits=("",))
    assert len(check_before_training(cfg_for(flat))) == 1  # no val split: only train is checked


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="dpgan")
    check_data.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_exit_codes_and_output(tmp_path, capsys):
    root = make_folder(tmp_path / "ds")
    assert _cli(["check-data", "--dataset", "folder", "--data-root", str(root), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "dataset folder (streets), split train (full scan)" in out and "split val (full scan)" in out
    save(root / "train" / "labels" / "s1.png", np.full((8, 16), 3, np.uint8))
    assert _cli(["check-data", "--dataset", "folder", "--data-root", str(root), "--split", "train",
                 "--quick", "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert "quick check" in out and "label ids 3 are out of range" in out and "split val" not in out
    flat = make_folder(tmp_path / "flat", splits=("",))
    assert _cli(["check-data", "--dataset", "folder", "--data-root", str(flat), "--no-progress"]) == 0
    assert "split val: none" in capsys.readouterr().out
    assert _cli(["check-data", "--preset", "cityscapes", "--data-root", str(tmp_path / "nowhere"),
                 "--no-progress"]) == 1
    assert "folder not found" in capsys.readouterr().out


def test_synthetic_streets_items_are_checked_in_memory(monkeypatch):
    class FakeStreets(torch.utils.data.Dataset):
        info = INFO

        def __init__(self, *, split, height, width, num_images, seed):
            self.n = num_images

        def __len__(self):
            return self.n

        def __getitem__(self, i):
            label = torch.full((4, 8), 1 if i else 5, dtype=torch.long)  # item 0 is broken
            return {"image": torch.zeros(3, 4, 8), "label": label, "name": f"scene{i}"}

    monkeypatch.setitem(sys.modules, "dpgan.data.synthetic", types.SimpleNamespace(SyntheticStreets=FakeStreets))
    report = check_dataset(DataConfig(num_val=3), "val", progress=False)
    assert isinstance(report, CheckReport) and report.pairs_found == 3 and report.files_checked == 3
    assert report.out_of_range.count == 1 and "scene0" in report.out_of_range.examples[0]
    assert report.class_pixels == [0, 64, 0]


def test_coco_stuff_check_uses_the_file_encoding(tmp_path):
    root = tmp_path / "coco"
    save(root / "images" / "val2017" / "a.jpg", np.zeros((4, 8, 3), np.uint8))
    save(root / "images" / "val2017" / "b.jpg", np.zeros((4, 8, 3), np.uint8))
    save(root / "annotations" / "val2017" / "a.png", np.array([[255] * 8, [0] * 8, [181] * 8, [0] * 8], np.uint8))
    save(root / "annotations" / "val2017" / "b.png", np.full((4, 8), 200, np.uint8))
    report = check_dataset(cfg_for(root, "coco-stuff"), "val", progress=False)
    assert report.class_pixels[0] == 8 and report.class_pixels[1] == 16 and report.class_pixels[182] == 8
    assert report.out_of_range.count == 1
    assert "b.png: file values 200 are not COCO-Stuff classes" in report.out_of_range.examples[0]
    assert "unlabeled *" in report.format()
