"""`dpgan evaluate` end to end on a 2-step run, the size-binned IoU, judges and best checkpoints."""

import argparse
import json
import math

import numpy as np
import pytest
import torch

from dpgan.checkpoint import list_checkpoints, load_checkpoint
from dpgan.config import Config, DataConfig, ModelConfig, TrainConfig
from dpgan.data.registry import build_dataset
from dpgan.errors import DPGANError
from dpgan.evaluate.inception import FIDInceptionV3
from dpgan.evaluate.judges import Judge, JudgeTally, published_judge
from dpgan.evaluate.object_size import ObjectSizeIoU, instance_counts, size_bin_names
from dpgan.evaluate.reference_segmenter import ReferenceSegmenter, train_reference_segmenter
from dpgan.commands.evaluate import register
from dpgan.evaluate.run_eval import EvalNetworks, evaluate_generator, evaluate_run, load_eval_networks
from dpgan.evaluate.segmentation import cityscapes_label_to_train_id
from dpgan.evaluate.training_eval import (
    TrainingEvaluator,
    best_checkpoint_path,
    is_better,
    save_best_checkpoint,
    select_best,
)
from dpgan.inference.synthesize import load_generator, noise_for_seeds
from dpgan.training.loop import train



def tiny_config() -> Config:
    return Config(
        name="tiny",
        data=DataConfig(height=32, width=64, num_train=8, num_val=6, num_workers=0),
        model=ModelConfig(g_width=4, d_width=4, z_dim=8, pyramid_width=8, spade_hidden=8, num_res_blocks=4),
        train=TrainConfig(steps=2, batch_size=2, log_every=1, sample_every=2, checkpoint_every=2, ema_bn_batches=1),
    )


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    train(tiny_config(), run, device="cpu", progress=False)
    return run


@pytest.fixture(scope="module")
def segmenter(tmp_path_factory):
    out = tmp_path_factory.mktemp("segmenter")
    return train_reference_segmenter(
        tiny_config().data, out, steps=30, batch_size=2, lr=5e-3, base_channels=8, levels=3, progress=False
    ).path


def test_evaluate_run_metrics_and_ceiling(run_dir, segmenter, tmp_path):
    out = tmp_path / "eval"
    result = evaluate_run(run_dir, out_dir=out, segmenter=segmenter, device="cpu", progress=False)
    saved = json.loads((out / "metrics.json").read_text())
    assert saved == result
    assert {"metrics", "real", "per_class_iou", "iou_by_size", "protocol", "networks", "run"} <= set(saved)
    m, real = saved["metrics"], saved["real"]
    # no Inception: no FID/KID
    assert set(m) == {"miou", "obj_miou", "pixel_accuracy", "refseg_fd", "stripe_ratio", "noise_diversity"}
    assert m["noise_diversity"] >= 0.0 and real["noise_diversity"] > 1.0  # two renderings of a map differ
    for scores in (m, real):
        for key in ("miou", "obj_miou", "pixel_accuracy"):
            assert 0.0 <= scores[key] <= 1.0
    assert m["refseg_fd"] >= 0.0
    assert saved["protocol"]["num_images"] == 6 and saved["protocol"]["resolution"] == [32, 64]
    assert saved["run"]["step"] == 2 and saved["run"]["generator"] == "dp"
    # The ceiling is exactly what train-segmenter measured on the real validation images ...
    stored = ReferenceSegmenter.from_file(segmenter).val_scores
    assert real["miou"] == pytest.approx(stored["miou"], abs=1e-12)
    assert real["pixel_accuracy"] == pytest.approx(stored["pixel_accuracy"], abs=1e-12)
    # ... and a 2-step generator (flat grey images) is far below it.
    assert m["pixel_accuracy"] < real["pixel_accuracy"] - 0.2
    per_class = saved["per_class_iou"]
    assert len(per_class["classes"]) == len(per_class["generated"]) == len(per_class["real"]) == 12
    sizes = saved["iou_by_size"]
    assert sizes["bins"] == ["<0.25%", "0.25-1%", "1-4%", ">=4%"]
    assert sizes["generated"]["instances"] == sizes["real"]["instances"] and sum(sizes["real"]["instances"]) > 0
    for path in ("report.html", "report.md", "examples.png"):
        assert (out / path).is_file()


def test_fixed_seeds_make_evaluation_repeatable_and_fid_appears(run_dir, segmenter):
    loaded = load_generator(run_dir, "cpu")
    val_set = build_dataset(loaded.config.data, "val", train=False)
    networks = load_eval_networks(loaded.info, segmenter=segmenter)
    networks.inception = FIDInceptionV3(dims=64)  # random weights: shapes and plumbing only
    cache: dict = {}
    a = evaluate_generator(loaded.generator, val_set, loaded.info, networks, num_images=4, batch_size=3,
                           imag_policy="drop", real_cache=cache, progress=False)
    b = evaluate_generator(loaded.generator, val_set, loaded.info, networks, num_images=4, batch_size=2,
                           imag_policy="drop", real_cache=cache, progress=False)
    assert a["metrics"]["fid"] >= 0 and "kid" in a["metrics"] and cache["num_images"] == 4
    for key in ("miou", "pixel_accuracy"):
        assert a["metrics"][key] == pytest.approx(b["metrics"][key], abs=1e-12)
    assert a["metrics"]["fid"] == pytest.approx(b["metrics"]["fid"], rel=1e-4)
    c = evaluate_generator(loaded.generator, val_set, loaded.info, networks, num_images=4, seed=7,
                           imag_policy="drop", progress=False)
    assert c["metrics"]["fid"] != pytest.approx(a["metrics"]["fid"], rel=1e-6)  # other noise, other images


class Replay(torch.nn.Module):
    """A 'generator' that returns the real image of each label map: every score must then equal
    the real images' score (the ceiling) and every Frechet distance must vanish."""

    def __init__(self, val_set, num_classes: int) -> None:
        super().__init__()
        self.num_classes, self.z_dim, self.use_3d_noise = num_classes, 4, True
        self.labels = torch.stack([val_set[i]["label"] for i in range(len(val_set))])
        self.images = torch.stack([val_set[i]["image"] for i in range(len(val_set))])

    def forward(self, onehot, z):
        ids = onehot.argmax(1)
        return self.images[[int((self.labels == lab).all(-1).all(-1).nonzero()[0]) for lab in ids]]


def test_real_images_as_fakes_reach_exactly_the_ceiling(run_dir, segmenter):
    loaded = load_generator(run_dir, "cpu")
    val_set = build_dataset(loaded.config.data, "val", train=False)
    networks = load_eval_networks(loaded.info, segmenter=segmenter)
    networks.inception = FIDInceptionV3(dims=64)
    result = evaluate_generator(Replay(val_set, loaded.info.num_classes), val_set, loaded.info, networks,
                                imag_policy="drop", progress=False)
    for key in ("miou", "obj_miou", "pixel_accuracy"):
        assert result["metrics"][key] == result["real"][key]
    assert result["per_class_iou"]["generated"] == pytest.approx(result["per_class_iou"]["real"], nan_ok=True)
    gen_sizes, real_sizes = result["iou_by_size"]["generated"], result["iou_by_size"]["real"]
    assert gen_sizes["iou"] == pytest.approx(real_sizes["iou"], nan_ok=True)
    assert gen_sizes["pixels"] == real_sizes["pixels"] and sum(real_sizes["instances"]) > 0
    assert abs(result["metrics"]["refseg_fd"]) < 1e-6 and abs(result["metrics"]["fid"]) < 1e-4
    assert result["metrics"]["noise_diversity"] == 0.0  # it ignores its noise
    # while the 2-step generator is measurably away from the real images
    away = evaluate_generator(loaded.generator, val_set, loaded.info, networks, imag_policy="drop", progress=False)
    assert away["metrics"]["refseg_fd"] > 1e-3 and away["metrics"]["fid"] > 1e-3


class NoiseEcho(torch.nn.Module):
    """A 'generator' whose flat grey image is its first noise value / 10."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes, self.z_dim, self.use_3d_noise = num_classes, 4, True

    def forward(self, onehot, z):
        b, _, h, w = onehot.shape
        return (z[:, 0] / 10)[:, None, None, None].expand(b, 3, h, w)


def test_noise_diversity_is_what_the_noise_changes_against_two_renderings_of_a_map(run_dir, segmenter):
    loaded = load_generator(run_dir, "cpu")
    val_set = build_dataset(loaded.config.data, "val", train=False)
    networks = load_eval_networks(loaded.info, segmenter=segmenter)
    result = evaluate_generator(NoiseEcho(loaded.info.num_classes), val_set, loaded.info, networks, seed=5,
                                batch_size=4, progress=False)
    n = len(val_set)
    z = noise_for_seeds(list(range(5, 5 + n + 1)), 4, torch.device("cpu"))[:, 0] / 10  # map i: seeds 5+i, 6+i
    expected = ((z[:-1] - z[1:]).abs() * 127.5).mean().item()
    assert result["metrics"]["noise_diversity"] == pytest.approx(expected, rel=1e-5)
    # the real side: each map's image against the same map rendered with another appearance
    other = [val_set.other_appearance(i) for i in range(n)]
    real = sum((val_set[i]["image"] - other[i]).abs().mean().item() * 127.5 for i in range(n)) / n
    assert result["real"]["noise_diversity"] == pytest.approx(real, rel=1e-5) and real > 1.0


def test_nothing_to_evaluate_with_says_what_to_do(run_dir):
    with pytest.raises(DPGANError, match="train-segmenter"):
        evaluate_run(run_dir, use_default_segmenter=False, device="cpu", progress=False)
    with pytest.raises(DPGANError, match=r"missing\.pt.*--segmenter"):
        evaluate_run(run_dir, segmenter=run_dir / "missing.pt", device="cpu", progress=False)


def test_evaluate_command(run_dir, segmenter, tmp_path, capsys):
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["evaluate", "--run", str(run_dir), "--segmenter", str(segmenter), "--num-images",
                              "3", "--out", str(tmp_path / "ev"), "--device", "cpu", "--no-progress"])
    assert args.func(args) == 0
    assert "real images (ceiling)" in capsys.readouterr().out
    assert json.loads((tmp_path / "ev" / "metrics.json").read_text())["protocol"]["num_images"] == 3


def test_evaluate_command_scores_the_built_in_model_by_name(tmp_path, monkeypatch, capsys):
    data = DataConfig(height=64, width=128, num_train=4, num_val=2, num_workers=0)
    judge = train_reference_segmenter(data, tmp_path / "seg", steps=2, batch_size=2, base_channels=4, levels=2,
                                      progress=False).path
    monkeypatch.chdir(tmp_path)
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["evaluate", "--run", "synthetic-streets", "--segmenter", str(judge), "--num-images",
                              "2", "--device", "cpu", "--no-progress"])
    assert args.func(args) == 0
    saved = json.loads((tmp_path / "eval" / "synthetic-streets" / "metrics.json").read_text())
    assert saved["run"]["step"] == 1000 and saved["protocol"]["resolution"] == [64, 128]
    assert saved["networks"]["reference_segmenter"]["digest"] == ReferenceSegmenter.from_file(judge).digest
    assert saved["metrics"]["noise_diversity"] > 1.0  # its noise changes its images


# ---- IoU by object size ----------------------------------------------------------------------
def test_size_binned_iou_on_a_hand_made_map():
    """10 x 10 map (1 pixel = 1 %), object classes 1 and 2, bins <2 %, 2-10 %, >=10 %."""
    gt = np.zeros((10, 10), dtype=np.int64)
    pred = np.zeros((10, 10), dtype=np.int64)
    gt[0, 0] = 1  # A: 1 px (bin 0), found
    pred[0, 0] = 1
    gt[0, 8] = 1  # B: 1 px (bin 0), missed ...
    pred[0, 6] = 1  # ... and a spurious class-1 pixel nearest to B (distance 2; A is 6 away)
    gt[3, 0], gt[3, 1], gt[4, 0] = 1, 1, 1  # C: 3 px L-shape (bin 1)
    pred[3, 0], pred[4, 1] = 1, 1  # 1 tp; (4, 1) is background next to C: 1 fp of C
    gt[6:10, 5:10] = 2  # D: 20 px ...
    gt[6, 5] = 255  # ... of which one is ignored: 19 px (bin 2)
    pred[6:10, 5:9] = 2  # 15 tp, 4 fn; the ignored pixel predicted as 2 is no fp
    pred[0, 4] = 2  # spurious class 2 far away: charged to D, the only class-2 instance
    sizes = ObjectSizeIoU(object_classes=(1, 2), num_classes=3, edges=(0.02, 0.1))
    sizes.update(torch.from_numpy(pred), torch.from_numpy(gt))
    result = sizes.result()
    assert result["bins"] == ["<2%", "2-10%", ">=10%"]
    assert result["instances"] == [2, 1, 1]
    # bin 0: tp 1, fn 1, fp 1; bin 1: tp 1, fn 2, fp 1; bin 2: tp 15, fn 4, fp 1
    assert result["iou"] == pytest.approx([1 / 3, 1 / 4, 15 / 20])
    assert result["pixels"] == [2, 3, 19]
    area, tp, fp = instance_counts(pred, gt, 1, 3)
    assert (area.tolist(), tp.tolist(), fp.tolist()) == ([1, 1, 3], [1, 0, 1], [0, 1, 1])  # A, B, C
    # Painting a class everywhere charges every wrong pixel to some instance: the IoU collapses.
    everywhere = np.full((10, 10), 2)
    area, tp, fp = instance_counts(everywhere, gt, 2, 3)
    assert (tp.tolist(), fp.tolist()) == ([19], [100 - 19 - 1])


def test_size_bins_empty_and_names():
    sizes = ObjectSizeIoU(object_classes=(5,), num_classes=6)
    sizes.update(torch.zeros(2, 8, 8, dtype=torch.long), torch.zeros(2, 8, 8, dtype=torch.long))
    assert all(math.isnan(v) for v in sizes.result()["iou"]) and sizes.result()["instances"] == [0, 0, 0, 0]
    assert size_bin_names((0.0025, 0.01, 0.04)) == ["<0.25%", "0.25-1%", "1-4%", ">=4%"]


# ---- judges -----------------------------------------------------------------------------------
class Oracle(torch.nn.Module):
    """Predicts a given map whatever the image: isolates the label-space plumbing."""

    def __init__(self, answer: torch.Tensor) -> None:
        super().__init__()
        self.answer = answer

    def predict(self, images, value_range=(-1.0, 1.0)):
        return self.answer


def test_cityscapes_judge_scores_train_ids_and_ignores_void():
    label_ids = torch.tensor([[[26, 26, 7, 0], [24, 7, 7, 0]]])  # car, road, void; person
    answer = cityscapes_label_to_train_id(label_ids).clamp(max=18)  # void -> 18 (bicycle): must not count
    judge = Judge(name="oracle", segmenter=Oracle(answer), class_names=tuple(str(i) for i in range(19)),
                  policy="drn", object_classes=(11, 13), to_judge_ids=cityscapes_label_to_train_id, published=True)
    tally = JudgeTally(judge)
    tally.update(torch.zeros(1, 3, 2, 4), label_ids)
    scores = tally.scores()
    assert scores["pixel_accuracy"] == 1.0 and scores["obj_miou"] == 1.0
    # bicycle was predicted only on void pixels, which are dropped: IoU NaN, left out of the mean
    assert math.isnan(scores["per_class_iou"][18]) and scores["miou"] == 1.0


def test_published_judges_follow_the_paper_protocol(monkeypatch, tmp_path):
    from dpgan.evaluate import segmenters

    stub = Oracle(torch.zeros(1, 2, 2, dtype=torch.long))
    stub.class_names = tuple(f"c{i}" for i in range(150))
    monkeypatch.setattr(segmenters.DRNSeg, "from_file", classmethod(lambda cls, path: stub))
    monkeypatch.setattr(segmenters.UperNet101, "from_file", classmethod(lambda cls, enc, dec=None: stub))
    drn = published_judge("cityscapes", drn=tmp_path / "drn.pth")
    assert (drn.name, drn.policy, drn.num_classes, drn.published) == ("DRN-D-105", "drn", 19, True)
    assert drn.object_classes == (5, 6, 7, 11, 12, 13, 14, 15, 16, 17, 18)  # obj-mIoU classes
    assert drn.to_judge_ids(torch.tensor([26, 0, 7])).tolist() == [13, 255, 0]
    ade = published_judge("ade20k-outdoor", upernet_encoder=tmp_path / "zoo")
    assert (ade.name, ade.policy, ade.object_classes) == ("UperNet-101", "ade20k", ())
    assert ade.to_judge_ids(torch.tensor([0, 1, 150])).tolist() == [-1, 0, 149]  # 0 = don't care


def test_published_judge_refuses_weights_of_another_dataset(tmp_path):
    assert published_judge("synthetic-streets") is None and published_judge("cityscapes") is None
    with pytest.raises(DPGANError, match="--drn.*ade20k"):
        published_judge("ade20k", drn=tmp_path / "drn.pth")
    with pytest.raises(DPGANError, match=r"nothere\.pth.*--drn"):
        published_judge("cityscapes", drn=tmp_path / "nothere.pth")


# ---- during training: best checkpoint -----------------------------------------------------------
def test_best_checkpoint_selection():
    history = [{"step": 10, "fid": 50.0, "miou": 0.3}, {"step": 20, "fid": 41.0, "miou": 0.2},
               {"step": 30, "fid": float("nan"), "miou": 0.5}, {"step": 40, "fid": 41.0, "miou": 0.5}]
    assert select_best(history, "fid")["step"] == 20  # lowest, earliest on ties, NaN never wins
    assert select_best(history, "miou")["step"] == 30
    assert select_best([], "fid") is None
    assert is_better("refseg_fd", 1.0, 2.0) and not is_better("miou", 0.1, 0.2) and is_better("miou", 0.1, None)
    with pytest.raises(DPGANError, match="unknown evaluation metric"):
        is_better("accuracy", 1.0, 0.0)


def test_training_evaluator_logs_history_and_keeps_the_best(run_dir, segmenter, tmp_path):
    loaded = load_generator(run_dir, "cpu")
    cfg = loaded.config
    val_set = build_dataset(cfg.data, "val", train=False)
    evaluator = TrainingEvaluator(cfg, val_set, loaded.info, "cpu", run_dir=tmp_path, segmenter=segmenter,
                                  num_images=3, metric="miou")
    first = evaluator(loaded.generator, step=2)
    assert set(first) == {"miou", "obj_miou", "pixel_accuracy", "refseg_fd", "stripe_ratio", "noise_diversity"}
    assert all(isinstance(v, float) for v in first.values())
    assert evaluator.update_best(first, 2) and evaluator.best["step"] == 2
    assert not evaluator.update_best(dict(first), 4)  # equal is not better
    assert evaluator.is_better({**first, "miou": first["miou"] + 0.1})
    second = evaluator(loaded.generator, step=4)
    assert second == pytest.approx(first)  # same generator, fixed noise: same numbers
    assert [e["step"] for e in map(json.loads, (tmp_path / "eval_history.jsonl").read_text().splitlines())] == [2, 4]
    assert json.loads((tmp_path / "best.json").read_text())["step"] == 2
    resumed = TrainingEvaluator(cfg, val_set, loaded.info, "cpu", run_dir=tmp_path, segmenter=segmenter,
                                num_images=3)  # auto: the reference segmenter's Frechet distance
    assert resumed.metric == "refseg_fd" and resumed.best["step"] in (2, 4)
    with pytest.raises(DPGANError, match="fid"):
        TrainingEvaluator(cfg, val_set, loaded.info, "cpu", segmenter=segmenter, metric="fid")


def test_best_checkpoint_is_loadable_and_survives_rotation(run_dir, tmp_path):
    payload = {k: v for k, v in load_checkpoint(run_dir).items() if k not in ("format", "version", "step", "path")}
    path = save_best_checkpoint(tmp_path, 7, payload)
    assert path == best_checkpoint_path(tmp_path) and load_checkpoint(path)["step"] == 7
    assert list_checkpoints(tmp_path) == []  # not a step_*.pt: keep_checkpoints never deletes it
    assert load_generator(path, "cpu").step == 7


def test_networks_any():
    assert not EvalNetworks().any()


def test_segmenter_of_another_dataset_is_refused(tmp_path):
    from dpgan.data.info import DatasetInfo
    from dpgan.data.synthetic import SYNTHETIC_STREETS
    from dpgan.evaluate.reference_segmenter import ReferenceSegmenterConfig

    other = DatasetInfo(name="mine", class_names=("a", "b"), colors=((0, 0, 0), (9, 9, 9)))
    model = ReferenceSegmenter(ReferenceSegmenterConfig(num_classes=2, base_channels=2, levels=2))
    path = model.save(tmp_path / "segmenter.pt", other, {"miou": 0.5}, {})
    with pytest.raises(DPGANError, match=r"trained on dataset 'mine'.*synthetic-streets"):
        load_eval_networks(SYNTHETIC_STREETS, segmenter=path)


def test_training_evaluates_every_n_steps_and_keeps_the_best(segmenter, tmp_path):
    cfg = tiny_config().override(train={"steps": 4, "eval_every": 2, "eval_images": 3, "eval_metric": "miou",
                                        "eval_segmenter": str(segmenter), "checkpoint_every": 4})
    run = tmp_path / "run"
    train(cfg, run, device="cpu", progress=False)
    history = [json.loads(line) for line in (run / "eval_history.jsonl").read_text().splitlines()]
    assert [e["step"] for e in history] == [2, 4]
    best = json.loads((run / "best.json").read_text())
    assert best["metric"] == "miou" and best == {"metric": "miou", **select_best(history, "miou")}
    # best.pt holds the generator of the best evaluation, not simply the last one
    assert load_checkpoint(best_checkpoint_path(run))["step"] == best["step"]
    events = list((run / "tb").iterdir())
    assert events, "TensorBoard logs were written"


def test_training_refuses_eval_without_networks(tmp_path):
    cfg = tiny_config().override(train={"eval_every": 1, "eval_segmenter": str(tmp_path / "none.pt")})
    with pytest.raises(DPGANError, match="none.pt"):
        train(cfg, tmp_path / "run", device="cpu", progress=False)
    assert not (tmp_path / "run" / "checkpoints").exists()  # refused before any training


def test_train_command_evaluation_flags_reach_the_config(tmp_path):
    from dpgan.cli import build_parser
    from dpgan.commands.train import resolve_config

    args = build_parser().parse_args(["train", "--eval-every", "500", "--eval-metric", "miou", "--eval-images", "16",
                                      "--segmenter", "seg.pt", "--inception-weights", "pt_inception.pth",
                                      "--run-dir", str(tmp_path / "run")])
    t = resolve_config(args)[0].train
    assert (t.eval_every, t.eval_metric, t.eval_images, t.eval_segmenter, t.eval_inception) == (
        500, "miou", 16, "seg.pt", "pt_inception.pth")
