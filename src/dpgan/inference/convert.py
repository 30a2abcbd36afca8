"""Generators trained with the published code (DP_GAN by sj-li, OASIS by boschresearch) as
dpgan generators.

The published training saves each network's plain state dict: `<iter>_G.pth`, `<iter>_D.pth`
and `<iter>_EMA.pth` (also `latest_*` and `best_*`); its test script generates with the EMA
generator, so `*_EMA.pth` is the file to convert. Our generators hold exactly the same
parameters under other names, so conversion is a renaming, with three layout differences:

- SPADE predicts gamma and beta with one fused convolution (`gamma_beta`, gamma's outputs
  first); the published `mlp_gamma` and `mlp_beta` are concatenated in that order.
- Spectral norm: the published layers use the old hook API (`weight_orig`, `weight_u`,
  `weight_v`), ours the parametrisation API (`parametrizations.weight.original`, `.0._u`,
  `.0._v`). Both divide by sigma = u^T W v with the stored u, v in eval mode, so the vectors
  carry over as they are. A target built without spectral norm gets that W / sigma baked in.
- Names: `seg_pyrmid` is our `pyramid.levels`, SPADE's `first_norm` our `norm`, `mlp_shared`
  our `shared`.

Nothing is inferred from the published options file (a pickle, never loaded): the network's
size is read from the tensor shapes, the label space from the dataset the user names.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import Tensor, nn

from dpgan.config import Config, DataConfig, ModelConfig
from dpgan.presets import preset
from dpgan.data.info import DatasetInfo
from dpgan.data.io import default_palette
from dpgan.errors import CheckpointError, DPGANError, refuse_overwrite
from dpgan.models import DualPyramidGenerator, OASISGenerator, build_generator_from_config
from dpgan.names import CONVERT_KINDS, PUBLISHED_DATASETS, PUBLISHED_Z_DIM

KINDS = CONVERT_KINDS
DATASETS = PUBLISHED_DATASETS
_OUR_GENERATOR = {"dpgan": "dp", "oasis": "oa"}
_TARGET_CLASS = {"dpgan": DualPyramidGenerator, "oasis": OASISGenerator}
_SN_LEAVES = {"original": "weight_orig", "0._u": "weight_u", "0._v": "weight_v"}


@dataclass(frozen=True)
class ConversionReport:
    """What a conversion did: every tensor of ours has a source, so the interesting parts are
    the published tensors nothing read and the layers whose spectral norm was baked in."""

    kind: str
    converted: int  # tensors of our generator written
    used: int  # published tensors read
    unused: tuple[str, ...]  # published keys left over
    defaulted: tuple[str, ...]  # our batch-norm counters absent from the checkpoint (kept at 0)
    baked: tuple[str, ...]  # our layers given the published W / sigma (target without spectral norm)

    def summary(self) -> str:
        lines = [f"converted {self.converted} tensors from {self.used} published {self.kind} tensors"]
        if self.baked:
            lines.append(f"spectral norm baked into {len(self.baked)} layers")
        if self.defaulted:
            lines.append(f"not in the checkpoint, left at their initial value: {', '.join(self.defaulted)}")
        lines.append(f"left over: {', '.join(self.unused)}" if self.unused else "left over: none")
        return "\n".join(lines)


def _published_path(our_path: str) -> str:
    """Module path of ours -> the published module path."""
    parts = our_path.split(".")
    out: list[str] = []
    i = 0
    while i < len(parts):
        seg = parts[i]
        if seg == "pyramid" and i + 1 < len(parts) and parts[i + 1] == "levels":
            out.append("seg_pyrmid")
            i += 2
            continue
        if seg == "norm" and i > 0 and parts[i - 1].startswith("norm_"):
            seg = "first_norm"
        elif seg == "shared":
            seg = "mlp_shared"
        out.append(seg)
        i += 1
    return ".".join(out)


def strip_wrappers(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Drop the `module.` prefix that a state dict saved through DataParallel carries."""
    if state and all(k.startswith("module.") for k in state):
        return {k[len("module."):]: v for k, v in state.items()}
    return dict(state)


def check_kind(state: Mapping[str, Tensor], kind: str, source: str) -> None:
    """A clear error for a discriminator, or a DP-GAN checkpoint converted as OASIS (and back)."""
    if kind not in KINDS:
        raise DPGANError(f"unknown published code {kind!r}; choose one of {KINDS}")
    if "fc.weight" not in state:
        raise CheckpointError(
            f"{source}: no fc.weight, so not a published generator state dict (convert <iter>_EMA.pth "
            f"or <iter>_G.pth, not the discriminator <iter>_D.pth)"
        )
    has_pyramid = any(k.startswith("seg_pyrmid.") for k in state)
    if kind == "oasis" and has_pyramid:
        raise CheckpointError(f"{source}: has a dual pyramid (seg_pyrmid.*): a DP-GAN generator; use --from dpgan")
    if kind == "dpgan" and not has_pyramid:
        hint = " (it has mlp_shared: an OASIS generator; use --from oasis)" if any(
            ".mlp_shared." in k for k in state) else ""
        raise CheckpointError(f"{source}: no dual pyramid (seg_pyrmid.*), so not a DP-GAN generator{hint}")


def _baked(state: Mapping[str, Tensor], module: str) -> Tensor:
    """The weight a published spectral-norm layer uses in eval mode: W / (u^T W v)."""
    w, u, v = (state[f"{module}.{leaf}"].double() for leaf in ("weight_orig", "weight_u", "weight_v"))
    sigma = torch.dot(u, w.flatten(1) @ v)
    return w / sigma


def convert_state_dict(
    published: Mapping[str, Tensor], kind: str, target: nn.Module, *, source: str = "published state dict"
) -> tuple[dict[str, Tensor], ConversionReport]:
    """The state dict of `target` (ours, built to the published network's size) filled from a
    published generator state dict. Raises CheckpointError naming `source` and the key for any
    missing tensor or shape mismatch; leftover published tensors are reported, not fatal."""
    published = strip_wrappers(published)
    check_kind(published, kind, source)
    if not isinstance(target, _TARGET_CLASS[kind]):
        raise DPGANError(f"a published {kind} generator converts into a {_TARGET_CLASS[kind].__name__}, "
                         f"not a {type(target).__name__}")
    used: set[str] = set()
    out: dict[str, Tensor] = {}
    defaulted: list[str] = []
    baked: list[str] = []

    def take(key: str, ours: str) -> Tensor:
        if key not in published:
            hint = ("; SPADE trained with --param_free_norm instance has no running statistics, and only "
                    "batch / syncbatch norm converts") if ".first_norm.running_" in key else ""
            raise CheckpointError(f"{source}: missing {key} (needed for {ours} of the dpgan generator){hint}")
        used.add(key)
        return published[key]

    for ours, want in target.state_dict().items():
        sn = re.fullmatch(r"(.+)\.parametrizations\.weight\.(original|0\._u|0\._v)", ours)
        if sn:
            module = _published_path(sn.group(1))
            if f"{module}.weight" in published and f"{module}.weight_orig" not in published:
                raise CheckpointError(
                    f"{source}: {module} has no spectral norm (trained with --no_spectral_norm?); build the "
                    f"target with spectral_norm=False")
            names = [f"{module}.{_SN_LEAVES[sn.group(2)]}"]
            value = take(names[0], ours)
        elif re.search(r"\.gamma_beta\.(weight|bias)$", ours):
            path, leaf = ours.rsplit(".", 2)[0], ours.rsplit(".", 1)[1]
            spade = _published_path(path)
            names = [f"{spade}.mlp_gamma.{leaf}", f"{spade}.mlp_beta.{leaf}"]
            parts = [take(n, ours) for n in names]
            if parts[0].shape != parts[1].shape:
                raise CheckpointError(f"{source}: {names[0]} has shape {tuple(parts[0].shape)} but {names[1]} "
                                      f"has {tuple(parts[1].shape)}")
            value = torch.cat(parts, dim=0)
        else:
            path, leaf = ours.rsplit(".", 1)
            module = _published_path(path)
            names = [f"{module}.{leaf}"]
            if leaf == "weight" and names[0] not in published and f"{module}.weight_orig" in published:
                names = [f"{module}.{x}" for x in ("weight_orig", "weight_u", "weight_v")]
                for n in names:
                    take(n, ours)
                value = _baked(published, module)
                baked.append(ours)
            elif leaf == "num_batches_tracked" and names[0] not in published:
                defaulted.append(ours)
                out[ours] = want.clone()
                continue
            else:
                value = take(names[0], ours)
        if tuple(value.shape) != tuple(want.shape):
            raise CheckpointError(
                f"{source}: {' + '.join(names)} gives shape {tuple(value.shape)}, but {ours} of the dpgan "
                f"generator has shape {tuple(want.shape)}")
        out[ours] = value.detach().to(dtype=want.dtype).clone()
    unused = tuple(k for k in published if k not in used)
    report = ConversionReport(kind=kind, converted=len(out), used=len(used), unused=unused,
                              defaulted=tuple(defaulted), baked=tuple(baked))
    return out, report


# --- whole files ------------------------------------------------------------------------------

def load_published(path: str | Path) -> dict[str, Tensor]:
    """A published `.pth` (a plain state dict) read without unpickling code."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: file not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt, truncated, or a pickle that wants to run code
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: not loadable as a plain state dict ({first})") from None
    if not isinstance(obj, Mapping) or not obj or not all(
            isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items()):
        raise CheckpointError(f"{path}: not a state dict (expected a mapping of names to tensors, as the "
                              f"published code saves with torch.save(netEMA.state_dict()))")
    return strip_wrappers(obj)


def infer_model_config(state: Mapping[str, Tensor], kind: str, num_classes: int, z_dim: int,
                       source: str) -> ModelConfig:
    """Our ModelConfig for the published network whose tensors these are; z_dim and the number
    of classes cannot be told apart from the shapes (only their sum), so both are given."""
    check_kind(state, kind, source)
    fc = state["fc.weight"]
    if fc.dim() != 4 or fc.shape[0] % 16:
        raise CheckpointError(f"{source}: fc.weight has shape {tuple(fc.shape)}; expected (16 x width, "
                              f"classes + z_dim, 3, 3)")
    if fc.shape[1] != num_classes + z_dim:
        raise CheckpointError(
            f"{source}: the generator takes {fc.shape[1]} input channels (classes + z_dim), but "
            f"{num_classes} classes + z_dim {z_dim} = {num_classes + z_dim}; pick the dataset (or "
            f"--num-classes) the model was trained on, and --z-dim if it was not {PUBLISHED_Z_DIM}")
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"body\.(\d+)\.", k))}
    if not blocks or blocks != set(range(len(blocks))):
        raise CheckpointError(f"{source}: residual blocks body.* are missing or not numbered 0..n-1")
    model = replace(
        ModelConfig(), generator=_OUR_GENERATOR[kind], g_width=fc.shape[0] // 16, z_dim=z_dim,
        use_3d_noise=z_dim > 0, num_res_blocks=len(blocks),
        spectral_norm=any(k.endswith(".weight_orig") for k in state),
    )
    if kind == "dpgan":
        level = state.get("seg_pyrmid.1.0.weight")
        if level is None:
            raise CheckpointError(f"{source}: missing seg_pyrmid.1.0.weight (the dual pyramid's second level)")
        return replace(model, pyramid_width=int(level.shape[0]))
    hidden = state.get("body.0.norm_0.mlp_shared.0.weight")
    if hidden is None:
        raise CheckpointError(f"{source}: missing body.0.norm_0.mlp_shared.0.weight (OASIS SPADE hidden layer)")
    # the OASIS generator was trained with the OASIS discriminator (the "OA/OA" row)
    return replace(model, spade_hidden=int(hidden.shape[0]), patch_loss="none", feature_loss="none")


def dataset_and_config(kind: str, dataset: str | None, num_classes: int | None,
                       image_size: tuple[int, int] | None) -> tuple[DatasetInfo, Config]:
    """The label space and the run configuration a converted model is saved with."""
    from dpgan.data.registry import dataset_info

    if dataset is not None:
        if dataset not in DATASETS:
            raise DPGANError(f"unknown dataset {dataset!r}; choose one of {DATASETS} (or --num-classes N)")
        info = dataset_info(DataConfig(dataset=dataset))
        if num_classes is not None and num_classes != info.num_classes:
            raise DPGANError(f"dataset {dataset} has {info.num_classes} label channels, not --num-classes "
                             f"{num_classes}")
        config = preset(dataset)
    elif num_classes is not None:
        if num_classes < 1:
            raise DPGANError(f"--num-classes must be positive, not {num_classes}")
        info = DatasetInfo(name=f"{kind}-converted", class_names=tuple(f"class {i}" for i in range(num_classes)),
                           colors=default_palette(num_classes))
        config = Config(name=f"{kind}-converted", data=DataConfig(dataset="folder", height=256, width=256))
    else:
        raise DPGANError("name the dataset the model was trained on (--dataset) or its number of classes "
                         "(--num-classes)")
    if image_size is not None:
        config = config.override(data={"height": image_size[0], "width": image_size[1]})
    return info, replace(config, name=f"{config.name}-{kind}-published")


def _step_of(path: Path) -> int:
    """`<iter>_EMA.pth` -> iter; `latest_*` / `best_*` say nothing, so 0."""
    head = path.name.split("_", 1)[0]
    return int(head) if head.isdigit() else 0


def convert_checkpoint(
    path: str | Path, out_dir: str | Path, kind: str, *, dataset: str | None = None,
    num_classes: int | None = None, z_dim: int = PUBLISHED_Z_DIM,
    image_size: tuple[int, int] | None = None, overwrite: bool = False,
) -> tuple[Path, ConversionReport]:
    """Convert a published generator file into a saved-model folder (config.json +
    model.safetensors) that `DPGAN.from_pretrained`, `dpgan synthesize` and `dpgan demo` read."""
    from dpgan.inference.model_card import CARD_FILE, Origin
    from dpgan.inference.pretrained import CONFIG_FILE, WEIGHTS_FILE, save_pretrained

    path, out_dir = Path(path), Path(out_dir)
    refuse_overwrite([out_dir / n for n in (CONFIG_FILE, WEIGHTS_FILE, CARD_FILE)], overwrite)
    state = load_published(path)
    info, config = dataset_and_config(kind, dataset, num_classes, image_size)
    model = infer_model_config(state, kind, info.num_classes, z_dim, str(path))
    try:
        config = replace(config, model=model)
    except DPGANError as exc:  # e.g. an image size that the number of blocks cannot divide
        raise DPGANError(f"{path}: {exc}") from None
    generator = build_generator_from_config(config.model, info.num_classes)
    converted, report = convert_state_dict(state, kind, generator, source=str(path))
    generator.load_state_dict(converted)
    save_pretrained(generator.eval(), config, info, _step_of(path), out_dir, origin=Origin(converted_from=kind),
                    overwrite=True)  # checked above
    return out_dir, report
