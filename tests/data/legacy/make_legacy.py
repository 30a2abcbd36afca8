"""Write the legacy fixtures: a tiny run's checkpoint, its saved model, and what they produce.

Run once with the code whose formats the fixtures pin (`python tests/data/legacy/make_legacy.py`);
tests/data/test_legacy.py then checks that today's code loads both and makes the same images.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # tests/, for tiny_args

from tiny_args import TINY_TRAIN  # noqa: E402

from dpgan import DPGAN  # noqa: E402
from dpgan.checkpoint import load_checkpoint  # noqa: E402
from dpgan.cli import main  # noqa: E402
from dpgan.models import build_models_from_config  # noqa: E402
from dpgan.config import Config  # noqa: E402


# smaller still than the tests' tiny run, so the fixture files stay a few hundred KB
SMALLER = ["--set", "model.g_width=1", "--set", "model.d_width=2", "--set", "model.z_dim=4",
           "--set", "model.pyramid_width=4", "--set", "model.spade_hidden=8"]


def probe_label(num_classes: int, height: int, width: int) -> torch.Tensor:
    """A fixed label map with every class in vertical stripes."""
    cols = torch.arange(width) * num_classes // width
    return cols.expand(height, width).clone()


def main_() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        assert main(["train", "--run-dir", str(run), *TINY_TRAIN, *SMALLER]) == 0
        ck = load_checkpoint(run)
        shutil.copyfile(ck["path"], HERE / "checkpoint.pt")
        saved = HERE / "saved_model"
        if saved.exists():
            shutil.rmtree(saved)
        assert main(["export", str(run), str(saved)]) == 0

    model = DPGAN.from_checkpoint(HERE / "checkpoint.pt", device="cpu")
    cfg = model.config
    label = probe_label(model.num_classes, cfg.data.height, cfg.data.width)
    images = model.generate(label, seed=3, num_samples=2)
    pretrained = DPGAN.from_pretrained(saved, device="cpu").generate(label, seed=3, num_samples=2)
    assert (images == pretrained).all()

    # the discriminator's output on a fixed input pins its state-dict keys and forward
    ck = load_checkpoint(HERE / "checkpoint.pt")
    _, D = build_models_from_config(Config.from_json(ck["config"]).model, model.num_classes)
    D.load_state_dict(ck["discriminator"])
    D.eval()
    image = torch.linspace(-1, 1, 2 * 3 * cfg.data.height * cfg.data.width).reshape(2, 3, cfg.data.height, cfg.data.width)
    with torch.no_grad():
        out = D(image)
    logits = out.logits if hasattr(out, "logits") else out[0]
    torch.save({"images": torch.from_numpy(images), "d_logits": logits[:, :, ::4, ::4].clone(), "seed": 3},
               HERE / "expected.pt")


if __name__ == "__main__":
    main_()
