"""Confusion-matrix scores on hand-built cases whose IoUs are known, for every absent-class policy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dpgan.errors import DataError
from dpgan.evaluate.segmentation import (
    CITYSCAPES_LABEL_TO_TRAIN_ID,
    CITYSCAPES_OBJECT_TRAIN_IDS,
    CITYSCAPES_TRAIN_ID_NAMES,
    MIOU_POLICY_BY_DATASET,
    ConfusionMatrix,
    cityscapes_label_to_train_id,
    shift_out_dont_care,
)


def pixels(pairs: list[tuple[int, int, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """(gt, pred, count) triples -> flat target and prediction maps."""
    gt = torch.cat([torch.full((n,), t) for t, _, n in pairs])
    pred = torch.cat([torch.full((n,), p) for _, p, n in pairs])
    return pred, gt


# Four classes, eight pixels:
#   counts[t, p]:       p=0  p=1  p=2  p=3
#   t=0                  4    0    0    1     (one class-0 pixel predicted as 3)
#   t=1                  1    2    0    0
#   t=2                  0    0    0    0     (absent from GT and prediction: 0/0)
#   t=3                  0    0    0    0     (absent from GT, predicted once: IoU 0)
CASE = [(0, 0, 4), (0, 3, 1), (1, 0, 1), (1, 1, 2)]
IOU_0 = 4 / (5 + 5 - 4)  # tp / (gt + pred - tp)
IOU_1 = 2 / (3 + 2 - 2)


def test_counts_and_per_class_iou():
    cm = ConfusionMatrix(4)
    cm.update(*pixels(CASE))
    expected = [[4, 0, 0, 1], [1, 2, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
    assert cm.counts.tolist() == expected
    iou = cm.iou()
    assert iou[0] == pytest.approx(IOU_0) and iou[1] == pytest.approx(IOU_1)
    assert math.isnan(iou[2]) and iou[3] == 0.0
    assert cm.pixel_accuracy() == pytest.approx(6 / 8)


@pytest.mark.parametrize(
    "policy, expected",
    [
        ("drn", (IOU_0 + IOU_1 + 0.0) / 3),  # 0/0 class dropped, predicted-only class counts
        ("cityscapes", (IOU_0 + IOU_1 + 0.0) / 3),
        ("ade20k", (IOU_0 + IOU_1 + 0.0 + 0.0) / 4),  # every class, 0/0 = 0
        ("deeplab", (IOU_0 + IOU_1) / 2),  # only classes with GT pixels
    ],
)
def test_miou_policies(policy, expected):
    cm = ConfusionMatrix(4)
    cm.update(*pixels(CASE))
    assert cm.miou(policy) == pytest.approx(expected, rel=1e-12)


def test_unknown_policy_and_dataset_defaults():
    with pytest.raises(ValueError, match="policy"):
        ConfusionMatrix(2).miou("voc")  # type: ignore[arg-type]
    assert MIOU_POLICY_BY_DATASET == {
        "cityscapes": "drn", "ade20k": "ade20k", "ade20k-outdoor": "ade20k", "coco-stuff": "deeplab",
    }  # fmt: skip


def test_ignored_pixels_are_dropped_whatever_their_prediction():
    pred, gt = pixels(CASE)
    cm = ConfusionMatrix(4)
    cm.update(pred, gt)
    before = cm.counts.clone()
    cm.update(torch.tensor([0, 1, 3, 2]), torch.tensor([255, -1, 4, 255]))
    assert torch.equal(cm.counts, before)


def test_accumulates_over_batches_like_one_update():
    g = torch.Generator().manual_seed(0)
    pred = torch.randint(0, 5, (3, 6, 7), generator=g)
    gt = torch.randint(0, 6, (3, 6, 7), generator=g)
    gt[gt == 5] = 255
    whole, parts = ConfusionMatrix(5), ConfusionMatrix(5)
    whole.update(pred, gt)
    for i in range(3):
        parts.update(pred[i], gt[i])
    assert torch.equal(whole.counts, parts.counts)
    expected = np.zeros((5, 5), dtype=np.int64)
    for t, p in zip(gt.flatten().tolist(), pred.flatten().tolist(), strict=True):
        if t != 255:
            expected[t, p] += 1
    np.testing.assert_array_equal(whole.counts.numpy(), expected)
    parts.reset()
    assert int(parts.counts.sum()) == 0


def test_bad_inputs():
    cm = ConfusionMatrix(3)
    with pytest.raises(DataError, match="differ"):
        cm.update(torch.zeros(2, 4, dtype=torch.long), torch.zeros(2, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="predicted class ids"):
        cm.update(torch.tensor([3]), torch.tensor([0]))
    assert math.isnan(ConfusionMatrix(3).miou("drn"))  # nothing counted: NaN, no warning


def test_scores_are_float64_on_large_counts():
    cm = ConfusionMatrix(2)
    big = 2**25  # float32 cannot tell big + 1 from big + 2
    cm.counts[:] = torch.tensor([[big + 1, 1], [0, 7]])
    assert cm.iou()[0] == (big + 1) / (big + 2)
    assert cm.iou()[0] != np.float32(big + 1) / np.float32(big + 2)


def test_obj_miou_averages_exactly_the_eleven_object_classes():
    names = [CITYSCAPES_TRAIN_ID_NAMES[i] for i in CITYSCAPES_OBJECT_TRAIN_IDS]
    assert names == [
        "pole", "traffic light", "traffic sign", "person", "rider", "car", "truck", "bus",
        "train", "motorcycle", "bicycle",
    ]  # fmt: skip
    g = torch.Generator().manual_seed(1)
    gt = torch.randint(0, 19, (4, 32, 32), generator=g)
    noisy = torch.randint(0, 19, gt.shape, generator=g)
    pred = torch.where(torch.rand(gt.shape, generator=g) < 0.6, gt, noisy)
    cm = ConfusionMatrix(19)
    cm.update(pred, gt)
    iou = cm.iou()
    assert cm.obj_miou() == pytest.approx(float(np.mean(iou[list(CITYSCAPES_OBJECT_TRAIN_IDS)])))

    # Turn correct 'road' pixels into 'sidewalk' (both non-object): mIoU drops, obj-mIoU does not.
    worse = pred.clone()
    worse[(gt == 0) & (pred == 0)] = 1
    cm2 = ConfusionMatrix(19)
    cm2.update(worse, gt)
    assert cm2.miou("drn") < cm.miou("drn") - 1e-3
    assert cm2.obj_miou() == cm.obj_miou()
    # ... while spoiling one object class moves it.
    worse_obj = pred.clone()
    worse_obj[(gt == 13) & (pred == 13)] = 0
    cm3 = ConfusionMatrix(19)
    cm3.update(worse_obj, gt)
    assert cm3.obj_miou() < cm.obj_miou() - 1e-3

    scores = cm.scores("drn", object_classes=CITYSCAPES_OBJECT_TRAIN_IDS)
    assert scores.miou == cm.miou("drn") and scores.obj_miou == cm.obj_miou()
    assert len(scores.per_class_iou) == 19 and scores.pixel_accuracy == cm.pixel_accuracy()


def test_cityscapes_label_id_to_train_id_table():
    expected = {
        7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10,
        24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18,
    }  # fmt: skip
    assert CITYSCAPES_LABEL_TO_TRAIN_ID == expected
    label_ids = torch.arange(-1, 36).view(1, -1)
    got = cityscapes_label_to_train_id(label_ids)[0].tolist()
    for label_id, train_id in zip(range(-1, 36), got, strict=True):
        assert train_id == expected.get(label_id, 255), label_id
    assert cityscapes_label_to_train_id(torch.tensor([255, 1000])).tolist() == [255, 255]
    # obj-mIoU classes expressed as labelIds (docs/evaluation.md 2.3)
    to_label = {v: k for k, v in expected.items()}
    assert [to_label[t] for t in CITYSCAPES_OBJECT_TRAIN_IDS] == [17, 19, 20, 24, 25, 26, 27, 28, 31, 32, 33]


def test_shift_out_dont_care():
    shifted = shift_out_dont_care(torch.tensor([0, 1, 150]))
    assert shifted.tolist() == [-1, 0, 149]
    cm = ConfusionMatrix(150)
    cm.update(torch.tensor([5, 0, 149]), shifted)  # the don't-care pixel is not counted
    assert int(cm.counts.sum()) == 2
