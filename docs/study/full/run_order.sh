#!/bin/bash
# How docs/study/full/ was run (the 4-block preset), as far as it got: the study folder with the
# default settings (3 seeds, 1000 steps, evaluation every 250 steps on 64 maps), its reference
# segmenter from `dpgan train-segmenter` (3000 steps, the study's default, 2 threads), then the
# runs with the runner's worker call, one thread each, two lanes taking the next run from one
# queue. The queue puts the paper's central comparison first: table (d) for seeds 0-2, then
# OA/DP and DP/OA for seeds 0-2, then seed 0 of the six other rows of tables (b) and (c). Runs
# not in the queue are not run yet; the plain command (`dpgan study --out "$out"`) continues the
# study where it stands.
set -e
cd "$(dirname "$0")/../../.." || exit 1  # the repository root
out=study_new  # the folder name the runs were made in
queue="$out.queue"  # the run names not started yet, one per line
OMP_NUM_THREADS=2 .venv/bin/dpgan train-segmenter --preset synthetic-streets --steps 3000 --out "$out/segmenter"
.venv/bin/python -c "from pathlib import Path; from dpgan.study.runner import StudySettings, open_study
open_study(Path('$out'), StudySettings(grid='paper-ablations', preset='synthetic-streets'))"
printf '%s\n' dp-dp-s0 oa-oa-s0 spade-s0 dp-dp-s1 oa-oa-s1 spade-s1 dp-dp-s2 oa-oa-s2 spade-s2 \
  oa-dp-s0 dp-oa-s0 oa-dp-s1 dp-oa-s1 oa-dp-s2 dp-oa-s2 \
  fm-none-s0 patch-none-s0 fm-enc-s0 patch-dec-s0 fm-enc+dec-s0 patch-enc+dec-s0 > "$queue"
lane() {
  while name=$(flock "$queue.lock" sh -c 'n=$(head -n 1 "$0"); [ -n "$n" ] && sed -i 1d "$0"; echo "$n"' "$queue") \
      && [ -n "$name" ]; do
    OMP_NUM_THREADS=1 .venv/bin/dpgan study --out "$out" --only "$name" --device cpu --no-progress --no-report
  done
}
lane & lane & wait
.venv/bin/dpgan study --out "$out" --report-only
