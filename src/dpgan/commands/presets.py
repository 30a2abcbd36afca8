"""`dpgan presets`: the named configurations and the paper's ablation rows."""

from __future__ import annotations

import argparse
import json

from dpgan.presets import ABLATION_LOSS, ABLATIONS, PRESETS, preset


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("presets", help="list the presets and ablations, or print one as JSON")
    p.add_argument("name", nargs="?", help="print this preset's full configuration")
    p.add_argument("--ablation", help="apply one of the paper's ablation rows")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.name:
        print(preset(args.name, args.ablation).to_json())
        return 0
    print("presets (dpgan train --preset NAME):")
    for name in PRESETS:
        cfg = preset(name)
        d, m, t = cfg.data, cfg.model, cfg.train
        print(
            f"  {name:<18} {d.height}x{d.width}  G={m.generator} D={m.discriminator} width {m.g_width}/{m.d_width}  "
            f"batch {t.batch_size}  lr {t.lr_g:g}/{t.lr_d:g}  ema {t.ema_decay}  steps {t.steps}  "
            f"labelmix {cfg.loss.lambda_labelmix:g}"
        )
    print("\nablations (dpgan train --ablation NAME), the rows of the paper's tables a, b, c and the SPADE baseline:")
    for name, changes in ABLATIONS.items():
        loss = ABLATION_LOSS.get(name)
        print(f"  {name:<14} {json.dumps(changes)}" + (f"  loss {json.dumps(loss)}" if loss else ""))
    return 0
