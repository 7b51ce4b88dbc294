"""Failures the trainer reports as one `error` event: each carries its `kind` and exit code."""

from __future__ import annotations

import signal


class TrainerError(Exception):
    """A failure with a message meant for the person who started the job."""

    kind = "internal"
    exit_code = 1


class ConfigError(TrainerError):
    kind = "config"
    exit_code = 2


class DataError(TrainerError):
    kind = "data"
    exit_code = 2


class WeightsError(TrainerError):
    kind = "weights"
    exit_code = 2


class UsageError(TrainerError):
    kind = "usage"
    exit_code = 2


class Diverged(TrainerError):
    kind = "diverged"
    exit_code = 1


class OutOfMemory(TrainerError):
    kind = "oom"
    exit_code = 1


class Cancelled(TrainerError):
    kind = "cancelled"
    exit_code = 128 + signal.SIGTERM
