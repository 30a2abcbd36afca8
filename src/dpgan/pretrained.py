"""A saved model: the EMA generator alone, as `config.json` + `model.safetensors`.

This is what people who generate rather than train pass around: no optimisers, no
discriminator, no pickles. Spectral normalisation is baked into plain weights: in eval mode a
spectral-normalised layer divides its weight by a fixed sigma (no power iteration), so storing
weight / sigma gives the same images from a plain network, one that also exports to ONNX
without parametrisations.

`dpgan synthesize`, `dpgan demo` and `DPGAN.from_pretrained` all read it: any of them accepts a
run folder, a checkpoint file or a saved-model folder.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from dpgan.config import Config
from dpgan.data.info import DatasetInfo
from dpgan.errors import CheckpointError
from dpgan.models import build_models_from_config

FORMAT = "dpgan-pretrained"
VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


def is_pretrained_dir(path: str | Path) -> bool:
    """A saved-model folder holds model.safetensors (a run folder holds checkpoints/)."""
    return Path(path).is_dir() and (Path(path) / WEIGHTS_FILE).exists()


def baked_state_dict(generator: nn.Module) -> dict[str, Tensor]:
    """The generator's state with every spectral-normalised weight replaced by the plain
    weight / sigma that its eval-mode forward uses (no power iteration runs: u and v stay as
    trained). The generator itself is left untouched (copying a parametrised module and
    removing the copy's parametrisation would edit the class both share)."""
    was_training = generator.training
    generator.eval()
    state = {k: v for k, v in generator.state_dict().items() if ".parametrizations." not in k}
    with torch.no_grad():
        for name, module in generator.named_modules():
            if parametrize.is_parametrized(module, "weight"):
                state[f"{name}.weight" if name else "weight"] = module.weight.detach().clone()
    generator.train(was_training)
    return {k: v.detach().cpu().contiguous() for k, v in state.items()}


def plain_generator(config: Config, num_classes: int, state: dict[str, Tensor] | None = None) -> nn.Module:
    """The generator of `config` built without spectral norm (eval mode), optionally loaded."""
    G, _ = build_models_from_config(replace(config.model, spectral_norm=False), num_classes)
    if state is not None:
        G.load_state_dict(state)
    return G.requires_grad_(False).eval()


def save_pretrained(generator: nn.Module, config: Config, info: DatasetInfo, step: int,
                    directory: str | Path) -> Path:
    """Write the two files; the weights first, so a folder with a config always has weights."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = baked_state_dict(generator)
    meta = {"format": FORMAT, "version": VERSION, "step": int(step),
            "config": config.to_dict(), "dataset_info": info.to_dict()}
    save_file(state, str(directory / WEIGHTS_FILE), metadata={"format": FORMAT})
    (directory / CONFIG_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return directory


def load_pretrained(directory: str | Path) -> tuple[nn.Module, Config, DatasetInfo, int]:
    """(generator on the CPU in eval mode, config, dataset info, step); a clear
    CheckpointError naming the file for anything missing, foreign or corrupt."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    directory = Path(directory)
    config_path, weights_path = directory / CONFIG_FILE, directory / WEIGHTS_FILE
    for path in (config_path, weights_path):
        if not path.is_file():
            raise CheckpointError(f"{path}: not found; a saved model is a folder with {CONFIG_FILE} and "
                                  f"{WEIGHTS_FILE} (written by `dpgan export` or DPGAN.save_pretrained)")
    try:
        meta = json.loads(config_path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{config_path}: not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{config_path}: not a dpgan saved model (no \"format\": \"{FORMAT}\")")
    if meta.get("version", 0) > VERSION:
        raise CheckpointError(f"{config_path}: saved-model version {meta['version']} is newer than this "
                              f"dpgan reads ({VERSION}); upgrade dpgan")
    try:
        config = Config.from_dict(meta["config"])
        info = DatasetInfo.from_dict(meta["dataset_info"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{config_path}: incomplete or invalid model description ({exc})") from None
    G = plain_generator(config, info.num_classes)
    try:
        state = load_file(str(weights_path))
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{weights_path}: unreadable safetensors file ({exc})") from None
    try:
        G.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise CheckpointError(f"{weights_path}: does not fit the generator described in {config_path} "
                              f"({first})") from None
    return G, config, info, int(meta.get("step", 0))
