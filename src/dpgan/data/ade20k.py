"""ADE20K (SceneParsing release ADEChallengeData2016) and the ADE20K-outdoor subset.

    ROOT/images/{training,validation}/ADE_{train,val}_%08d.jpg
    ROOT/annotations/{training,validation}/ADE_{train,val}_%08d.png   (mode L, values 0..150)

151 channels: the 150 objectInfo150 classes plus 0 'other' (unlabelled), kept at index 0 as
the don't-care class (OASIS/DP-GAN; SPADE moves it to the end instead).

ADE20K-outdoor -- NOT a canonical list. SPADE, OASIS and DP-GAN report on an "outdoor"
subset of ADE20K (~10k train / ~1k val images), but no list was ever published. OASIS's
maintainer described how theirs was made (github.com/boschresearch/OASIS/issues/23): keep
the images of each full split that contain indicative outdoor classes such as sky, mountain,
earth, drop those containing obvious indoor classes such as ceiling, bed, sink, then remove a
few remaining indoor scenes by hand. dpgan implements the automatic part of that description
as a rule shipped as data (lists/ade20k_outdoor_rule.json): an image is outdoor when its
annotation PNG contains sky (3), earth (14) or mountain (17) and none of ceiling (6), bed (8),
sink (48). The hand-filtering step cannot be repeated, so numbers on this subset are close to,
but not comparable with, published ones. An explicit list takes precedence: a `file_list`
argument, or ROOT/ade20k_outdoor_train.txt / ROOT/ade20k_outdoor_val.txt, one image name
(with or without extension) per line. The rule's selection is cached in the user cache folder
($DPGAN_CACHE_DIR, else $XDG_CACHE_HOME/dpgan or ~/.cache/dpgan) since it reads every
annotation.
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path

import numpy as np

from dpgan.data.folder import PairedDataset
from dpgan.data.info import DatasetInfo
from dpgan.files import write_text_atomic
from dpgan.data.io import Pair, Pairing, decode_label, load_label_file, package_list, pair_files, require_dir
from dpgan.data.transforms import PairedTransform
from dpgan.errors import DataError

SPLIT_FOLDERS = {"train": "training", "val": "validation"}


def _info(name: str) -> DatasetInfo:
    names, colours = ["other"], [(0, 0, 0)]
    for i, line in enumerate(package_list("ade20k_objectInfo150.tsv"), start=1):
        idx, r, g, b, full = line.split("\t")
        assert int(idx) == i, "ade20k_objectInfo150.tsv must list ids 1..150 in order"
        names.append(full.split(",")[0].strip())  # the short name: 'person', not its synonyms
        colours.append((int(r), int(g), int(b)))
    return DatasetInfo(name=name, class_names=tuple(names), colors=tuple(colours), ignore_index=0)


ADE20K_INFO = _info("ade20k")
ADE20K_OUTDOOR_INFO = _info("ade20k-outdoor")
OUTDOOR_RULE: dict = json.loads(
    resources.files("dpgan.data").joinpath("lists", "ade20k_outdoor_rule.json").read_text(encoding="utf-8")
)


RELEASE_FOLDER = "ADEChallengeData2016"


def release_root(root: str | Path) -> Path:
    """The ADEChallengeData2016 folder: `root` itself, or the release folder inside it when `root`
    is the folder that holds it (where the release zip was unpacked)."""
    root = Path(root)
    inner = root / RELEASE_FOLDER
    if not (root / "images").is_dir() and (inner / "images").is_dir():
        return inner
    return root


def split_dirs(root: str | Path, split: str) -> tuple[Path, Path]:
    if split not in SPLIT_FOLDERS:
        raise DataError(f"dataset ade20k: unknown split {split!r}; use one of {tuple(SPLIT_FOLDERS)}")
    root = release_root(root)
    return root / "images" / SPLIT_FOLDERS[split], root / "annotations" / SPLIT_FOLDERS[split]


def find_pairs(root: str | Path, split: str, name: str = "ade20k") -> Pairing:
    images, labels = split_dirs(root, split)
    require_dir(images, name, "expected ADEChallengeData2016/images/{training,validation}/*.jpg")
    require_dir(labels, name, "expected ADEChallengeData2016/annotations/{training,validation}/*.png")
    return pair_files(name, images, labels)


class ADE20KDataset(PairedDataset):
    """All of ADE20K; the published preprocessing is resize 286, random crop 256 and flips in
    training, resize 256 for evaluation."""

    def __init__(
        self, root: str | Path, split: str, *, transform: PairedTransform | None = None, seed: int = 0
    ) -> None:
        self.root, self.split = Path(root), split
        super().__init__(find_pairs(root, split).require_pairs(), ADE20K_INFO,
                         transform=transform, label_encoding="ids", seed=seed)


# --- ADE20K-outdoor --------------------------------------------------------------------------

def is_outdoor(label: np.ndarray, rule: dict = OUTDOOR_RULE) -> bool:
    """The rule on one annotation (ADE20K ids): an include class present, no exclude class."""
    counts = np.bincount(label.ravel().astype(np.int64), minlength=151)
    include = [int(i) for i in rule["include_any"]]
    exclude = [int(i) for i in rule["exclude_any"]]
    return bool(counts[include].max() >= int(rule.get("min_pixels", 1)) and counts[exclude].sum() == 0)


def outdoor_list_file(root: str | Path, split: str) -> Path:
    return release_root(root) / f"ade20k_outdoor_{split}.txt"


def _names_in_list(path: Path) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read this file list ({exc})") from None
    return [Path(ln.strip()).stem for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]


def _select_listed(pairs: list[Pair], list_path: Path) -> list[Pair]:
    by_name = {img.stem: (img, lab) for img, lab in pairs}
    names = _names_in_list(list_path)
    missing = [n for n in names if n not in by_name]
    if missing:
        raise DataError(
            f"{list_path}: {len(missing)} listed images are not in the ADE20K split "
            f"(first: {', '.join(missing[:3])})"
        )
    return [by_name[n] for n in sorted(set(names))]


def _cache_dir() -> Path:
    if os.environ.get("DPGAN_CACHE_DIR"):
        return Path(os.environ["DPGAN_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "dpgan"


def _select_by_rule(pairs: list[Pair], num_threads: int = 4) -> list[Pair]:
    """Pairs whose annotation passes the rule; cached by folder, file names, sizes and rule."""
    key = hashlib.sha1(json.dumps(
        [OUTDOOR_RULE["include_any"], OUTDOOR_RULE["exclude_any"], OUTDOOR_RULE.get("min_pixels", 1),
         str(pairs[0][1].parent.resolve()) if pairs else "",
         [(lab.name, lab.stat().st_size) for _, lab in pairs]]
    ).encode()).hexdigest()[:20]
    cache = _cache_dir() / "ade20k-outdoor" / f"{key}.txt"
    by_name = {lab.name: (img, lab) for img, lab in pairs}
    if cache.is_file():
        names = cache.read_text(encoding="utf-8").split()
        if all(n in by_name for n in names):
            return [by_name[n] for n in names]

    def keep(pair: Pair) -> bool:
        lab = pair[1]
        return is_outdoor(decode_label(load_label_file(lab), ADE20K_OUTDOOR_INFO, lab, encoding="ids"))

    with ThreadPoolExecutor(max_workers=num_threads) as pool:
        flags = list(pool.map(keep, pairs))
    chosen = [p for p, f in zip(pairs, flags) if f]
    try:
        write_text_atomic(cache, "\n".join(lab.name for _, lab in chosen) + "\n", fsync=False)
    except OSError:
        pass  # a read-only home only costs the rescan next time
    return chosen


def find_outdoor_pairs(root: str | Path, split: str, file_list: str | Path | None = None) -> Pairing:
    """ADE20K pairs of the outdoor subset: from `file_list`, ROOT/ade20k_outdoor_SPLIT.txt, or
    the rule. Files without a partner are reported for the whole split."""
    base = find_pairs(root, split, name="ade20k-outdoor")
    listed = Path(file_list) if file_list is not None else outdoor_list_file(root, split)
    if file_list is not None and not listed.is_file():
        raise DataError(f"{listed}: ADE20K-outdoor file list not found")
    chosen = _select_listed(base.pairs, listed) if listed.is_file() else _select_by_rule(base.pairs)
    return Pairing(base.dataset, base.image_dir, base.label_dir, chosen,
                   base.images_without_label, base.labels_without_image)


class ADE20KOutdoorDataset(PairedDataset):
    """The outdoor subset of ADE20K (see the module docstring for what that means here)."""

    def __init__(
        self,
        root: str | Path,
        split: str,
        *,
        transform: PairedTransform | None = None,
        file_list: str | Path | None = None,
        seed: int = 0,
    ) -> None:
        self.root, self.split = Path(root), split
        pairing = find_outdoor_pairs(root, split, file_list)
        if not (pairing.pairs or pairing.images_without_label or pairing.labels_without_image):
            raise DataError(
                f"dataset ade20k-outdoor: no image of {pairing.image_dir} is selected (the split is "
                f"empty, or no annotation passes the outdoor rule)"
            )
        super().__init__(pairing.require_pairs(), ADE20K_OUTDOOR_INFO,
                         transform=transform, label_encoding="ids", seed=seed)
