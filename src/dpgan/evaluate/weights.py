"""Filling the evaluation networks from weight files the user supplies (docs/evaluation.md 4.2).

FID and mIoU are only comparable with published numbers when they run on the exact released
weights, and dpgan never downloads anything. So every evaluation network is built here, at
random init, and filled from a local file named on the command line. Loading is strict: a
file whose keys or shapes do not match the architecture is rejected instead of being half
loaded (mit_semseg's `strict=False` silently ignores such mismatches).
"""

from __future__ import annotations

import hashlib
import logging
import warnings
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from dpgan.errors import CheckpointError, DPGANError

log = logging.getLogger(__name__)

StateDict = dict[str, torch.Tensor]

# Buffers that old checkpoints (saved before PyTorch 0.4.1) do not contain; BatchNorm in eval
# mode never reads them, so their absence is harmless.
TOLERATED_MISSING_SUFFIXES: tuple[str, ...] = ("num_batches_tracked",)


def sha256_of_file(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in chunks so a 200 MB checkpoint never sits in memory twice."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_state_dict_file(
    path: str | Path | None,
    *,
    network: str,
    option: str,
    expected_name: str,
    sha256_prefix: str | None = None,
    weights_only: bool = True,
) -> tuple[StateDict, str]:
    """Read a released weights file into a plain `{key: tensor}` dict; return it and its SHA-256.

    `network`, `option` and `expected_name` only shape the error message, so that a user who
    forgot the file learns which option to set and which published file to point it at.
    `sha256_prefix` follows torch.hub's naming (`...-6726825d.pth` = first 8 hex digits of the
    file's SHA-256): a different hash only warns, because a re-saved copy of the right weights
    is still usable. `weights_only=False` unpickles arbitrary objects; use it only for an old
    pickle from a source you trust.
    """
    if path is None or not Path(path).is_file():
        where = "was not given" if path is None else f"{str(path)!r} does not exist"
        raise DPGANError(
            f"The {network} weights file {where}: set {option} to the released file "
            f"{expected_name} (dpgan never downloads weights)."
        )
    path = Path(path)
    sha256 = sha256_of_file(path)
    if sha256_prefix is not None and not sha256.startswith(sha256_prefix):
        warnings.warn(
            f"{path}: SHA-256 starts with {sha256[:8]}, not {sha256_prefix} as the released "
            f"{expected_name} does; {network} scores may not be comparable with published ones.",
            stacklevel=2,
        )
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=weights_only)
    except Exception as exc:  # torch raises many types for corrupt or unsafe pickles
        hint = (
            "; it is corrupt, or it pickles objects besides tensors (load such a file with "
            "weights_only=False only if you trust its source)"
            if weights_only
            else "; it is not a PyTorch file or it is corrupt"
        )
        raise CheckpointError(
            f"{path} could not be read as {network} weights ({type(exc).__name__}){hint}."
        ) from exc
    state_dict = _unwrap(loaded, path, network)
    log.info("%s weights: %s (sha256 %s, %d keys)", network, path, sha256, len(state_dict))
    return state_dict, sha256


def _unwrap(loaded: object, path: Path, network: str) -> StateDict:
    """Accept a bare state dict, a `{"state_dict": ...}` training checkpoint or a whole module;
    strip the `module.` prefix that `nn.DataParallel` adds to every key."""
    if isinstance(loaded, nn.Module):
        loaded = loaded.state_dict()
    if isinstance(loaded, Mapping) and isinstance(loaded.get("state_dict"), Mapping):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in loaded.items()
    ):
        raise CheckpointError(f"{path} does not hold a {network} state dict of named tensors.")
    state_dict = dict(loaded)
    if state_dict and all(k.startswith("module.") for k in state_dict):
        state_dict = {k[len("module.") :]: v for k, v in state_dict.items()}
    return state_dict


def load_into(
    module: nn.Module,
    state_dict: Mapping[str, torch.Tensor],
    *,
    source: str,
    tolerated_missing_suffixes: tuple[str, ...] = TOLERATED_MISSING_SUFFIXES,
) -> None:
    """Strictly copy `state_dict` into `module`: every key and shape must match, except
    missing keys ending in one of `tolerated_missing_suffixes`.

    On a mismatch the error names the file (`source`) and the first offending keys, which is
    usually enough to see that, e.g., an encoder file was given where a decoder was expected.
    """
    expected = module.state_dict()
    missing = [
        k for k in expected if k not in state_dict and not k.endswith(tolerated_missing_suffixes)
    ]
    unexpected = [k for k in state_dict if k not in expected]
    wrong_shape = [
        f"{k} {list(state_dict[k].shape)} (model {list(v.shape)})"
        for k, v in expected.items()
        if k in state_dict and state_dict[k].shape != v.shape
    ]
    problems = []
    for what, keys in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", wrong_shape)):
        if keys:
            problems.append(f"{len(keys)} {what} keys (e.g. {', '.join(keys[:3])})")
    if problems:
        raise CheckpointError(
            f"{source} does not match the {type(module).__name__} architecture: "
            + "; ".join(problems)
            + "."
        )
    module.load_state_dict(dict(state_dict), strict=False)
