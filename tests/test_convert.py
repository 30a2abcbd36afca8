"""`dpgan convert`: published DP_GAN and OASIS generators give the same images as ours.

tests/data/published/ holds, per published code base, `<kind>_generator.pth`: the state dict
of its own generator class (built from the published source at channels_G=1, z_dim=3,
4 classes, 32x64; spectral norm on, SPADE norm "syncbatch"), randomised, run 5 times in train
mode so that the power-iteration vectors u, v and the batch-norm running statistics are not at
their initial values, then rounded to float8 (e4m3) to keep the files small; and
`<kind>_forward.pt`: a label map (ids), the z the published forward drew for it (it samples z
itself: it was seeded, and the same draw was recorded) and its eval-mode output, computed from
the rounded weights (cast back to float32).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from dpgan import DPGAN
from dpgan.commands.convert import register
from dpgan.inference.convert import convert_checkpoint, convert_state_dict, load_published
from dpgan.errors import CheckpointError, DPGANError
from dpgan.models import GeneratorOptions, build_generator
from dpgan.inference.pretrained import load_pretrained

DATA = Path(__file__).parent / "data" / "published"
NUM_CLASSES, Z_DIM = 4, 3
# published channels_G=1; the SPADE hidden width (OASIS) and the pyramid widths (DP-GAN) are
# fixed at 128 and 64 in the published code
OURS = {"dpgan": "dp", "oasis": "oa"}
ATOL = 1e-5  # float32 with a different convolution grouping (fused gamma/beta): measured ~1e-7


def _reference(kind: str) -> tuple[dict, torch.Tensor, torch.Tensor, torch.Tensor]:
    state = load_published(DATA / f"{kind}_generator.pth")
    io = torch.load(DATA / f"{kind}_forward.pt", weights_only=True)
    onehot = F.one_hot(io["label_ids"].long(), NUM_CLASSES).permute(0, 3, 1, 2).float()
    return state, onehot, io["z"], io["output"]


def _ours(kind: str, spectral_norm: bool = True):
    return build_generator(GeneratorOptions(OURS[kind], width=1, z_dim=Z_DIM, spectral_norm=spectral_norm), NUM_CLASSES)


@pytest.mark.parametrize("kind", ["dpgan", "oasis"])
def test_converted_generator_reproduces_published_output(kind):
    state, onehot, z, want = _reference(kind)
    assert want.std() > 0.2  # the reference is neither saturated nor flat
    G = _ours(kind)
    converted, report = convert_state_dict(state, kind, G)
    G.load_state_dict(converted)
    with torch.no_grad():
        got = G.eval()(onehot, z)
    assert (got - want).abs().max().item() <= ATOL
    assert report.unused == () and report.defaulted == () and report.baked == ()
    assert report.converted == len(G.state_dict()) and report.used == len(state)


@pytest.mark.parametrize("kind", ["dpgan", "oasis"])
def test_gamma_beta_order_and_z_matter(kind):
    """The comparison above has power: swapping gamma and beta, or another z, changes the image."""
    state, onehot, z, want = _reference(kind)
    swapped = dict(state)
    for k in state:
        if ".mlp_gamma." in k:
            beta = k.replace(".mlp_gamma.", ".mlp_beta.")
            swapped[k], swapped[beta] = state[beta], state[k]
    G = _ours(kind)
    G.load_state_dict(convert_state_dict(swapped, kind, G)[0])
    with torch.no_grad():
        assert (G.eval()(onehot, z) - want).abs().max() > 0.05
        G.load_state_dict(convert_state_dict(state, kind, G)[0])
        assert (G(onehot, z + 1.0) - want).abs().max() > 0.05


@pytest.mark.parametrize("kind", ["dpgan", "oasis"])
def test_target_without_spectral_norm_gets_sigma_baked_in(kind):
    state, onehot, z, want = _reference(kind)
    G = _ours(kind, spectral_norm=False)
    converted, report = convert_state_dict(state, kind, G)
    G.load_state_dict(converted)
    with torch.no_grad():
        assert (G.eval()(onehot, z) - want).abs().max().item() <= ATOL
    assert len(report.baked) == sum(k.endswith(".weight_orig") for k in state) > 0


def test_convert_checkpoint_writes_a_saved_model_that_generates_the_same_images(tmp_path):
    _, onehot, z, want = _reference("dpgan")
    src = tmp_path / "1500_EMA.pth"
    shutil.copy(DATA / "dpgan_generator.pth", src)
    out, report = convert_checkpoint(src, tmp_path / "model", "dpgan", num_classes=NUM_CLASSES, z_dim=Z_DIM,
                                     image_size=(32, 64))
    G, config, info, step = load_pretrained(out)
    assert step == 1500 and info.num_classes == NUM_CLASSES and report.unused == ()
    m = config.model
    assert (m.generator, m.g_width, m.z_dim, m.pyramid_width, m.num_res_blocks) == ("dp", 1, Z_DIM, 64, 6)
    assert (config.data.height, config.data.width) == (32, 64)
    with torch.no_grad():
        assert (G(onehot, z) - want).abs().max().item() <= ATOL
    model = DPGAN.from_pretrained(out)  # what users load it with
    assert model.num_classes == NUM_CLASSES


def _cli(argv: list[str]) -> int:
    """`dpgan convert` through its own parser (cli.py lists the command modules)."""
    parser = argparse.ArgumentParser(prog="dpgan")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_prints_the_report_and_refuses_to_overwrite(tmp_path, capsys):
    args = ["convert", "--from", "oasis", "--checkpoint", str(DATA / "oasis_generator.pth"),
            "--num-classes", "4", "--z-dim", "3", "--size", "32x64", str(tmp_path / "m")]
    assert _cli(args) == 0
    printed = capsys.readouterr().out
    assert "converted 176 tensors from 208 published oasis tensors" in printed and "left over: none" in printed
    meta = json.loads((tmp_path / "m" / "config.json").read_text())
    assert meta["config"]["model"]["generator"] == "oa" and meta["config"]["model"]["spade_hidden"] == 128
    assert meta["config"]["model"]["patch_loss"] == "none" and meta["step"] == 0
    card = (tmp_path / "m" / "README.md").read_text()  # the model card names where the weights come from
    assert "library_name: dpgan" in card and "boschresearch/OASIS" in card and "upstream repository's LICENSE" in card
    refused = r"m/config.json already exists \(3 files would be replaced\); pass --overwrite"
    with pytest.raises(DPGANError, match=refused):
        _cli(args)
    assert _cli([*args, "--overwrite"]) == 0


def test_leftover_keys_are_reported():
    state, *_ = _reference("oasis")
    state = {f"module.{k}": v for k, v in state.items()}  # saved through DataParallel
    state["module.extra.weight"] = torch.zeros(3)
    _, report = convert_state_dict(state, "oasis", _ours("oasis"))
    assert report.unused == ("extra.weight",)
    assert "left over: extra.weight" in report.summary()


def test_missing_key_is_named():
    state, *_ = _reference("dpgan")
    del state["body.3.norm_1.mlp_beta.weight"]
    with pytest.raises(CheckpointError, match=r"missing body\.3\.norm_1\.mlp_beta\.weight"):
        convert_state_dict(state, "dpgan", _ours("dpgan"), source="x.pth")
    state = {k: v for k, v in _reference("oasis")[0].items() if ".first_norm." not in k}  # instance norm
    with pytest.raises(CheckpointError, match=r"missing body\.0\.norm_0\.first_norm\.running_mean .*instance"):
        convert_state_dict(state, "oasis", _ours("oasis"))


def test_wrong_shape_is_named():
    state, *_ = _reference("dpgan")
    state["seg_pyrmid.2.0.weight"] = torch.zeros(64, 64, 1, 1)
    with pytest.raises(CheckpointError, match=r"x\.pth: seg_pyrmid\.2\.0\.weight gives shape \(64, 64, 1, 1\), "
                                              r"but pyramid\.levels\.2\.0\.weight"):
        convert_state_dict(state, "dpgan", _ours("dpgan"), source="x.pth")


def test_wrong_kind_dataset_or_file_gives_one_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="use --from dpgan"):
        convert_state_dict(load_published(DATA / "dpgan_generator.pth"), "oasis", _ours("oasis"))
    with pytest.raises(CheckpointError, match="use --from oasis"):
        convert_state_dict(load_published(DATA / "oasis_generator.pth"), "dpgan", _ours("dpgan"))
    with pytest.raises(CheckpointError, match=r"7 input channels .* 35 classes \+ z_dim 64 = 99"):
        convert_checkpoint(DATA / "dpgan_generator.pth", tmp_path / "o", "dpgan", dataset="cityscapes")
    bad = tmp_path / "1000_EMA.pth"
    bad.write_bytes(b"not a pickle")
    with pytest.raises(CheckpointError, match="1000_EMA.pth: not loadable"):
        convert_checkpoint(bad, tmp_path / "o", "dpgan", num_classes=4, z_dim=3)
    torch.save({"netD": torch.zeros(1)}, bad)
    with pytest.raises(CheckpointError, match="no fc.weight"):
        convert_checkpoint(bad, tmp_path / "o", "dpgan", num_classes=4, z_dim=3)
