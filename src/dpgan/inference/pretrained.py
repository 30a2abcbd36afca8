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

import copy
import json
from dataclasses import replace
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from dpgan.checkpoint import refuse_nonfinite
from dpgan.config import Config
from dpgan.data.info import DatasetInfo
from dpgan.errors import CheckpointError, DPGANError, refuse_overwrite
from dpgan.files import atomic_directory
from dpgan.inference.model_card import CARD_FILE, Origin, model_card, public_config
from dpgan.models import build_generator_from_config

FORMAT = "dpgan-pretrained"
VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


# Saved models that ship inside the package: `--model NAME`, `DPGAN.from_pretrained(NAME)`.
BUILTIN_DIR = Path(__file__).parent / "builtin"
BUILTIN_MODELS = ("synthetic-streets",)


def resolve_model(name_or_path: str | Path) -> Path:
    """A built-in model's folder for its name (unless a file or folder of that name exists
    here, which wins), else the path itself."""
    path = Path(name_or_path)
    if str(name_or_path) in BUILTIN_MODELS and not path.exists():
        return BUILTIN_DIR / str(name_or_path)
    return path


def is_pretrained_dir(path: str | Path) -> bool:
    """A saved-model folder holds model.safetensors (a run folder holds checkpoints/)."""
    return Path(path).is_dir() and (Path(path) / WEIGHTS_FILE).exists()


def bake_spectral_norm(generator: nn.Module) -> nn.Module:
    """In place: eval mode, no gradients, and every spectral-normalised conv replaced by a plain
    conv holding weight / sigma exactly as the eval-mode forward computes it (u and v as
    trained; no power iteration). Same images, and the state-dict keys of a network built
    without spectral norm. New modules rather than torch's remove_parametrizations, which edits
    the parametrised class that deep copies of the model (the EMA generator, for one) share."""
    generator.eval()
    for parent in list(generator.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.Conv2d) and parametrize.is_parametrized(child, "weight"):
                setattr(parent, name, _plain_conv_like(child))
    return generator.requires_grad_(False)


@torch.no_grad()
def _plain_conv_like(conv: nn.Conv2d) -> nn.Conv2d:
    w = conv.weight  # the normalised weight, read once
    plain = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride,
                      padding=conv.padding, dilation=conv.dilation, groups=conv.groups,
                      bias=conv.bias is not None, padding_mode=conv.padding_mode, device=w.device, dtype=w.dtype)
    plain.weight.copy_(w)
    if conv.bias is not None:
        plain.bias.copy_(conv.bias)
    return plain


def baked_state_dict(generator: nn.Module) -> dict[str, Tensor]:
    """The state of a baked copy (`bake_spectral_norm`), on the CPU; the generator is untouched."""
    baked = bake_spectral_norm(copy.deepcopy(generator))
    return {k: v.detach().cpu().contiguous() for k, v in baked.state_dict().items()}


def plain_generator(config: Config, num_classes: int) -> nn.Module:
    """The generator of `config` built without spectral norm, in eval mode, for baked weights."""
    G = build_generator_from_config(replace(config.model, spectral_norm=False), num_classes)
    return G.requires_grad_(False).eval()


def save_pretrained(generator: nn.Module, config: Config, info: DatasetInfo, step: int,
                    directory: str | Path, *, origin: Origin | None = None, overwrite: bool = False) -> Path:
    """Write the weights, config.json (without this machine's paths) and a README.md model card.
    They are written into a new folder beside `directory` and moved in when complete: a failure
    leaves `directory` as it was. `origin`: the run folder (for its metrics) or the published code.
    A saved model already in `directory` is replaced only with `overwrite` (as `dpgan export --overwrite`)."""
    from safetensors.torch import save_file

    directory = Path(directory)
    refuse_overwrite([directory / WEIGHTS_FILE, directory / CONFIG_FILE], overwrite)
    state = baked_state_dict(generator)
    meta = {"format": FORMAT, "version": VERSION, "step": int(step),
            "config": public_config(config), "dataset_info": info.to_dict()}
    with atomic_directory(directory, first=(WEIGHTS_FILE, CONFIG_FILE)) as tmp:
        save_file(state, str(tmp / WEIGHTS_FILE), metadata={"format": FORMAT})
        (tmp / CONFIG_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        (tmp / CARD_FILE).write_text(model_card(config, info.name, step, origin=origin))
    return directory


def load_pretrained(directory: str | Path) -> tuple[nn.Module, Config, DatasetInfo, int]:
    """(generator on the CPU in eval mode, config, dataset info, step); a clear
    CheckpointError naming the file for anything missing, foreign or corrupt."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    directory = resolve_model(directory)
    config_path, weights_path = directory / CONFIG_FILE, directory / WEIGHTS_FILE
    for path in (config_path, weights_path):
        if not path.is_file():
            raise CheckpointError(f"{path}: not found; a saved model is a folder with {CONFIG_FILE} and "
                                  f"{WEIGHTS_FILE} (written by `dpgan export` or DPGAN.save_pretrained)")
    try:
        meta = json.loads(config_path.read_text())
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise CheckpointError(f"{config_path}: not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{config_path}: not a dpgan saved model (no \"format\": \"{FORMAT}\")")
    version, step = meta.get("version", 0), meta.get("step", 0)
    for key, value in (("version", version), ("step", step)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise CheckpointError(f"{config_path}: \"{key}\" must be a non-negative integer, not {value!r:.60}")
    if version > VERSION:
        raise CheckpointError(f"{config_path}: saved-model version {meta['version']} is newer than this "
                              f"dpgan reads ({VERSION}); upgrade dpgan")
    try:
        config = Config.from_dict(meta["config"])
        info = DatasetInfo.from_dict(meta["dataset_info"])
    except DPGANError as exc:
        raise CheckpointError(f"{config_path}: invalid model description ({exc})") from None
    except (KeyError, TypeError, ValueError, AttributeError, RecursionError) as exc:
        raise CheckpointError(f"{config_path}: incomplete or invalid model description "
                              f"({type(exc).__name__}: {str(exc)[:200]})") from None
    G = plain_generator(config, info.num_classes)
    try:
        state = load_file(str(weights_path))
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{weights_path}: unreadable safetensors file ({exc})") from None
    refuse_nonfinite(state, str(weights_path))
    try:
        G.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise CheckpointError(f"{weights_path}: does not fit the generator described in {config_path} "
                              f"({first})") from None
    return G, config, info, step
