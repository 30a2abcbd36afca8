"""Reading dataset files, with errors that name the file.

PIL answers a missing, truncated or foreign file with one of a dozen exceptions from deep
inside a decoder; someone starting a two-day run on 20,000 images needs one sentence saying
which file is bad. Every reader here turns those into `DataError`.

Label files hold class ids directly ('L', 'P', 'I' PNG modes), in one of two encodings:
"ids" (the file value is the class: Cityscapes labelIds, ADE20K, folders) or "coco-stuff"
(file values 0..181 are classes 1..182 and 255, unlabelled, becomes 0: the OASIS convention
that puts the don't-care class at index 0 for every dataset). An RGB label PNG is read through
the dataset's colour table instead (`DatasetInfo.colors`; where two classes share a colour the
lower id wins).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image

from dpgan.data.info import Color, DatasetInfo
from dpgan.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
LABEL_SUFFIXES = (".png",)
LABEL_ENCODINGS = ("ids", "coco-stuff")
COCO_UNLABELLED = 255  # the value COCO-Stuff's stuffthingmaps use for "unlabelled"


class LabelValueError(DataError):
    """A label file holds ids (or colours) outside the dataset's classes."""


# PIL's ways of saying "this is not a readable image".
_PIL_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)


def label_encoding_for(info: DatasetInfo) -> str:
    """The file encoding of a dataset's label ids; only COCO-Stuff shifts its values."""
    return "coco-stuff" if info.name == "coco-stuff" else "ids"


MAX_SIDE = 8192  # widest and tallest image or label file read, checked before decoding


def _open(path: str | Path, what: str, *, draft: bool = False) -> tuple[Image.Image, tuple[int, int]]:
    """Open and fully decode one file; return the image and its size on disk (width, height)."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: {what} file not found")
    try:
        with warnings.catch_warnings():  # Pillow's bomb warning: the size check below is stricter
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(p)
        with img:
            size = img.size  # from the header: nothing is decoded yet
            if max(size) > MAX_SIDE or size[0] * size[1] > MAX_SIDE * MAX_SIDE:
                raise DataError(f"{p}: {what} is {size[0]}x{size[1]} pixels; at most {MAX_SIDE}x{MAX_SIDE} "
                                f"are read (a larger file could exhaust memory when decoded)")
            if draft and img.format == "JPEG":
                # Decoding at 1/8 scale still reads every byte, so truncation is still caught.
                img.draft("RGB", (max(1, size[0] // 8), max(1, size[1] // 8)))
            img.load()
            return img, size
    except Image.UnidentifiedImageError:
        raise DataError(f"{p}: cannot read this {what} file (not an image format Pillow knows)") from None
    except _PIL_ERRORS as exc:
        raise DataError(f"{p}: cannot read this {what} file ({type(exc).__name__}: {exc})") from None


def load_image(path: str | Path) -> Image.Image:
    """An RGB image, decoded (a broken file fails here, not inside a worker later)."""
    img, _ = _open(path, "image")
    return img if img.mode == "RGB" else img.convert("RGB")


def probe_image(path: str | Path) -> tuple[int, int]:
    """(width, height) of an image after checking that it decodes; fast for JPEGs."""
    return _open(path, "image", draft=True)[1]


def read_image(path: str | Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB."""
    return np.asarray(load_image(path))


def load_label_file(path: str | Path) -> Image.Image:
    """A label PNG as stored (not yet decoded into class ids)."""
    return _open(path, "label")[0]


def colour_table(colors: tuple[Color, ...]) -> dict[int, int]:
    """Packed 0xRRGGBB -> class id; the lowest id wins where classes share a colour."""
    table: dict[int, int] = {}
    for i, (r, g, b) in enumerate(colors):
        table.setdefault((r << 16) | (g << 8) | b, i)
    return table


def _ids_from_colours(rgb: np.ndarray, info: DatasetInfo, path: Path) -> np.ndarray:
    packed = (rgb[..., 0].astype(np.int32) << 16) | (rgb[..., 1].astype(np.int32) << 8) | rgb[..., 2]
    uniq, inverse = np.unique(packed, return_inverse=True)
    table = colour_table(info.colors)
    unknown = [int(c) for c in uniq if int(c) not in table]
    if unknown:
        c = unknown[0]
        raise LabelValueError(
            f"{path}: colour ({c >> 16}, {(c >> 8) & 255}, {c & 255}) is not in the colour table of "
            f"dataset {info.name!r} ({len(unknown)} unknown colour(s) in this file)"
        )
    dtype = np.uint8 if info.num_classes <= 256 else np.int32
    ids = np.array([table[int(c)] for c in uniq], dtype=dtype)
    return ids[inverse.reshape(packed.shape)]


def raw_label_values(img: Image.Image, path: Path) -> np.ndarray | None:
    """The integer values of an id-coded label image, or None for a colour-coded (RGB) one."""
    mode = img.mode
    if mode in ("RGB", "RGBA"):
        return None
    if mode in ("L", "P", "I;16", "I;16L", "I;16B", "I"):
        arr = np.asarray(img)
    elif mode in ("LA", "PA"):
        arr = np.asarray(img)[..., 0]
    elif mode == "1":
        arr = np.asarray(img).astype(np.uint8)
    else:
        raise DataError(f"{path}: label PNG mode {mode!r} is not supported (use 8/16-bit ids or RGB colours)")
    if arr.dtype != np.uint8:
        if arr.size and arr.min() < 0:
            raise DataError(f"{path}: label file holds negative values")
        arr = arr.astype(np.int32)
    return arr


def decode_label(
    img: Image.Image,
    info: DatasetInfo,
    path: str | Path,
    *,
    encoding: str | None = None,
    check_range: bool = True,
) -> np.ndarray:
    """Class ids (H, W) in the label space the generator sees (uint8, or int32 when > 256 ids)."""
    path = Path(path)
    encoding = encoding or label_encoding_for(info)
    if encoding not in LABEL_ENCODINGS:
        raise ValueError(f"unknown label encoding {encoding!r}")
    raw = raw_label_values(img, path)
    if raw is None:
        ids = _ids_from_colours(np.asarray(img.convert("RGB")), info, path)
    elif encoding == "coco-stuff":
        # 0..181 -> 1..182 and 255 -> 0; other values land at 183.. and fail the range check.
        ids = np.where(raw == COCO_UNLABELLED, 0, raw.astype(np.int32) + 1)
        ids = ids.astype(np.uint8 if info.num_classes <= 256 and ids.max(initial=0) < 256 else np.int32)
    else:
        ids = raw
    if check_range:
        bad = out_of_range_ids(ids, info.num_classes)
        if bad:
            raise LabelValueError(describe_out_of_range(path, bad, info, encoding))
    return ids


def out_of_range_ids(ids: np.ndarray, num_classes: int, limit: int = 5) -> list[int]:
    """The first few distinct ids >= num_classes (empty when the map is valid)."""
    if ids.size == 0 or int(ids.max()) < num_classes:
        return []
    return [int(v) for v in np.unique(ids[ids >= num_classes])[:limit]]


def describe_out_of_range(path: Path, bad: list[int], info: DatasetInfo, encoding: str) -> str:
    if encoding == "coco-stuff":
        values = ", ".join(str(b - 1) for b in bad)
        return (f"{path}: file values {values} are not COCO-Stuff classes "
                f"(valid: 0..{info.num_classes - 2}, and {COCO_UNLABELLED} for unlabelled)")
    values = ", ".join(str(b) for b in bad)
    return (f"{path}: label ids {values} are out of range for dataset {info.name!r} with "
            f"{info.num_classes} classes (valid ids 0..{info.num_classes - 1})")


def read_label(path: str | Path, info: DatasetInfo, encoding: str | None = None) -> np.ndarray:
    """(H, W) int64 class ids of one label file, checked against the dataset's classes."""
    return decode_label(load_label_file(path), info, path, encoding=encoding).astype(np.int64)


def label_to_pil(ids: np.ndarray) -> Image.Image:
    """Ids as a PIL image whose NEAREST resize keeps every value ('L' when they fit, else 'I')."""
    if ids.dtype == np.uint8:
        return Image.fromarray(ids, mode="L")
    return Image.fromarray(ids.astype(np.int32), mode="I")


def default_palette(num_classes: int) -> tuple[Color, ...]:
    """Distinct colours for datasets without their own (the PASCAL VOC bit-interleaving scheme;
    id 0 is black). Unique for up to 256 ids; larger ids repeat it."""
    colours = []
    for i in range(num_classes):
        c, r, g, b = i % 256, 0, 0, 0
        for shift in range(7, -1, -1):
            r |= ((c >> 0) & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        colours.append((r, g, b))
    return tuple(colours)


def package_list(name: str) -> list[str]:
    """Lines of a data file shipped in dpgan/data/lists/, without comments and blank lines."""
    text = resources.files("dpgan.data").joinpath("lists", name).read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line.strip() and not line.startswith("#")]


# --- pairing image and label files by name ----------------------------------------------------

Pair = tuple[Path, Path]


@dataclass
class Pairing:
    """Image and label files matched by name, plus the files that found no partner."""

    dataset: str
    image_dir: Path
    label_dir: Path
    pairs: list[Pair] = field(default_factory=list)
    images_without_label: list[Path] = field(default_factory=list)
    labels_without_image: list[Path] = field(default_factory=list)

    def require_pairs(self, max_examples: int = 3) -> list[Pair]:
        """The pairs, or a DataError when a file has no partner or nothing was found."""
        lonely = [(self.images_without_label, "images have no label", self.label_dir),
                  (self.labels_without_image, "labels have no image", self.image_dir)]
        for files, what, other in lonely:
            if files:
                shown = ", ".join(str(p) for p in files[:max_examples])
                raise DataError(
                    f"dataset {self.dataset}: {len(files)} {what} with a matching name in {other} "
                    f"(first: {shown})"
                )
        if not self.pairs:
            raise DataError(
                f"dataset {self.dataset}: no image/label pairs found in {self.image_dir} and {self.label_dir}"
            )
        return self.pairs


def require_dir(path: Path, dataset: str, what: str) -> Path:
    if not path.is_dir():
        raise DataError(f"dataset {dataset}: folder {path} not found ({what})")
    return path


def _index(folder: Path, suffixes: tuple[str, ...], tag: str, recursive: bool) -> dict[str, Path]:
    """key -> file, where key = sub-folder / name without suffix and without `tag`."""
    found: dict[str, Path] = {}
    walker = folder.rglob("*") if recursive else folder.iterdir()
    for p in walker:
        if p.name.startswith(".") or p.suffix.lower() not in suffixes or not p.is_file():
            continue
        stem = p.stem
        if tag:
            if not stem.endswith(tag):
                continue
            stem = stem[: -len(tag)]
        key = str(p.parent.relative_to(folder) / stem)
        if key in found:
            raise DataError(f"{p}: another file in {folder} has the same name ({found[key].name})")
        found[key] = p
    return found


def pair_files(
    dataset: str,
    image_dir: Path,
    label_dir: Path,
    *,
    image_suffixes: tuple[str, ...] = IMAGE_SUFFIXES,
    label_suffixes: tuple[str, ...] = LABEL_SUFFIXES,
    image_tag: str = "",
    label_tag: str = "",
    recursive: bool = False,
) -> Pairing:
    """Match files of two folders by name (sorted); files whose stem lacks the tag are ignored
    (Cityscapes keeps *_gtFine_color.png etc. beside the *_gtFine_labelIds.png it pairs)."""
    images = _index(image_dir, image_suffixes, image_tag, recursive)
    labels = _index(label_dir, label_suffixes, label_tag, recursive)
    return Pairing(
        dataset, image_dir, label_dir,
        pairs=[(images[k], labels[k]) for k in sorted(images) if k in labels],
        images_without_label=[images[k] for k in sorted(images) if k not in labels],
        labels_without_image=[labels[k] for k in sorted(labels) if k not in images],
    )
