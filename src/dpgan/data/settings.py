"""The data settings a loader is built from."""

from __future__ import annotations

from typing import Protocol


class DataSettings(Protocol):
    """What the data package reads from a run's data settings (the `data` section of the
    configuration has these fields; data/ does not import the configuration)."""

    dataset: str
    root: str | None
    height: int
    width: int
    load_height: int | None
    load_width: int | None
    flip: bool
    num_train: int
    num_val: int
    synthetic_seed: int
