"""Typed errors. Each message names the bad value and what is accepted, or what to do instead."""


class GamaIRError(Exception):
    """Base class of every error napari-gama-ir raises on purpose."""


class InvalidInputError(GamaIRError, ValueError):
    """An argument, array or file that the API, CLI or a widget cannot take."""


class InvalidDtypeError(GamaIRError, TypeError):
    """Data of a dtype that cannot be restored (bool, complex, object, ...)."""


class ModelFileError(GamaIRError, ValueError):
    """A model file that is missing, corrupted, truncated or does not match its card."""


class RestoreError(GamaIRError, RuntimeError):
    """A restore that could not give a correct result, e.g. the model produced NaN or inf; nothing wrong
    was written (an output file is removed)."""


class RestoreCancelled(GamaIRError):
    """``restore`` was stopped by its ``cancel`` event; no partial output was kept."""


class FinetuneCancelled(GamaIRError):
    """Fine-tuning was stopped before its first checkpoint, so there is no model to return."""


class OutputError(GamaIRError, OSError):
    """An output that cannot be written (no space left, permission denied); nothing partial was kept."""
