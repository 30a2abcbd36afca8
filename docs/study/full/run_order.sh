#!/bin/bash
# How docs/study/full/ was run (the 4-block preset), as far as it got: the study folder with the
# default settings (3 seeds, 1000 steps, evaluation every 250 steps on 64 maps), its reference
# segmenter from `dpgan train-segmenter` (3000 steps, the study's default), then seed 0 of tables
# (a) and (d) with the runner's worker call, one thread each, two at a time: DP-GAN, then OASIS
# with OA/DP, then SPADE. DP/OA and seeds 1-2 are not run yet; the plain command
# (`dpgan study --out "$out"`) continues the study where it stands.
set -e
cd "$(dirname "$0")/../../.." || exit 1  # the repository root
out=study_new  # the folder name the runs were made in
.venv/bin/dpgan train-segmenter --preset synthetic-streets --steps 3000 --out "$out/segmenter"
.venv/bin/python -c "from pathlib import Path; from dpgan.study.runner import StudySettings, open_study
open_study(Path('$out'), StudySettings(grid='paper-ablations', preset='synthetic-streets'))"
for row in dp-dp oa-oa oa-dp spade; do
  OMP_NUM_THREADS=1 .venv/bin/dpgan study --out "$out" --only "$row-s0" --device cpu --no-progress
done
.venv/bin/dpgan study --out "$out" --report-only
