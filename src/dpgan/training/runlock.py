"""One trainer per run folder: an operating-system lock on RUN/.lock.

The lock is `fcntl.flock` on an open file, held for the life of the trainer. The kernel drops
it when the process exits, however it exits (a crash or SIGKILL included), so a lock file
left behind by a killed run never blocks the next one; only a live holder does. The file
records the holder's PID and host, which the refusal names. Under torchrun only rank 0 takes
the lock; its answer is shared with every rank so that all of them refuse together.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dpgan.errors import DPGANError

LOCK_FILE = ".lock"


class RunLocked(DPGANError):
    """Another live process trains in this run folder."""


def _holder(fd: int) -> str:
    try:
        text = os.pread(fd, 256, 0).decode("utf-8", "replace").split()
    except OSError:
        text = []
    if len(text) >= 2:
        return f"pid {text[0]} on host {text[1]}"
    return "another process"


class RunLock:
    """An acquired lock; `release()` (or the end of the `with` block of `hold`) lets it go."""

    def __init__(self, fd: int | None, path: Path | None = None, created_folder: bool = False) -> None:
        self.fd, self.path, self.created_folder = fd, path, created_folder

    def release(self) -> None:
        """Let the lock go. A run folder this lock created and nothing else wrote into (training
        was refused before it started) is removed again, so a refusal leaves no empty folder."""
        if self.fd is None:
            return
        import fcntl

        try:
            if self.created_folder and self.path is not None:
                folder = self.path.parent
                try:
                    if [p.name for p in folder.iterdir()] == [self.path.name]:
                        self.path.unlink()
                        folder.rmdir()
                except OSError:
                    pass  # another process wrote there meanwhile: leave it
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        finally:
            os.close(self.fd)
            self.fd = None


def acquire(run_dir: str | Path) -> RunLock:
    """Take RUN/.lock without waiting, or raise RunLocked naming the holder. Creates only the run
    folder and the lock file (a busy folder already has both, so a refusal changes nothing)."""
    import fcntl

    run_dir = Path(run_dir)
    path = run_dir / LOCK_FILE
    created = not run_dir.exists()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise DPGANError(f"cannot create the run folder's lock file {path} ({exc.strerror or exc})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(fd)
        os.close(fd)
        raise RunLocked(
            f"{run_dir} is in use by a running trainer ({holder}); wait for it to finish, stop it, "
            f"or choose another --run-dir"
        ) from None
    except OSError as exc:  # a filesystem without flock support
        os.close(fd)
        raise DPGANError(f"cannot lock {path} ({exc.strerror or exc}); choose a --run-dir on a local "
                         f"or lock-capable filesystem") from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
    except OSError:
        pass  # the lock holds without the note; a refusal then says "another process"
    return RunLock(fd, path, created_folder=created)


@contextmanager
def hold(run_dir: str | Path, world=None) -> Iterator[RunLock]:
    """Hold the run folder's lock for the block: rank 0 locks, every rank hears whether it could."""
    lock, message = RunLock(None), None
    if world is None or world.is_main:
        try:
            lock = acquire(run_dir)
        except DPGANError as exc:
            message = str(exc)
    if world is not None:
        message = world.first_message(message)
    if message is not None:
        lock.release()
        raise RunLocked(message)
    try:
        yield lock
    finally:
        lock.release()
