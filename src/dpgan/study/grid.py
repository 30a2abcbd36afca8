"""The study grids: which training runs a `dpgan study` makes, and how they form the paper's tables.

`paper-ablations` is the three ablation tables of the DP-GAN paper (Cityscapes, Tables 4-6):
(a) generator x discriminator from OASIS (OA) or DP-GAN (DP); (b) where the patch loss L_ms is
applied; (c) where the feature loss L_fm is applied. Each row is one entry of
`dpgan.presets.ABLATIONS`. The full DP-GAN model is a row of all three tables (DP/DP, patch on
the encoder, features on the decoder); rows with the same model are trained once and shared.
"""

from __future__ import annotations

from dataclasses import dataclass

from dpgan.presets import ABLATIONS
from dpgan.errors import DPGANError


@dataclass(frozen=True)
class Table:
    key: str
    title: str
    column: str  # what the row label says
    rows: tuple[tuple[str, str], ...]  # (ablation name, row label)
    reference: str  # the full DP-GAN row, which the summary compares every other row with


TABLES: dict[str, Table] = {
    "a": Table("a", "(a) generator and discriminator", "G / D", (
        ("oa-oa", "OA / OA (OASIS)"), ("oa-dp", "OA / DP"), ("dp-oa", "DP / OA"), ("dp-dp", "DP / DP (DP-GAN)"),
    ), reference="dp-dp"),
    "b": Table("b", "(b) patch loss L_ms on discriminator features", "L_ms on", (
        ("patch-none", "none"), ("patch-dec", "decoder"), ("patch-enc+dec", "encoder + decoder"),
        ("patch-enc", "encoder (DP-GAN)"),
    ), reference="patch-enc"),
    "c": Table("c", "(c) feature loss L_fm on discriminator features", "L_fm on", (
        ("fm-none", "none"), ("fm-enc", "encoder"), ("fm-enc+dec", "encoder + decoder"), ("fm-dec", "decoder (DP-GAN)"),
    ), reference="fm-dec"),
    "d": Table("d", "(d) baselines", "model", (
        ("spade", "SPADE (no VGG loss)"), ("oa-oa", "OASIS"), ("dp-dp", "DP-GAN"),
    ), reference="dp-dp"),
}

GRIDS: dict[str, tuple[str, ...]] = {
    "paper-ablations": ("a", "b", "c", "d"),
    "baselines": ("d",),
    "generator-discriminator": ("a",),
    "patch-loss": ("b",),
    "feature-loss": ("c",),
}


def tables_of(grid: str) -> list[Table]:
    if grid not in GRIDS:
        raise DPGANError(f"unknown study grid {grid!r}; choose one of {', '.join(GRIDS)}")
    return [TABLES[k] for k in GRIDS[grid]]


def model_key(ablation: str) -> tuple:
    """Rows with equal keys train the same model."""
    return tuple(sorted(ABLATIONS[ablation].items()))


def distinct_models(tables: list[Table]) -> dict[str, str]:
    """ablation name -> the name of the run that trains its model (the first row with that model)."""
    first: dict[tuple, str] = {}
    out: dict[str, str] = {}
    for table in tables:
        for name, _ in table.rows:
            out[name] = first.setdefault(model_key(name), name)
    return out
