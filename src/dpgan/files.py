"""Writing a file so that a crash leaves the old file or the new one, never half of one."""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def current_umask() -> int:
    """The process's umask (os.umask can only be read by setting it: set and restored at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def follow_umask(path: str | Path) -> None:
    """Give a finished file the permissions a plain open() would have (0o666 minus the umask):
    some writers (safetensors, temporary files) create theirs readable by the owner only."""
    os.chmod(path, 0o666 & ~current_umask())


@contextmanager
def atomic_path(path: str | Path, *, fsync: bool = True) -> Iterator[Path]:
    """A temporary name in `path`'s folder to write to; when the block ends it is (fsynced and)
    renamed over `path`, or removed if the block raised."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:  # a fresh name, created here so that no other writer can take it
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            open(tmp, "xb").close()
            break
        except FileExistsError:
            continue
    try:
        yield tmp
        if tmp.exists():  # a writer may have replaced it by a file of its own
            follow_umask(tmp)
        if fsync:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str, *, fsync: bool = True) -> None:
    with atomic_path(path, fsync=fsync) as tmp:
        tmp.write_text(text, encoding="utf-8")


def torch_save_atomic(obj: Any, path: str | Path) -> None:
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


@contextmanager
def atomic_directory(path: str | Path, *, first: tuple[str, ...] = ()) -> Iterator[Path]:
    """A fresh folder beside `path` to write a set of files into. When the block ends the folder is
    renamed to `path`, or, where `path` is a folder already, each file is renamed over its namesake
    there (the names in `first` before the others); if the block raised, the folder is removed and
    `path` is as it was. Created with os.mkdir, so its permissions follow the umask."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            os.mkdir(tmp)
            break
        except FileExistsError:
            continue
    try:
        yield tmp
        rank = {name: i for i, name in enumerate(first)}
        files = sorted(tmp.iterdir(), key=lambda f: rank.get(f.name, len(first)))
        for f in files:
            follow_umask(f)
            with open(f, "rb+") as handle:
                os.fsync(handle.fileno())
        if not path.exists():
            os.rename(tmp, path)
            return
        for f in files:
            os.replace(f, path / f.name)
        tmp.rmdir()
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
