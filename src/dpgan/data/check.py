"""`dpgan check-data`: find what is wrong with a dataset before a long run, not hours into it.

A full scan opens every image and label: pairs found, files without a partner, label ids out
of range (or colours not in the table), image/label size mismatches, unreadable files (the
first few paths of each) and how many pixels each class covers. `dpgan train` runs the quick
variant (pairing of every file, full checks on ~32 of them) at start-up and refuses a broken
dataset with the same report (`check_before_training`).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dpgan.data.info import DatasetInfo
from dpgan.data.io import (
    LabelValueError,
    Pair,
    decode_label,
    describe_out_of_range,
    label_encoding_for,
    load_label_file,
    out_of_range_ids,
    probe_image,
)
from dpgan.data.registry import build_dataset, dataset_info, find_pairs, has_split
from dpgan.data.settings import DataSettings
from dpgan.errors import DataError, DPGANError

QUICK_SAMPLE = 32


@dataclass
class Findings:
    """How often one kind of problem occurred, and the first few occurrences."""

    count: int = 0
    examples: list[str] = field(default_factory=list)

    def add(self, text: str, limit: int) -> None:
        self.count += 1
        if len(self.examples) < limit:
            self.examples.append(text)


@dataclass
class CheckReport:
    dataset: str
    split: str
    root: str | None
    full: bool
    info: DatasetInfo | None = None
    pairs_found: int = 0
    files_checked: int = 0
    error: str | None = None  # the split could not even be listed
    missing_partners: Findings = field(default_factory=Findings)
    out_of_range: Findings = field(default_factory=Findings)
    size_mismatches: Findings = field(default_factory=Findings)
    unreadable: Findings = field(default_factory=Findings)
    class_pixels: list[int] = field(default_factory=list)
    class_files: list[int] = field(default_factory=list)

    def _rows(self) -> list[tuple[str, Findings]]:
        return [("missing partners", self.missing_partners), ("label ids out of range", self.out_of_range),
                ("size mismatches", self.size_mismatches), ("unreadable files", self.unreadable)]

    @property
    def ok(self) -> bool:
        return self.error is None and self.pairs_found > 0 and all(f.count == 0 for _, f in self._rows())

    def format(self) -> str:
        scan = "full scan" if self.full else f"quick check: pairing + {self.files_checked} files"
        named = f" ({self.info.name})" if self.info is not None and self.info.name != self.dataset else ""
        where = f", root {self.root}" if self.root else ""
        lines = [f"dataset {self.dataset}{named}, split {self.split} ({scan}){where}"]
        if self.error is not None:
            return "\n".join([*lines, f"  ERROR: {self.error}", "  -> FAILED"])
        lines.append(f"  {'pairs found':<24}{self.pairs_found:>9}   ({self.files_checked} checked)")
        for title, found in self._rows():
            lines.append(f"  {title:<24}{found.count:>9}")
            lines += [f"      {e}" for e in found.examples]
            if found.count > len(found.examples):
                lines.append(f"      ... and {found.count - len(found.examples)} more")
        if self.pairs_found == 0:
            lines.append("  no image/label pairs found")
        lines += self._frequency_table()
        lines.append("  -> OK" if self.ok else "  -> FAILED")
        return "\n".join(lines)

    def _frequency_table(self) -> list[str]:
        if self.info is None or not self.class_pixels or sum(self.class_pixels) == 0:
            return []
        total = sum(self.class_pixels)
        out = [f"  class frequency over the {self.files_checked} label maps checked "
               f"(* = don't-care id):", f"  {'id':>5}  {'name':<24}{'pixels':>14}{'%':>9}{'maps':>8}"]
        absent = []
        for i, (px, nf) in enumerate(zip(self.class_pixels, self.class_files)):
            if px == 0:
                absent.append(i)
                continue
            name = self.info.class_names[i][:22] + (" *" if i == self.info.ignore_index else "")
            out.append(f"  {i:>5}  {name:<24}{px:>14,}{100 * px / total:>8.2f}%{nf:>8}")
        if absent:
            shown = ", ".join(str(i) for i in absent[:40]) + (" ..." if len(absent) > 40 else "")
            out.append(f"  never seen: {len(absent)} of {len(self.class_pixels)} classes (ids {shown})")
        return out

    def raise_if_failed(self) -> None:
        if not self.ok:
            raise DataError(
                f"dataset {self.dataset} (split {self.split}) failed its check; fix it or run "
                f"`dpgan check-data` for a full scan:\n{self.format()}"
            )


@dataclass
class _FileResult:
    problems: list[tuple[str, str]] = field(default_factory=list)  # (kind, text)
    pixels: np.ndarray | None = None


def _check_pair(pair: Pair, info: DatasetInfo, encoding: str) -> _FileResult:
    image_path, label_path = pair
    result, size, ids = _FileResult(), None, None
    try:
        size = probe_image(image_path)
    except DataError as exc:
        result.problems.append(("unreadable", str(exc)))
    try:
        raw = load_label_file(label_path)
        ids = decode_label(raw, info, label_path, encoding=encoding, check_range=False)
    except LabelValueError as exc:  # a colour outside the colour table
        result.problems.append(("out_of_range", str(exc)))
    except DataError as exc:
        result.problems.append(("unreadable", str(exc)))
    if ids is None:
        return result
    bad = out_of_range_ids(ids, info.num_classes)
    if bad:
        result.problems.append(("out_of_range", describe_out_of_range(label_path, bad, info, encoding)))
    if size is not None and (ids.shape[1], ids.shape[0]) != size:
        result.problems.append(("size", f"{label_path}: label is {ids.shape[1]}x{ids.shape[0]} but its image "
                                        f"{image_path.name} is {size[0]}x{size[1]} (WxH)"))
    flat = ids.ravel().astype(np.int64)
    result.pixels = np.bincount(flat[flat < info.num_classes], minlength=info.num_classes)
    return result


def _sample(n: int, k: int) -> list[int]:
    if n <= k:
        return list(range(n))
    return sorted({int(round(x)) for x in np.linspace(0, n - 1, k)})


def _progress(iterable, total: int, enabled: bool, desc: str):
    from tqdm import tqdm

    return tqdm(iterable, total=total, disable=not enabled, desc=desc, unit="file")


def _check_items(report: CheckReport, dataset: Any, full: bool, limit: int, progress: bool) -> None:
    """For datasets without files (the in-memory synthetic streets): check the items."""
    info = report.info
    assert info is not None
    report.pairs_found = len(dataset)
    indices = range(len(dataset)) if full else _sample(len(dataset), QUICK_SAMPLE)
    for i in _progress(indices, len(indices), progress, f"check {report.split}"):
        try:
            item = dataset[i]
        except DataError as exc:
            report.unreadable.add(str(exc), limit)
            continue
        label = item["label"].numpy()
        report.files_checked += 1
        bad = out_of_range_ids(label, info.num_classes)
        if bad or label.min(initial=0) < 0:
            report.out_of_range.add(f"item {i} ({item.get('name', i)}): ids {bad} out of range", limit)
        if tuple(item["image"].shape[-2:]) != label.shape:
            shapes = f"image {tuple(item['image'].shape)} vs label {label.shape}"
            report.size_mismatches.add(f"item {i}: {shapes}", limit)
        _add_counts(report, np.bincount(label.ravel()[label.ravel() >= 0], minlength=info.num_classes))


def _add_counts(report: CheckReport, pixels: np.ndarray) -> None:
    n = len(report.class_pixels)
    pixels = pixels[:n]
    report.class_pixels = [a + int(b) for a, b in zip(report.class_pixels, pixels)]
    report.class_files = [a + int(b > 0) for a, b in zip(report.class_files, pixels)]


def check_dataset(
    dataset_or_cfg: DataSettings | Any,
    split: str = "train",
    *,
    full: bool = True,
    max_examples: int = 5,
    progress: bool = True,
    num_threads: int = 4,
) -> CheckReport:
    """Scan one split of a configured dataset (or of a dataset object) and report problems."""
    is_cfg = not hasattr(dataset_or_cfg, "info")  # settings, not a dataset (which describes itself)
    name = dataset_or_cfg.dataset if is_cfg else getattr(getattr(dataset_or_cfg, "info", None), "name", "?")
    root = dataset_or_cfg.root if is_cfg else getattr(dataset_or_cfg, "root", None)
    report = CheckReport(name, split, None if root is None else str(root), full)
    files: list[Pair] | None
    try:
        if is_cfg:
            report.info = dataset_info(dataset_or_cfg)
            pairing = find_pairs(dataset_or_cfg, split)
            encoding = label_encoding_for(report.info)
            dataset = build_dataset(dataset_or_cfg, split, train=False) if pairing is None else None
            files = None if pairing is None else pairing.pairs
            if pairing is not None:
                for p in pairing.images_without_label:
                    report.missing_partners.add(f"{p}: image without a label in {pairing.label_dir}",
                                                max_examples)
                for p in pairing.labels_without_image:
                    report.missing_partners.add(f"{p}: label without an image in {pairing.image_dir}",
                                                max_examples)
        else:
            dataset = dataset_or_cfg
            report.info = dataset.info
            files = getattr(dataset, "files", None) or None
            encoding = getattr(dataset, "label_encoding", None) or label_encoding_for(report.info)
    except DPGANError as exc:
        report.error = str(exc)
        return report
    info = report.info
    report.class_pixels = [0] * info.num_classes
    report.class_files = [0] * info.num_classes
    if files is None:
        _check_items(report, dataset, full, max_examples, progress)
        return report
    report.pairs_found = len(files)
    chosen = [files[i] for i in (range(len(files)) if full else _sample(len(files), QUICK_SAMPLE))]
    kinds = {"unreadable": report.unreadable, "out_of_range": report.out_of_range,
             "size": report.size_mismatches}
    with ThreadPoolExecutor(max_workers=max(1, num_threads)) as pool:
        results = pool.map(lambda pair: _check_pair(pair, info, encoding), chosen)
        for result in _progress(results, len(chosen), progress, f"check {split}"):
            report.files_checked += 1
            for kind, text in result.problems:
                kinds[kind].add(text, max_examples)
            if result.pixels is not None:
                _add_counts(report, result.pixels)
    return report


def check_before_training(cfg: DataSettings, *, progress: bool = False) -> list[CheckReport]:
    """Quick checks of the train split (and val where there is one); DataError if one fails."""
    reports = [check_dataset(cfg, "train", full=False, progress=progress)]
    try:
        if has_split(cfg, "val"):
            reports.append(check_dataset(cfg, "val", full=False, progress=progress))
    except DPGANError:
        pass  # the train report already says what is wrong with the folder
    for report in reports:
        report.raise_if_failed()
    return reports
