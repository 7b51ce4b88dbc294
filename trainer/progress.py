"""Progress events: one JSON object per line, the only thing the trainer writes to stdout."""

from __future__ import annotations

import json
import math
import time
from typing import Any, Callable, Protocol, TextIO


class Emit(Protocol):
    def __call__(self, event: str, **fields: Any) -> None: ...


class JsonLinesEmitter:
    """Writes `{"event": event, **fields}` as one line and flushes, so the server sees it at once."""

    def __init__(self, stream: TextIO):
        self._stream = stream

    def __call__(self, event: str, **fields: Any) -> None:
        # allow_nan=False: NaN is not JSON; callers pass non-finite numbers through `finite`.
        self._stream.write(json.dumps({"event": event, **fields}, allow_nan=False) + "\n")
        self._stream.flush()


def finite(value: float) -> float | None:
    """A diverged loss (inf/NaN) is reported as null, keeping every line valid JSON."""
    return value if math.isfinite(value) else None


class BatchThrottle:
    """Lets a `batch` event through at most once per `interval` seconds; 0 lets every one through."""

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic):
        self._interval = interval
        self._clock = clock
        self._last = clock()

    def due(self) -> bool:
        now = self._clock()
        if now - self._last < self._interval:
            return False
        self._last = now
        return True
