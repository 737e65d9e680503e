"""Failures whose message is meant for the user of the playground, not a traceback.

Shared by the model tools (conversion, export) and the backends, so it sits below both:
``playground.models`` and ``playground.backends`` import it, never each other's internals.
``playground.backends.base`` re-exports these names for adapters and plugins.
"""

from __future__ import annotations


class BackendError(Exception):
    """A failure with a message meant for the user of the playground, not a traceback."""


class MissingPackageError(BackendError):
    """The runtime package of a backend is not installed in this environment."""


class DeviceUnavailableError(BackendError):
    """The requested device is not present or not supported by this backend."""


class ModelFormatError(BackendError):
    """The model cannot be converted to / loaded in this backend's format."""
