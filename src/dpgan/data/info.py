"""How a dataset describes itself: class names, colours, the don't-care id.

Every dataset (the embedded synthetic streets, Cityscapes, ADE20K, a user's folder) exposes one
`DatasetInfo`. Models and losses read the number of label channels from it; nothing mutates a
training config from inside a data loader.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

Color = tuple[int, int, int]
MAX_CLASSES = 4096  # label channels a saved description may declare (COCO-Stuff has 183)


@dataclass(frozen=True)
class DatasetInfo:
    """Self-description of a label space.

    `class_names[i]` and `colors[i]` describe label id `i`; `num_classes` is the number of
    one-hot channels the generator sees (35 for Cityscapes labelIds, 151 for ADE20K).
    `ignore_index` is the don't-care id (OASIS convention: 0 for Cityscapes, ADE20K and
    COCO-Stuff); it gets weight 0 in the class-balanced loss and is skipped by metrics.
    `small_object_classes` are the ids averaged by obj-mIoU.
    """

    name: str
    class_names: tuple[str, ...]
    colors: tuple[Color, ...]
    ignore_index: int | None = None
    small_object_classes: tuple[int, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if len(self.class_names) != len(self.colors):
            raise ValueError(
                f"dataset {self.name!r}: {len(self.class_names)} class names but "
                f"{len(self.colors)} colours"
            )
        if self.ignore_index is not None and not 0 <= self.ignore_index < self.num_classes:
            raise ValueError(f"dataset {self.name!r}: ignore_index {self.ignore_index} out of range")
        bad = [c for c in self.small_object_classes if not 0 <= c < self.num_classes]
        if bad:
            raise ValueError(f"dataset {self.name!r}: small-object class ids {bad} out of range")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["colors"] = [list(c) for c in self.colors]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DatasetInfo:
        """From parsed JSON; anything malformed (wrong types, more than MAX_CLASSES classes,
        colours that are not three 0..255 values) is a DataError."""
        from dpgan.errors import DataError

        def ints(values: Any, what: str) -> tuple[int, ...]:
            if not isinstance(values, (list, tuple)) or not all(
                    isinstance(v, int) and not isinstance(v, bool) for v in values):
                raise DataError(f"dataset description: {what} must be a list of integers")
            return tuple(values)

        if not isinstance(d, dict):
            raise DataError("dataset description must be a JSON object")
        names, colors = d.get("class_names"), d.get("colors")
        if not isinstance(d.get("name"), str):
            raise DataError("dataset description: \"name\" must be a string")
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise DataError("dataset description: \"class_names\" must be a list of strings")
        if not 1 <= len(names) <= MAX_CLASSES:
            raise DataError(f"dataset description: {len(names)} classes; 1 to {MAX_CLASSES} are allowed")
        if not isinstance(colors, list):
            raise DataError("dataset description: \"colors\" must be a list of [r, g, b]")
        rgb = tuple(ints(c, "each colour") for c in colors)
        if any(len(c) != 3 or not all(0 <= v <= 255 for v in c) for c in rgb):
            raise DataError("dataset description: each colour must be three integers from 0 to 255")
        ignore = d.get("ignore_index")
        try:
            return cls(
                name=d["name"], class_names=tuple(names), colors=rgb,  # type: ignore[arg-type]
                ignore_index=None if ignore is None else ints([ignore], "ignore_index")[0],
                small_object_classes=ints(d.get("small_object_classes", []), "small_object_classes"),
            )
        except ValueError as exc:
            raise DataError(f"dataset description: {exc}") from None

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)
