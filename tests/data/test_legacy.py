"""Files written by an earlier dpgan still load and make the same images.

tests/data/legacy/ holds a 2-step checkpoint and its saved model, written before the package was
reorganised (tests/data/legacy/make_legacy.py), and what they produced then (expected.pt).
"""

import shutil
import sys
from pathlib import Path

import torch

from dpgan import DPGAN
from dpgan.cli import main
from tiny_args import TINY_TRAIN

LEGACY = Path(__file__).resolve().parent / "legacy"
sys.path.insert(0, str(LEGACY))

from make_legacy import SMALLER, probe_label  # noqa: E402

EXPECTED = torch.load(LEGACY / "expected.pt", weights_only=True)


def _label(model: DPGAN) -> torch.Tensor:
    return probe_label(model.num_classes, model.config.data.height, model.config.data.width)


def test_legacy_checkpoint_makes_the_recorded_images():
    model = DPGAN.from_checkpoint(LEGACY / "checkpoint.pt", device="cpu")
    images = model.generate(_label(model), seed=EXPECTED["seed"], num_samples=2)
    assert torch.equal(torch.from_numpy(images), EXPECTED["images"])


def test_legacy_saved_model_makes_the_recorded_images():
    model = DPGAN.from_pretrained(LEGACY / "saved_model", device="cpu")
    images = model.generate(_label(model), seed=EXPECTED["seed"], num_samples=2)
    assert torch.equal(torch.from_numpy(images), EXPECTED["images"])


def test_legacy_discriminator_gives_the_recorded_logits():
    from dpgan.config import Config
    from dpgan.models import build_models_from_config

    ck = torch.load(LEGACY / "checkpoint.pt", weights_only=True)
    cfg = Config.from_json(ck["config"])
    _, D = build_models_from_config(cfg.model, EXPECTED["d_logits"].shape[1] - 1)
    D.load_state_dict(ck["discriminator"])
    D.eval()
    h, w = cfg.data.height, cfg.data.width
    image = torch.linspace(-1, 1, 2 * 3 * h * w).reshape(2, 3, h, w)
    with torch.no_grad():
        logits = D(image).logits
    torch.testing.assert_close(logits[:, :, ::4, ::4], EXPECTED["d_logits"], rtol=0, atol=1e-6)


def test_legacy_checkpoint_resumes(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    shutil.copyfile(LEGACY / "checkpoint.pt", run / "checkpoints" / "step_00000002.pt")
    assert main(["train", "--run-dir", str(run), "--resume", *TINY_TRAIN, *SMALLER, "--steps", "3"]) == 0
    ck = torch.load(run / "checkpoints" / "step_00000003.pt", weights_only=True)
    assert ck["step"] == 3
    assert set(ck) >= {"generator", "discriminator", "generator_ema", "opt_g", "opt_d", "rng", "config",
                       "dataset_info", "step", "seconds"}
