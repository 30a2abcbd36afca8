"""`dpgan --help` against what it cost when every command imported torch first.

Times, as whole processes and interleaved, `python -m dpgan --help` and `python -c "import
dpgan.training.loop"` (the trainer with torch: what any command, --help included, used to
load), and prints the medians and their ratio.

    python benchmarks/cli_help_speed.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from statistics import median

COMMANDS = {
    "dpgan --help": [sys.executable, "-m", "dpgan", "--help"],
    "import the trainer (torch)": [sys.executable, "-c", "import dpgan.training.loop"],
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(args.repeats + 1):  # the first round warms the file cache and is dropped
        for name, cmd in COMMANDS.items():
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            times[name].append(time.perf_counter() - t0)
    med = {name: median(ts[1:]) for name, ts in times.items()}
    for name, m in med.items():
        print(f"{name:30s} median {m:.3f} s over {args.repeats} runs")
    print(f"ratio: --help takes {med['dpgan --help'] / med['import the trainer (torch)']:.3f}x the torch import")


if __name__ == "__main__":
    main()
