"""`dpgan export`: a trained generator for other runtimes.

Two formats, each a folder:

- `safetensors`: the saved model of dpgan.inference.pretrained (config.json + model.safetensors), which
  `DPGAN.from_pretrained`, `dpgan synthesize` and `dpgan demo` read.
- `onnx`: model.onnx plus config.json. The graph takes class ids, not one-hot maps:
  inputs `label` int64 (B, H, W) and `z` float32 (B, z_dim) (absent for a generator trained
  without 3D noise); output `image` float32 (B, 3, H, W) in [-1, 1]. Batch, height and width
  are dynamic (height and width multiples of 2^(num_res_blocks-1)). config.json lists the
  classes, their colours and how noise is drawn, so a runtime needs nothing else.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from dpgan.errors import DPGANError, refuse_overwrite
from dpgan.files import atomic_path, write_text_atomic
from dpgan.inference.model_card import CARD_FILE, Origin, model_card, public_config, run_folder_of
from dpgan.inference.pretrained import bake_spectral_norm, save_pretrained
from dpgan.inference.synthesize import LoadedGenerator

FORMATS = ("safetensors", "onnx")
ONNX_FILE = "model.onnx"
ONNX_FORMAT = "dpgan-onnx"
OPSET = 18


class IdsToImage(nn.Module):
    """Class ids (+ z) -> image: the one-hot encoding moves into the graph, written as a
    comparison with a range so that every exporter and runtime has the operators for it."""

    def __init__(self, generator: nn.Module, num_classes: int) -> None:
        super().__init__()
        self.generator = generator
        self.register_buffer("ids", torch.arange(num_classes).view(1, num_classes, 1, 1), persistent=False)

    def forward(self, label: Tensor, z: Tensor | None = None) -> Tensor:
        onehot = (label[:, None] == self.ids).to(torch.float32)
        return self.generator(onehot, z)


def export(loaded: LoadedGenerator, fmt: str, out_dir: str | Path, *, overwrite: bool = False) -> list[Path]:
    """Write the chosen format into `out_dir`; refuses to replace existing files unless told."""
    if fmt not in FORMATS:
        raise DPGANError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    out_dir = Path(out_dir)
    names = ["config.json", "model.safetensors"] if fmt == "safetensors" else ["config.json", ONNX_FILE]
    names.append(CARD_FILE)
    origin = Origin(run_dir=run_folder_of(loaded.path))
    refuse_overwrite([out_dir / n for n in names], overwrite)
    if fmt == "onnx":
        if importlib.util.find_spec("onnx") is None:  # torch's exporter needs it to write the graph
            raise DPGANError("--format onnx needs the onnx package: pip install 'dpgan[onnx]' "
                             "(or pip install onnx==1.23.2)")
    G = loaded.generator.cpu()
    if fmt == "safetensors":
        save_pretrained(G, loaded.config, loaded.info, loaded.step, out_dir, origin=origin, overwrite=True)  # checked above
        return [out_dir / n for n in names]
    out_dir.mkdir(parents=True, exist_ok=True)
    export_onnx(G, loaded.info.num_classes, loaded.config.data.height, loaded.config.data.width, out_dir / ONNX_FILE)
    uses_noise = bool(getattr(G, "use_3d_noise", True))
    meta = {
        "format": ONNX_FORMAT, "step": loaded.step, "opset": OPSET,
        "inputs": {"label": "int64 (B, H, W) class ids",
                   **({"z": f"float32 (B, {G.z_dim}) standard normal"} if uses_noise else {})},
        "output": {"image": "float32 (B, 3, H, W) in [-1, 1]"},
        "size_multiple": 2 ** (loaded.config.model.num_res_blocks - 1),
        "trained_size": [loaded.config.data.height, loaded.config.data.width],
        "noise": "dpgan draws z for seed s as torch.randn(1, z_dim, generator=torch.Generator().manual_seed(s))",
        "config": public_config(loaded.config), "dataset_info": loaded.info.to_dict(),
    }  # fmt: skip
    write_text_atomic(out_dir / "config.json", json.dumps(meta, indent=2, sort_keys=True) + "\n")
    write_text_atomic(out_dir / CARD_FILE, model_card(loaded.config, loaded.info.name, loaded.step, origin=origin,
                                                      fmt="onnx"))
    return [out_dir / n for n in names]


def export_onnx(generator: nn.Module, num_classes: int, height: int, width: int, path: Path) -> Path:
    """Trace the eval-mode generator (a copy, spectral norm baked) into an ONNX file, written to
    a temporary name and renamed, so a failed export leaves no half file behind."""
    model = IdsToImage(bake_spectral_norm(copy.deepcopy(generator)), num_classes).eval()
    uses_noise = bool(getattr(generator, "use_3d_noise", True))
    label = torch.zeros(1, height, width, dtype=torch.long)
    args: tuple[Tensor, ...] = (label, torch.zeros(1, generator.z_dim)) if uses_noise else (label,)
    names = ["label", "z"] if uses_noise else ["label"]
    axes = {"label": {0: "batch", 1: "height", 2: "width"}, "image": {0: "batch", 2: "height", 3: "width"}}
    if uses_noise:
        axes["z"] = {0: "batch"}
    # the TorchScript exporter (no extra packages needed) warns that it is deprecated and that
    # shape checks in the forward become constants; the test checks other sizes still match
    with atomic_path(path) as tmp, torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(model, args, str(tmp), input_names=names, output_names=["image"],
                          dynamic_axes=axes, opset_version=OPSET, dynamo=False)
    return path
