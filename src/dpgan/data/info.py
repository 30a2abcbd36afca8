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
        return cls(
            name=str(d["name"]),
            class_names=tuple(str(n) for n in d["class_names"]),
            colors=tuple(tuple(int(v) for v in c) for c in d["colors"]),  # type: ignore[misc]
            ignore_index=None if d.get("ignore_index") is None else int(d["ignore_index"]),
            small_object_classes=tuple(int(c) for c in d.get("small_object_classes", ())),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)
