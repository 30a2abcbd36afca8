"""Errors a user can cause. The CLI prints them as one line, without a traceback."""


class DPGANError(Exception):
    """A problem with the user's input (file, option, checkpoint), explained in one sentence."""


class DataError(DPGANError):
    """A dataset file is missing, unreadable or inconsistent."""


class CheckpointError(DPGANError):
    """A checkpoint is missing, corrupt or was not written by dpgan."""


def refuse_overwrite(paths, overwrite: bool) -> None:
    """Raise before anything is written when some of `paths` exist and the user did not pass --overwrite."""
    existing = [p for p in paths if p.exists()]
    if existing and not overwrite:
        more = f" ({len(existing)} files would be replaced)" if len(existing) > 1 else ""
        raise DPGANError(f"{existing[0]} already exists{more}; pass --overwrite to replace it")
