"""Property-based tests of the data path: whatever bytes sit in an image or label file, reading
it ends in a valid result or one DataError that names the file; never a hang, never an error
from deep inside PIL, numpy or PyTorch.

Every property is checked on bytes hypothesis invents (random, truncated, bit-flipped, odd
modes, zero-size and huge headers, ids out of range) through the public readers and through a
dataset with its training transform, and once through a DataLoader worker.
"""

from __future__ import annotations

import io
import itertools
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from dpgan.data.folder import PairedDataset
from dpgan.data.info import DatasetInfo
from dpgan.data.io import LabelValueError, load_image, probe_image, read_label
from dpgan.data.transforms import PairedTransform
from dpgan.errors import DataError

INFO = DatasetInfo("streets", ("void", "road", "car", "tree"),
                   ((0, 0, 0), (128, 64, 128), (0, 0, 142), (107, 142, 35)), ignore_index=0)
FUZZ = settings(max_examples=40, deadline=5000, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                      HealthCheck.too_slow])
_names = itertools.count()


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def _write(folder: Path, data: bytes, suffix: str) -> Path:
    path = folder / f"case{next(_names):05d}{suffix}"
    path.write_bytes(data)
    return path


def _encode(arr: np.ndarray, mode: str | None, fmt: str) -> bytes:
    buf = io.BytesIO()
    img = Image.fromarray(arr) if mode is None else Image.fromarray(arr).convert(mode)
    img.save(buf, format=fmt)
    return buf.getvalue()


def _only_data_errors(fn, path: Path):
    """Run a reader: a result, or a DataError whose message names the file. Anything else fails."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PIL's DecompressionBombWarning for big headers
        try:
            return fn(path)
        except DataError as exc:
            assert path.name in str(exc), f"error does not name the file: {exc}"
            assert "\n" not in str(exc), f"error is not one line: {exc!r}"
            return None


def _png(width: int, height: int, *, bit_depth: int = 8, colour_type: int = 0, payload: bytes = b"") -> bytes:
    """A PNG file whose header says width x height, with `payload` as (too little) pixel data."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(payload)) + chunk(b"IEND", b"")


# --- strategies -------------------------------------------------------------------------------------

sizes = st.tuples(st.integers(1, 24), st.integers(1, 24))
image_modes = st.sampled_from(["RGB", "RGBA", "L", "LA", "P", "1", "I;16", "I"])


@st.composite
def image_bytes(draw) -> tuple[bytes, str]:
    h, w = draw(sizes)
    fmt = draw(st.sampled_from(["PNG", "JPEG"]))
    arr = np.frombuffer(draw(st.binary(min_size=h * w * 3, max_size=h * w * 3)), np.uint8).reshape(h, w, 3)
    mode = draw(image_modes if fmt == "PNG" else st.sampled_from(["RGB", "L", "CMYK"]))
    if mode in ("I;16", "I"):
        data = _encode(arr[..., 0].astype(np.uint16) * 257, None, fmt)
    else:
        data = _encode(arr, mode, fmt)
    return data, ".png" if fmt == "PNG" else ".jpg"


@st.composite
def corrupted(draw, valid: st.SearchStrategy) -> tuple[bytes, str]:
    data, suffix = draw(valid)
    how = draw(st.sampled_from(["truncate", "flip", "splice", "none"]))
    buf = bytearray(data)
    if how == "truncate":
        buf = buf[: draw(st.integers(0, len(buf)))]
    elif how == "flip":
        for _ in range(draw(st.integers(1, 8))):
            i = draw(st.integers(0, len(buf) - 1))
            buf[i] ^= 1 << draw(st.integers(0, 7))
    elif how == "splice":
        i = draw(st.integers(0, len(buf)))
        buf[i:i] = draw(st.binary(min_size=1, max_size=64))
    return bytes(buf), suffix


@st.composite
def label_bytes(draw) -> bytes:
    h, w = draw(sizes)
    top = draw(st.sampled_from([INFO.num_classes - 1, INFO.num_classes, 255]))
    ids = np.asarray(draw(st.lists(st.integers(0, top), min_size=h * w, max_size=h * w)), np.uint8).reshape(h, w)
    mode = draw(st.sampled_from(["L", "P", "I;16", "RGB-colours", "RGBA-colours"]))
    buf = io.BytesIO()
    if mode == "I;16":
        Image.fromarray(ids.astype(np.uint16)).save(buf, format="PNG")
    elif mode.endswith("colours"):
        table = np.array(list(INFO.colors) + [(1, 2, 3)] * 256, np.uint8)
        img = Image.fromarray(table[ids])
        (img.convert("RGBA") if mode.startswith("RGBA") else img).save(buf, format="PNG")
    else:
        Image.fromarray(ids, mode="L" if mode == "L" else None).convert(mode).save(buf, format="PNG")
    return buf.getvalue()


# --- properties ---------------------------------------------------------------------------------------

@FUZZ
@given(data=st.binary(max_size=2048), suffix=st.sampled_from([".png", ".jpg"]))
def test_random_bytes_are_a_data_error_naming_the_file(folder, data, suffix):
    path = _write(folder, data, suffix)
    assert _only_data_errors(load_image, path) is None
    assert _only_data_errors(lambda p: read_label(p, INFO), path) is None


@FUZZ
@given(case=corrupted(image_bytes()))
def test_corrupt_images_in_any_mode_decode_to_rgb_or_name_the_file(folder, case):
    data, suffix = case
    path = _write(folder, data, suffix)
    img = _only_data_errors(load_image, path)
    if img is not None:
        assert img.mode == "RGB" and img.width >= 1 and img.height >= 1
        assert _only_data_errors(probe_image, path) in (None, img.size)


@FUZZ
@given(case=corrupted(label_bytes().map(lambda b: (b, ".png"))))
def test_labels_in_any_mode_give_ids_in_range_or_name_the_file(folder, case):
    data, suffix = case
    path = _write(folder, data, suffix)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ids = read_label(path, INFO)
        except LabelValueError as exc:  # the message names the file and a bad id or colour
            assert path.name in str(exc) and ("out of range" in str(exc) or "colour" in str(exc))
            return
        except DataError as exc:
            assert path.name in str(exc)
            return
    assert ids.dtype == np.int64 and ids.ndim == 2
    assert ids.size == 0 or (ids.min() >= 0 and ids.max() < INFO.num_classes)


@pytest.mark.parametrize("width,height", [(0, 5), (5, 0), (0, 0), (100_000, 1), (10_000, 10_000),
                                          (30_000, 30_000), (1, 2**31 - 1)])
@pytest.mark.parametrize("bit_depth,colour_type", [(8, 0), (16, 0), (8, 2), (8, 6)])
def test_zero_size_and_huge_headers_fail_fast_with_the_file_named(folder, width, height, bit_depth, colour_type):
    path = _write(folder, _png(width, height, bit_depth=bit_depth, colour_type=colour_type, payload=b"\0" * 64),
                  ".png")
    assert _only_data_errors(load_image, path) is None
    assert _only_data_errors(lambda p: read_label(p, INFO), path) is None


@FUZZ
@given(image=corrupted(image_bytes()), label=corrupted(label_bytes().map(lambda b: (b, ".png"))),
       train=st.booleans())
def test_a_dataset_item_is_a_valid_pair_or_a_data_error(folder, image, label, train):
    """The whole item path: decode, check sizes and ids, resize, crop, flip, to tensors."""
    ipath = _write(folder, image[0], image[1])
    lpath = _write(folder, label[0], ".png")
    transform = PairedTransform(8, 8, 12, 12, train=train) if train else PairedTransform(8, 8)
    ds = PairedDataset([(ipath, lpath)], INFO, transform=transform)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            item = ds[0]
        except DataError as exc:
            assert ipath.name in str(exc) or lpath.name in str(exc), str(exc)
            return
    assert item["image"].shape == (3, 8, 8) and item["image"].dtype == torch.float32
    assert item["image"].min() >= -1 and item["image"].max() <= 1
    assert item["label"].shape == (8, 8) and int(item["label"].max()) < INFO.num_classes


def test_a_bad_file_in_a_loader_worker_is_one_clear_line(folder):
    """Errors raised in a DataLoader worker come back wrapped in a traceback; the training loop's
    StepLoader turns them back into the one sentence that names the file."""
    from dpgan.training.resilience import LoaderFailure, StepLoader

    good_i = _write(folder, _encode(np.zeros((8, 8, 3), np.uint8), None, "PNG"), ".png")
    good_l = _write(folder, _encode(np.ones((8, 8), np.uint8), None, "PNG"), ".png")
    bad_l = _write(folder, _encode(np.full((8, 8), 7, np.uint8), None, "PNG"), ".png")
    ds = PairedDataset([(good_i, good_l), (good_i, bad_l)], INFO, transform=PairedTransform(8, 8))

    def make(step):
        return torch.utils.data.DataLoader(ds, batch_size=1, num_workers=1, shuffle=False)

    items = list(StepLoader(make, 0, 5))
    assert len(items) == 2 and isinstance(items[0], dict)
    failure = items[1]
    assert isinstance(failure, LoaderFailure)
    assert failure.message == (f"{bad_l}: label ids 7 are out of range for dataset 'streets' with 4 classes "
                               f"(valid ids 0..3)")
