#!/bin/bash
# How the full grid of docs/study/full-6blocks/ (the six-block preset) was run: table (a) and the baselines (d) with 3 seeds
# first, then the rest of the grid in the runner's own order. `--only NAME` is the runner's
# worker call (one run of an existing study); finished runs are skipped, interrupted ones resume.
cd "$(dirname "$0")/../../.." || exit 1  # the repository root
for s in 0 1 2; do
  for row in oa-oa dp-dp spade oa-dp dp-oa; do
    echo "study-order: $row-s$s $(date +%T)"
    .venv/bin/dpgan study --out studies/paper-ablations --only "$row-s$s" --device cpu --no-progress || exit 1
  done
done
.venv/bin/dpgan study --out studies/paper-ablations --device cpu --no-progress
