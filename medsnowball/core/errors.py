"""Exception hierarchy of medsnowball.

Every error raised on purpose by medsnowball derives from :class:`MedsnowballError`
*and* from the built-in exception a caller would naturally catch (``ValueError``,
``FileNotFoundError``, ``ImportError`` ...), so ``except ValueError`` keeps working in
code that does not know about medsnowball.

Messages follow one rule: say what was expected, what was found (naming the file,
folder or series) and what the user can do about it. They never contain patient names,
IDs or birth dates.
"""

from __future__ import annotations


class MedsnowballError(Exception):
    """Base class of all medsnowball errors."""


class NoSeriesFoundError(MedsnowballError, FileNotFoundError):
    """A path holds no readable CT image (empty folder, only junk, or nothing selectable)."""


class UnsupportedModalityError(MedsnowballError, ValueError):
    """The image is not a CT (e.g. an MR-only study)."""


class InconsistentSeriesError(MedsnowballError, ValueError):
    """The slices of one series do not form one volume (conflicting positions, sizes, gaps)."""


class MissingCodecError(MedsnowballError, ImportError):
    """Pixel data are compressed with a transfer syntax no installed decoder handles."""


class MissingDependencyError(MedsnowballError, ImportError):
    """An optional feature needs a package that is not installed (names the extra)."""


class CorruptFileError(MedsnowballError, ValueError):
    """A file is truncated, empty or otherwise unreadable."""


class ImageTooLargeError(MedsnowballError, ValueError):
    """A header claims an image size that would need an absurd amount of memory."""


class ObliqueImageError(MedsnowballError, ValueError):
    """An image is tilted too far from every axial/coronal/sagittal orientation to analyse."""


class ConfigError(MedsnowballError, ValueError):
    """A pipeline definition or option is invalid; the message names the bad key."""


class CheckpointError(MedsnowballError, ValueError):
    """A model checkpoint is missing, incompatible or unsafe to load."""


class WorkerStartError(MedsnowballError, RuntimeError):
    """Worker processes exited while starting (e.g. ``run_batch`` in an unguarded script)."""


__all__ = [
    "CheckpointError",
    "ConfigError",
    "CorruptFileError",
    "ImageTooLargeError",
    "InconsistentSeriesError",
    "MedsnowballError",
    "MissingCodecError",
    "MissingDependencyError",
    "NoSeriesFoundError",
    "ObliqueImageError",
    "UnsupportedModalityError",
    "WorkerStartError",
]
