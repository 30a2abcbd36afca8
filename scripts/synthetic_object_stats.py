"""How small the objects of the embedded synthetic-streets benchmark are (docs/study/README.md).

Usage: python scripts/synthetic_object_stats.py [--scenes 200] [--height 64 --width 128]
Counts connected instances of the small-object classes (pole, traffic sign, traffic light, car,
person) in validation scenes and bins them by their share of the image, with the bins of
dpgan.evaluate.object_size.
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy import ndimage

from dpgan.data.synthetic import SYNTHETIC_STREETS, make_pair
from dpgan.evaluate.object_size import SIZE_BIN_EDGES, size_bin_names


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scenes", type=int, default=200)
    p.add_argument("--height", type=int, default=64)
    p.add_argument("--width", type=int, default=128)
    args = p.parse_args()
    areas, with_small = [], 0
    for i in range(args.scenes):
        label, _ = make_pair(0, "val", i, args.height, args.width)
        found_small = False
        for cls in SYNTHETIC_STREETS.small_object_classes:
            comps, k = ndimage.label(label == cls)
            if k:
                share = np.bincount(comps.ravel())[1:] / label.size
                areas.extend(share.tolist())
                found_small |= bool((share < 0.01).any())
        with_small += found_small
    a = np.array(areas)
    bins = np.searchsorted(SIZE_BIN_EDGES, a, side="right")
    print(f"{args.scenes} validation scenes at {args.height}x{args.width}")
    print(f"scenes holding an object instance smaller than 1% of the image: {with_small} ({100 * with_small / args.scenes:.0f}%)")
    print(f"object instances per scene: {len(a) / args.scenes:.1f}; largest / smallest area: {a.max() / a.min():.0f}x")
    for b, name in enumerate(size_bin_names(SIZE_BIN_EDGES)):
        print(f"  {name:>8}: {100 * (bins == b).mean():.0f}% of instances")


if __name__ == "__main__":
    main()
