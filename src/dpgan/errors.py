"""Errors a user can cause. The CLI prints them as one line, without a traceback."""


class DPGANError(Exception):
    """A problem with the user's input (file, option, checkpoint), explained in one sentence."""


class DataError(DPGANError):
    """A dataset file is missing, unreadable or inconsistent."""


class CheckpointError(DPGANError):
    """A checkpoint is missing, corrupt or was not written by dpgan."""
