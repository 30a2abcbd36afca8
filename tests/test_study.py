"""`dpgan study` at a tiny size: the grid, skipping finished runs, resuming, the report."""

import json
import math
import re

import pytest
import torch

from dpgan.cli import main
from dpgan.errors import DPGANError
from dpgan.evaluate.reference_segmenter import ReferenceSegmenter
from dpgan.study.grid import TABLES, distinct_models, tables_of
from dpgan.study.report import summary
from dpgan.study.runner import QUICK, StudySettings, open_study, plan, run_study

TINY_SETS = [
    "data.height=32", "data.width=64", "data.num_train=8", "data.num_val=4", "data.num_workers=0",
    "model.num_res_blocks=4", "model.g_width=4", "model.d_width=4", "model.z_dim=8", "model.pyramid_width=8",
    "model.spade_hidden=8", "train.batch_size=2", "train.ema_bn_batches=1", "train.log_every=1",
]


def _study(out, *extra, grid="generator-discriminator", seeds=2):
    args = ["study", "--grid", grid, "--out", str(out), "--seeds", str(seeds), "--steps", "2",
            "--eval-every", "1", "--eval-images", "4", "--segmenter-steps", "2", "--device", "cpu", "--no-progress"]
    for item in TINY_SETS:
        args += ["--set", item]
    return main([*args, *extra])


def test_paper_grid_has_the_three_tables_and_the_baselines_and_trains_dp_gan_once():
    tables = tables_of("paper-ablations")
    assert [t.key for t in tables] == ["a", "b", "c", "d"]
    assert all(len(t.rows) == 4 for t in tables[:3])
    runs = distinct_models(tables)
    # DP/DP, patch on the encoder and features on the decoder are one model: trained once;
    # the baselines table shares OASIS and DP-GAN with table (a) and adds SPADE
    assert runs["dp-dp"] == runs["patch-enc"] == runs["fm-dec"] == "dp-dp"
    assert runs["spade"] == "spade"
    assert len(set(runs.values())) == 11
    specs = plan(StudySettings(seeds=3), __import__("pathlib").Path("/x"))
    assert len(specs) == 33 and specs[0].seed == 0 and specs[-1].seed == 2  # every row gets seed 0 first
    assert [s.ablation for s in specs[:11]].count("spade") == 1


def test_study_runs_skips_finished_runs_and_writes_the_report(tmp_path, capsys):
    out = tmp_path / "study"
    assert _study(out) == 0
    specs = plan(open_study(out, None), out)
    assert len(specs) == 8  # 4 models x 2 seeds
    judge = ReferenceSegmenter.from_file(out / "segmenter" / "segmenter.pt").digest
    for spec in specs:
        record = json.loads(spec.result_path.read_text())
        assert record["step"] == 2 and record["seed"] == spec.seed
        assert record["judge"] == judge  # which segmenter scored it
        assert [e["step"] for e in record["history"]] == [1, 2]
        assert set(record["metrics"]) >= {"miou", "obj_miou", "refseg_fd"}
    report = (out / "results.md").read_text()
    for label in ("OA / OA (OASIS)", "OA / DP", "DP / OA", "DP / DP (DP-GAN)", "*real images*"):
        assert label in report
    assert " ± " in report  # two seeds: a spread
    assert "| noise diversity ↑ |" in report  # what the noise changes, beside what the label map decides
    assert "## Summary" in report and ("seed spread" in report)
    assert (out / "plots" / "miou_vs_step_a.svg").read_text().startswith("<svg")
    assert (out / "plots" / "iou_by_size_a.svg").is_file()

    # idempotent: a second call trains nothing
    stamp = {s.name: s.result_path.stat().st_mtime_ns for s in specs}
    capsys.readouterr()
    assert _study(out) == 0
    assert "0 to go" in capsys.readouterr().out
    assert {s.name: s.result_path.stat().st_mtime_ns for s in specs} == stamp

    # a run interrupted after step 1 (its step-1 checkpoint is the latest, no result) resumes
    # from there and, resume being exact, ends with the very same scores
    victim = specs[3]
    before = json.loads(victim.result_path.read_text())
    victim.result_path.unlink()
    (victim.run_dir / "checkpoints" / "step_00000002.pt").unlink()
    assert (victim.run_dir / "checkpoints" / "step_00000001.pt").is_file()
    assert _study(out) == 0
    after = json.loads(victim.result_path.read_text())
    assert after["step"] == 2 and after["metrics"] == before["metrics"]
    assert [e["step"] for e in after["history"]] == [1, 2]


def test_baselines_table_trains_spade_and_a_partial_study_reports_what_is_done(tmp_path, capsys):
    out = tmp_path / "baselines"
    assert _study(out, grid="baselines", seeds=1) == 0
    specs = plan(open_study(out, None), out)
    assert [s.ablation for s in specs] == ["spade", "oa-oa", "dp-dp"]
    spade = json.loads(specs[0].result_path.read_text())
    assert math.isfinite(spade["metrics"]["miou"]) and math.isfinite(spade["metrics"]["refseg_fd"])
    report = (out / "results.md").read_text()
    assert "### (d) baselines" in report and "| SPADE (no VGG loss) | 1 |" in report

    # a study stopped part-way: --report-only tables what is finished and says how much that is
    specs[1].result_path.unlink()
    capsys.readouterr()
    assert main(["study", "--out", str(out), "--report-only"]) == 0
    assert "(2/3 runs)" in capsys.readouterr().out
    report = (out / "results.md").read_text()
    assert "**2 of 3 runs finished**" in report and "| OASIS | 0 | n/a |" in report
    assert not specs[1].result_path.exists()  # nothing was trained


def test_quick_runs_the_whole_paper_grid_with_one_seed(tmp_path):
    """`--quick` at an even smaller size: its settings, explicit flags over them, all 11 models."""
    out = tmp_path / "quick"
    args = ["study", "--quick", "--out", str(out), "--steps", "2", "--eval-images", "2", "--segmenter-steps", "2",
            "--device", "cpu", "--no-progress"]
    for item in TINY_SETS:
        args += ["--set", item]
    assert main(args) == 0
    settings = open_study(out, None)
    assert settings.grid == "paper-ablations" and settings.seeds == QUICK["seeds"] == 1
    assert settings.eval_every == QUICK["eval_every"] and settings.steps == 2  # the flag wins over --quick
    specs = plan(settings, out)
    assert len(specs) == 11 and all(s.result_path.is_file() for s in specs)
    report = (out / "results.md").read_text()
    assert "**11 of 11 runs finished**" in report and "--quick" in report and "'steps': 2" in report
    for table in ("(a) generator and discriminator", "(b) patch loss", "(c) feature loss", "(d) baselines"):
        assert table in report
    assert "cannot tell (only 1 seed)" in report


def test_several_devices_share_the_runs_each_in_its_own_process(tmp_path, capsys):
    """The multi-GPU path with two CPU "devices": one worker per device, a subprocess per run."""
    out = tmp_path / "two"
    assert _study(out, "--device", "cpu,cpu", seeds=1) == 0
    printed = capsys.readouterr().out
    specs = plan(open_study(out, None), out)
    assert len(specs) == 4 and all(s.result_path.is_file() for s in specs)
    assert printed.count(" on cpu\n") == 4  # "study: <run> on cpu", one line per run handed out
    for spec in specs:
        assert (spec.run_dir.parent / f"{spec.name}.log").is_file()
    assert "**4 of 4 runs finished**" in (out / "results.md").read_text()


def test_other_settings_in_the_same_folder_are_refused(tmp_path):
    out = tmp_path / "s"
    open_study(out, StudySettings(grid="patch-loss", seeds=2))
    with pytest.raises(DPGANError, match="differs in: seeds"):
        open_study(out, StudySettings(grid="patch-loss", seeds=3))
    with pytest.raises(DPGANError, match="unknown study grid"):
        StudySettings(grid="everything")
    open_study(tmp_path / "q", StudySettings(**QUICK))
    with pytest.raises(DPGANError, match=r"other settings \(it was started with --quick\) \(differs in: seeds"):
        open_study(tmp_path / "q", StudySettings())


def test_a_worker_without_the_study_segmenter_says_where_it_looked(tmp_path):
    out = tmp_path / "s"
    settings = StudySettings(grid="patch-loss", seeds=1)
    open_study(out, settings)
    name = plan(settings, out)[0].name
    with pytest.raises(DPGANError, match=r"segmenter\.pt: not found; `dpgan study --out .*` trains it"):
        run_study(out, None, device="cpu", only=name)
    assert not (out / "runs").exists() or not any((out / "runs").iterdir())


def test_a_missing_device_is_refused_before_the_study_folder_is_made(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)  # as on a machine without a GPU
    with pytest.raises(DPGANError, match="no CUDA device is visible"):
        run_study(tmp_path / "s", StudySettings(seeds=1), device="cuda")
    assert not (tmp_path / "s").exists()


def test_summary_compares_with_the_dp_gan_row_against_the_seed_spread():
    def run(ablation, seed, miou):
        return {"ablation": ablation, "seed": seed, "metrics": {"miou": miou, "obj_miou": math.nan, "refseg_fd": 1.0}}

    table = [TABLES["a"]]
    results = [run("dp-dp", 0, 0.50), run("dp-dp", 1, 0.52), run("oa-oa", 0, 0.30), run("oa-oa", 1, 0.31),
               run("oa-dp", 0, 0.49), run("oa-dp", 1, 0.55), run("dp-oa", 0, 0.55)]
    lines = "\n".join(summary(results, table))
    assert "OA / OA (OASIS) vs DP / DP (DP-GAN), mIoU: -20.50 (worse than DP / DP (DP-GAN)), exceeds" in lines
    assert "OA / DP vs DP / DP (DP-GAN), mIoU: +1.00 (better than DP / DP (DP-GAN)), within the seed spread (5.66)" in lines and "within the seed spread" in lines
    assert "DP / OA vs DP / DP (DP-GAN), mIoU" in lines and "cannot tell (only 1 seed)" in lines


def test_export_keeps_settings_judge_and_records_and_from_continues_elsewhere(tmp_path, capsys):
    first, kept = tmp_path / "first", tmp_path / "kept"
    assert _study(first, "--export", str(kept), seeds=1) == 0
    judge = ReferenceSegmenter.from_file(first / "segmenter" / "segmenter.pt").digest
    names = sorted(p.name for p in (kept / "runs").iterdir())
    assert names == ["dp-dp-s0", "dp-oa-s0", "oa-dp-s0", "oa-oa-s0"]
    # what a study's numbers rest on, and none of its checkpoints or logs
    files = sorted(str(p.relative_to(kept)) for p in kept.rglob("*") if p.is_file() and "plots" not in p.parts)
    assert files == ["results.md", "runs/dp-dp-s0/study_result.json", "runs/dp-oa-s0/study_result.json",
                     "runs/oa-dp-s0/study_result.json", "runs/oa-oa-s0/study_result.json",
                     "segmenter/segmenter.json", "segmenter/segmenter.pt", "study.json"]
    report = (kept / "results.md").read_text()
    assert f"Continue it: `dpgan study --out OUT --from {kept}`" in report and f"weights digest {judge}" in report
    assert "**4 of 4 runs finished**" in report

    # elsewhere: one record judged by another segmenter is not taken, one run is missing
    (kept / "runs" / "oa-oa-s0" / "study_result.json").unlink()
    odd = kept / "runs" / "dp-oa-s0" / "study_result.json"
    odd.write_text(odd.read_text().replace(judge, "0123456789abcdef"))
    capsys.readouterr()
    again = tmp_path / "again"
    assert main(["study", "--out", str(again), "--from", str(kept), "--device", "cpu", "--no-progress"]) == 0
    out = capsys.readouterr()
    assert f"2 finished run(s) taken from {kept}, 1 left out; judge {judge}" in out.out
    assert "dp-oa-s0 not taken" in out.err and "0123456789abcdef" in out.err
    assert "(2 done, 2 to go)" in out.out  # it trains only what it lacks, under the same judge
    assert not (again / "runs" / "dp-dp-s0" / "checkpoints").exists()
    assert (again / "runs" / "oa-oa-s0" / "checkpoints").is_dir()
    assert ReferenceSegmenter.from_file(again / "segmenter" / "segmenter.pt").digest == judge
    assert "**4 of 4 runs finished**" in (again / "results.md").read_text()


def test_from_refuses_other_settings_and_another_judge(tmp_path, capsys):
    first, kept = tmp_path / "first", tmp_path / "kept"
    assert _study(first, "--export", str(kept), seeds=1) == 0
    def refused(*argv: str) -> str:
        capsys.readouterr()
        assert main(["study", *argv]) == 2
        return capsys.readouterr().err

    assert "takes the settings from its study.json; leave out --seeds" in refused(
        "--out", str(tmp_path / "x"), "--from", str(kept), "--seeds", "2")
    assert "no study.json there" in refused("--out", str(tmp_path / "x"), "--from", str(tmp_path / "nothing"))
    assert not (tmp_path / "x").exists()
    # a study folder whose own judge has other weights: the scores would not compare
    other = tmp_path / "other"
    assert main(["study", "--out", str(other), "--from", str(kept), "--report-only"]) == 0
    path = other / "segmenter" / "segmenter.pt"
    raw = torch.load(path, weights_only=True)
    first_weight = next(k for k, v in raw["state_dict"].items() if v.is_floating_point())
    raw["state_dict"][first_weight] += 1e-3
    torch.save(raw, path)
    assert re.search(r"is judged by segmenter [0-9a-f]{16}, .* by [0-9a-f]{16}: their scores do not compare",
                     refused("--out", str(other), "--from", str(kept), "--report-only"))
    # the report of that folder leaves out the records of the first judge, and says so
    capsys.readouterr()
    assert main(["study", "--out", str(other), "--report-only"]) == 0
    err = capsys.readouterr().err
    assert err.count("left out of the report: scored by segmenter") == 4
    assert "**0 of 4 runs finished**" in (other / "results.md").read_text()
    assert "that is the study folder itself" in refused("--out", str(first), "--report-only", "--export", str(first))
    (tmp_path / "a_file").write_text("")
    assert "a file is in the way" in refused("--out", str(first), "--report-only", "--export", str(tmp_path / "a_file"))
