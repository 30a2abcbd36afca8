"""Errors a user can cause. The CLI prints them as one line, without a traceback."""


class DPGANError(Exception):
    """A problem with the user's input (file, option, checkpoint), explained in one sentence."""


class DataError(DPGANError):
    """A dataset file is missing, unreadable or inconsistent."""


class CheckpointError(DPGANError):
    """A checkpoint is missing, corrupt or was not written by dpgan."""


def refuse_overwrite(paths, overwrite: bool) -> None:
    """Raise before anything is written when some of `paths` exist and the user did not pass --overwrite,
    or when the folder that would hold one of them is an existing file."""
    paths = list(paths)
    refuse_file_as_folder({p.parent for p in paths})
    existing = [p for p in paths if p.exists()]
    if existing and not overwrite:
        more = f" ({len(existing)} files would be replaced)" if len(existing) > 1 else ""
        raise DPGANError(f"{existing[0]} already exists{more}; pass --overwrite to replace it")


def refuse_file_as_folder(folders) -> None:
    """An output folder (or a folder above it) that exists as a file cannot hold outputs: say so up front."""
    from pathlib import Path

    for folder in folders:
        for above in (Path(folder), *Path(folder).parents):
            if above.exists():
                if not above.is_dir():
                    raise DPGANError(f"{above} is a file, not a folder; choose another output folder")
                break


def describe_os_error(exc: OSError) -> str:
    """An operating-system error (disk full, permission denied, ...) as one sentence."""
    what = exc.strerror or str(exc) or type(exc).__name__
    where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
    return f"{what}{where}; nothing was left half-written: free space or fix the path and run the command again"
