"""PDFs for the service, without letting them hold it up: each report is rendered once and kept,
and at most ``workers`` renders run at a time; one more is refused at once (``RendererBusyError``, a
503 with Retry-After), never queued behind the others.

A PDF of a large practice takes WeasyPrint seconds of CPU. Rendered on request with no limit, four
at once took all of waitress's four threads, and every other request of the service waited for
them (issue 11). The cache is keyed by the SHA-256 of the HTML the PDF is made from, so a report
whose figures changed is rendered again and an unchanged one never is; it holds at most
``max_bytes`` of PDFs, the least recently used dropped first.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from hrm_fhir.errors import HRMError

DEFAULT_RETRY_SECONDS = 10
CACHE_BYTES = 64 * 1024 * 1024


class RendererBusyError(HRMError):
    """Every render slot is taken: try again after ``retry_after`` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"the PDF renderer is busy; try again in {retry_after} seconds")
        self.retry_after = retry_after


class PdfRenderer:
    """Renders HTML to PDF with ``render``, at most ``workers`` at once, keeping the results."""

    def __init__(
        self,
        render: Callable[[str], bytes],
        *,
        workers: int = 1,
        max_bytes: int = CACHE_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if workers < 1:
            raise ValueError("the PDF renderer needs at least one worker")
        self._render = render
        self._slots = threading.BoundedSemaphore(workers)
        self._max_bytes = max_bytes
        self._clock = clock
        self._cache: OrderedDict[str, bytes] = OrderedDict()
        self._cached_bytes = 0
        self._lock = threading.Lock()
        self._last_seconds: float | None = None
        self.renders = 0
        """How many PDFs were rendered (not served from the cache)."""

    def pdf(self, html: str) -> bytes:
        """The PDF of ``html``: from the cache, else rendered now if a slot is free; else
        RendererBusyError."""
        key = hashlib.sha256(html.encode()).hexdigest()
        cached = self._cached(key)
        if cached is not None:
            return cached
        if not self._slots.acquire(blocking=False):
            raise RendererBusyError(self.retry_after())
        try:
            cached = self._cached(key)  # rendered by another request meanwhile
            if cached is not None:
                return cached
            started = self._clock()
            pdf = self._render(html)
            self._last_seconds = self._clock() - started
            self.renders += 1
            self._keep(key, pdf)
            return pdf
        finally:
            self._slots.release()

    def retry_after(self) -> int:
        """Seconds to wait before asking again: how long the last render took."""
        if self._last_seconds is None:
            return DEFAULT_RETRY_SECONDS
        return max(1, math.ceil(self._last_seconds))

    def _cached(self, key: str) -> bytes | None:
        with self._lock:
            pdf = self._cache.get(key)
            if pdf is not None:
                self._cache.move_to_end(key)
            return pdf

    def _keep(self, key: str, pdf: bytes) -> None:
        if len(pdf) > self._max_bytes:
            return
        with self._lock:
            self._cache[key] = pdf
            self._cached_bytes += len(pdf)
            while self._cached_bytes > self._max_bytes:
                _, dropped = self._cache.popitem(last=False)
                self._cached_bytes -= len(dropped)
