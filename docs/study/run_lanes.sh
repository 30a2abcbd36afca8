#!/bin/bash
# Trains the named runs of a study on the CPU in two lanes of one thread each, the way the
# runs of docs/study/paper-ablations were made on the 2-core development machine:
#
#   docs/study/run_lanes.sh OUT NAME...      # e.g. docs/study/run_lanes.sh studies/pa fm-none-s1 fm-enc-s1
#
# OUT must already be a study folder; `dpgan study --out OUT --from docs/study/paper-ablations
# --report-only` makes one holding the kept study's settings, judge and finished runs. Each lane
# takes the next name from a shared queue and trains it with the runner's worker call
# (`dpgan study --only NAME`), which skips a finished run and resumes an interrupted one; a
# lane's output goes to OUT/runs/NAME.log. When both lanes are done the report is written.
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 OUT NAME..." >&2
  exit 2
fi
cd "$(dirname "$0")/../.."  # the repository root
out=$1
shift
if [ ! -f "$out/study.json" ]; then
  echo "$out is not a study folder (no study.json); make it with: .venv/bin/dpgan study --out $out --from docs/study/paper-ablations --report-only" >&2
  exit 2
fi
queue=$(mktemp)
trap 'rm -f "$queue" "$queue.lock"' EXIT
printf '%s\n' "$@" > "$queue"
mkdir -p "$out/runs"
lane() {
  local name
  while name=$(flock "$queue.lock" sh -c 'n=$(head -n 1 "$0"); [ -n "$n" ] && sed -i 1d "$0"; echo "$n"' "$queue") \
      && [ -n "$name" ]; do
    echo "$(date +%T) start $name"
    if OMP_NUM_THREADS=1 .venv/bin/dpgan study --out "$out" --only "$name" --device cpu --no-progress --no-report \
        > "$out/runs/$name.log" 2>&1; then
      echo "$(date +%T) done $name"
    else
      echo "$(date +%T) FAILED $name (see $out/runs/$name.log)"
    fi
  done
}
lane & lane & wait
.venv/bin/dpgan study --out "$out" --report-only
