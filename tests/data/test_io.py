"""Reading files (clear errors, label encodings), pairing by name, paired transforms."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dpgan.data.info import DatasetInfo
from dpgan.data.io import (
    decode_label,
    default_palette,
    load_image,
    load_label_file,
    pair_files,
    probe_image,
    read_label,
)
from dpgan.data.transforms import PairedTransform, RandomFlip, WorkerRNG
from dpgan.errors import DataError, DPGANError

INFO = DatasetInfo("tiny", ("void", "road", "car"), ((0, 0, 0), (128, 64, 128), (0, 0, 142)), ignore_index=0)
COCO = DatasetInfo("coco-stuff", tuple(f"c{i}" for i in range(183)), default_palette(183), ignore_index=0)


def save(path: Path, arr: np.ndarray, mode: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, mode=mode).save(path)
    return path


# --- reading -----------------------------------------------------------------------------------

def test_missing_corrupt_and_truncated_images_name_the_file(tmp_path):
    with pytest.raises(DataError, match="nope.png: image file not found"):
        load_image(tmp_path / "nope.png")
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"this is not a png")
    with pytest.raises(DataError, match="junk.png: cannot read"):
        load_image(junk)
    good = save(tmp_path / "ok.jpg", np.random.default_rng(0).integers(0, 255, (32, 48, 3), dtype=np.uint8))
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(good.read_bytes()[:300])
    for reader in (load_image, probe_image):
        with pytest.raises(DataError, match="cut.jpg: cannot read"):
            reader(cut)
    assert probe_image(good) == (48, 32)
    assert load_image(good).mode == "RGB"
    grey = save(tmp_path / "grey.png", np.zeros((4, 5), np.uint8))
    assert np.asarray(load_image(grey)).shape == (4, 5, 3)


def test_label_modes_L_P_16bit_and_rgb_colours(tmp_path):
    ids = np.array([[0, 1, 2], [2, 1, 0]], np.uint8)
    assert np.array_equal(read_label(save(tmp_path / "l.png", ids), INFO), ids)
    p_img = Image.fromarray(ids, mode="P")
    p_img.putpalette([255, 255, 255] * 3)
    p_img.save(tmp_path / "p.png")
    assert np.array_equal(read_label(tmp_path / "p.png", INFO), ids)  # palette indices are the ids
    Image.fromarray(ids.astype(np.uint16)).save(tmp_path / "i16.png")
    assert np.array_equal(read_label(tmp_path / "i16.png", INFO), ids)
    rgb = np.array(INFO.colors, np.uint8)[ids]
    out = read_label(save(tmp_path / "rgb.png", rgb), INFO)
    assert out.dtype == np.int64 and np.array_equal(out, ids)


def test_unknown_colour_and_out_of_range_ids_name_file_and_value(tmp_path):
    rgb = np.zeros((2, 3, 3), np.uint8)
    rgb[1, 2] = (1, 2, 3)
    with pytest.raises(DataError, match=r"rgb\.png: colour \(1, 2, 3\) is not in the colour table"):
        read_label(save(tmp_path / "rgb.png", rgb), INFO)
    with pytest.raises(DataError, match=r"big\.png: label ids 3, 7 are out of range .* 3 classes"):
        read_label(save(tmp_path / "big.png", np.array([[0, 3, 7]], np.uint8)), INFO)
    # check_range=False hands the raw ids over (check-data counts them instead)
    raw = decode_label(load_label_file(tmp_path / "big.png"), INFO, "big.png", check_range=False)
    assert raw.tolist() == [[0, 3, 7]]


def test_coco_stuff_encoding_shifts_ids_and_maps_255_to_zero(tmp_path):
    f = save(tmp_path / "c.png", np.array([[0, 181, 255, 90]], np.uint8))
    assert read_label(f, COCO).tolist() == [[1, 182, 0, 91]]
    with pytest.raises(DataError, match=r"bad\.png: file values 200 are not COCO-Stuff classes"):
        read_label(save(tmp_path / "bad.png", np.array([[0, 200]], np.uint8)), COCO)


def test_default_palette_is_distinct_and_starts_black():
    pal = default_palette(256)
    assert pal[0] == (0, 0, 0) and pal[1] == (128, 0, 0) and len(set(pal)) == 256


# --- pairing -----------------------------------------------------------------------------------

def test_pair_files_matches_by_stem_and_reports_lonely_files(tmp_path):
    img, lab = tmp_path / "images", tmp_path / "labels"
    for stem in ("a", "b", "c"):
        save(img / f"{stem}.jpg", np.zeros((2, 2, 3), np.uint8))
    for stem in ("a", "b", "d", "e"):
        save(lab / f"{stem}.png", np.zeros((2, 2), np.uint8))
    (img / "notes.txt").write_text("ignored")
    (img / ".hidden.png").write_bytes(b"")
    pairing = pair_files("mine", img, lab)
    assert [(i.name, l.name) for i, l in pairing.pairs] == [("a.jpg", "a.png"), ("b.jpg", "b.png")]
    assert [p.name for p in pairing.images_without_label] == ["c.jpg"]
    assert [p.name for p in pairing.labels_without_image] == ["d.png", "e.png"]
    with pytest.raises(DataError, match=r"dataset mine: 1 images have no label .* \(first: .*c\.jpg\)"):
        pairing.require_pairs()
    pairing.images_without_label.clear()
    with pytest.raises(DataError, match=r"2 labels have no image .*d\.png, .*e\.png"):
        pairing.require_pairs()


def test_pair_files_tags_recursion_duplicates_and_empty(tmp_path):
    img, lab = tmp_path / "left" / "city", tmp_path / "gt" / "city"
    save(img / "x_1_leftImg8bit.png", np.zeros((2, 2, 3), np.uint8))
    save(lab / "x_1_gtFine_labelIds.png", np.zeros((2, 2), np.uint8))
    save(lab / "x_1_gtFine_color.png", np.zeros((2, 2, 3), np.uint8))
    pairing = pair_files("cs", tmp_path / "left", tmp_path / "gt", image_tag="_leftImg8bit",
                         label_tag="_gtFine_labelIds", recursive=True)
    assert len(pairing.require_pairs()) == 1 and not pairing.labels_without_image
    save(tmp_path / "i" / "a.png", np.zeros((2, 2, 3), np.uint8))
    save(tmp_path / "i" / "a.jpg", np.zeros((2, 2, 3), np.uint8))
    (tmp_path / "l").mkdir()
    with pytest.raises(DataError, match="same name"):
        pair_files("dup", tmp_path / "i", tmp_path / "l")
    (tmp_path / "e1").mkdir(), (tmp_path / "e2").mkdir()
    with pytest.raises(DataError, match="no image/label pairs found"):
        pair_files("empty", tmp_path / "e1", tmp_path / "e2").require_pairs()


# --- paired transforms ---------------------------------------------------------------------------

def _label_painted_pair(h: int, w: int, seed: int = 0) -> tuple[Image.Image, np.ndarray]:
    """A label of random ids and an image whose pixels spell (id, column, row) of the source."""
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 30, (h, w)).astype(np.uint8)
    cols = np.broadcast_to(np.arange(w, dtype=np.uint8) * 4, (h, w))
    rows = np.broadcast_to(np.arange(h, dtype=np.uint8)[:, None] * 8, (h, w))
    return Image.fromarray(np.stack([label * 8, cols, rows], axis=-1)), label


def test_crop_and_flip_are_identical_for_image_and_label():
    image, label = _label_painted_pair(16, 32)
    t = PairedTransform(8, 16, load_height=16, load_width=32, train=True, flip=True)
    rng = np.random.default_rng(1)
    seen_flip, seen_windows = set(), set()
    for _ in range(40):
        img, lab = t(image, label, rng)
        assert img.shape == (3, 8, 16) and lab.shape == (8, 16) and lab.dtype == torch.int64
        pixels = torch.round((img + 1) * 127.5).to(torch.int64).numpy()
        assert np.array_equal(pixels[0], lab.numpy() * 8)  # each pixel keeps its own label
        cols, rows = pixels[1][0] // 4, pixels[2][:, 0] // 8
        assert np.array_equal(rows, np.arange(rows[0], rows[0] + 8))  # a contiguous window ...
        flipped = bool(cols[0] > cols[-1])
        step = -1 if flipped else 1
        assert np.array_equal(cols, np.arange(cols[0], cols[0] + 16 * step, step))  # ... mirrored or not
        assert np.array_equal(lab.numpy(), label[np.ix_(rows, cols)])  # the label moved with it
        seen_flip.add(flipped)
        seen_windows.add((int(rows[0]), int(cols.min())))
    assert seen_flip == {True, False} and len(seen_windows) > 10


def test_eval_resizes_with_bicubic_image_and_nearest_label_and_never_flips():
    image, label = _label_painted_pair(16, 32)
    t = PairedTransform(24, 40, load_height=30, load_width=50, train=False)
    img, lab = t(image, label)
    assert img.shape == (3, 24, 40)
    want_img = np.asarray(image.resize((40, 24), Image.Resampling.BICUBIC)).astype(np.float32) / 127.5 - 1
    want_lab = np.asarray(Image.fromarray(label).resize((40, 24), Image.Resampling.NEAREST))
    assert np.allclose(img.permute(1, 2, 0).numpy(), want_img, atol=1e-6)
    assert np.array_equal(lab.numpy(), want_lab)
    assert set(np.unique(lab.numpy())) <= set(np.unique(label))  # nearest: no new ids
    assert img.min() >= -1 and img.max() <= 1


def test_train_resizes_to_load_size_before_cropping():
    image, label = _label_painted_pair(16, 32)
    t = PairedTransform(8, 8, load_height=12, load_width=12, train=True, flip=False)
    full = np.asarray(Image.fromarray(label).resize((12, 12), Image.Resampling.NEAREST))
    lab = t(image, label, np.random.default_rng(3))[1].numpy()
    assert any(np.array_equal(lab, full[r:r + 8, c:c + 8]) for r in range(5) for c in range(5))
    with pytest.raises(ValueError, match="random generator"):
        t(image, label, None)


def test_transform_options_are_validated():
    with pytest.raises(DPGANError, match="smaller than the crop"):
        PairedTransform(256, 256, load_height=200, load_width=286)
    with pytest.raises(DPGANError, match="together"):
        PairedTransform(8, 8, load_height=10)


def test_same_seed_same_augmentation_and_workers_get_different_streams():
    rng_a, rng_b = WorkerRNG(5), WorkerRNG(5)
    torch.manual_seed(11)
    a = [int(rng_a.get().integers(1 << 30)) for _ in range(3)]
    torch.manual_seed(11)
    b = [int(rng_b.get().integers(1 << 30)) for _ in range(3)]
    assert a == b
    torch.manual_seed(12)  # a new torch seed re-seeds the stream
    c = int(rng_a.get().integers(1 << 30))
    assert c == int(WorkerRNG(5).get().integers(1 << 30)) and c != a[0]

    class Draws(torch.utils.data.Dataset):
        def __init__(self) -> None:
            self.rng = WorkerRNG(0)

        def __len__(self) -> int:
            return 4

        def __getitem__(self, i: int) -> int:
            return int(self.rng.get().integers(1 << 40))

    def run() -> list[int]:
        torch.manual_seed(3)
        loader = torch.utils.data.DataLoader(Draws(), batch_size=1, num_workers=2)
        return [int(x) for x in loader]

    first, second = run(), run()
    assert first == second  # reproducible for one torch seed
    assert first[0] != first[1]  # items 0 and 1 come from different workers' first draws


def test_random_flip_wrapper_flips_image_and_label_together():
    label = torch.arange(8).reshape(2, 4)

    class Fixed(torch.utils.data.Dataset):
        info = INFO

        def __len__(self) -> int:
            return 1

        def __getitem__(self, i: int) -> dict:
            return {"image": label.float().expand(3, 2, 4), "label": label, "name": "x"}

    wrapped = RandomFlip(Fixed(), seed=0)
    outcomes = set()
    for _ in range(20):
        item = wrapped[0]
        assert torch.equal(item["image"][0].long(), item["label"])
        outcomes.add(bool(item["label"][0, 0] == 3))
    assert outcomes == {True, False} and wrapped.info is INFO


def test_sixteen_bit_labels_with_many_classes_survive_resize_and_crop(tmp_path):
    many = DatasetInfo("many", tuple(f"c{i}" for i in range(300)), default_palette(300))
    ids = (np.arange(16 * 32).reshape(16, 32) % 300).astype(np.uint16)
    Image.fromarray(ids).save(tmp_path / "l16.png")
    label = decode_label(load_label_file(tmp_path / "l16.png"), many, tmp_path / "l16.png")
    assert label.dtype == np.int32 and int(label.max()) == 299
    image = Image.fromarray(np.zeros((16, 32, 3), np.uint8))
    lab = PairedTransform(8, 16, train=False)(image, label)[1].numpy()
    want = np.asarray(Image.fromarray(label, mode="I").resize((16, 8), Image.Resampling.NEAREST))
    assert np.array_equal(lab, want) and set(np.unique(lab)) <= set(np.unique(ids))
