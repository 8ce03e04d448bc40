"""One exception family: the CLI prints the message of any ``RadevalError`` and exits non-zero."""

from __future__ import annotations


class RadevalError(Exception):
    """Base class of every error radeval raises on purpose (bad input, missing model, bad config)."""

    exit_code = 1


class InputError(RadevalError):
    """A record, file or field the user gave cannot be used; the message names the line/field."""

    exit_code = 2


class ConfigError(RadevalError):
    """A setting (metric name, option value, config file entry) is invalid."""

    exit_code = 2


class MetricNotFound(ConfigError):
    """A metric or preset name that is not registered."""


class DependencyError(RadevalError):
    """An optional dependency (extra, Java, a jar) needed by the chosen metric is absent."""

    exit_code = 3


class ModelNotFound(RadevalError):
    """A model file is not present locally; the message names the places searched and the fix."""

    exit_code = 4
