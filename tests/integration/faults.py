"""Fault injection for the sweep's fault tests: a proxy that misbehaves in front of the FHIR
server, a switch that SIGKILLs the process at a chosen point, and the comparison of what two
twin practices (same records, different ids) hold on the server."""

from __future__ import annotations

import http.client
import os
import random
import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import orjson
import requests
from sqlalchemy import Engine, event

from hrm_fhir import terminology
from tests.integration.harness import Harness
from tests.integration.practice import Resource

FAULTS = ("429", "503", "drop-before", "drop-after", "slow")
"""429 with Retry-After and 503 (the request never reaches the server); the connection dropped
before the request is forwarded, or after the server has applied it; the answer delayed past
the client's timeout (the server has applied the request)."""
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "te"}
_PASSED_BACK = ("Content-Type", "Content-Encoding", "ETag", "Location", "Content-Location")


class FaultProxy:
    """An HTTP proxy on 127.0.0.1 in front of ``upstream`` that answers a share ``rate`` of
    requests with one of ``FAULTS``, drawn from a seeded generator in arrival order; the first
    request of each method in ``first`` gets the fault named there. The Host header is passed
    through, so the server's links point at the proxy."""

    def __init__(
        self,
        upstream: str,
        *,
        seed: int,
        rate: float,
        slow_seconds: float,
        first: dict[str, str] | None = None,
    ) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.rate = rate
        self.slow_seconds = slow_seconds
        self.injected: Counter[str] = Counter()
        self.on_writes: Counter[str] = Counter()
        """Faults injected into PUTs and POSTs (the ones that could lose or double a write)."""
        self.requests = 0
        self._first = dict(first or {})
        self._random = random.Random(seed)  # noqa: S311 - a seeded test schedule
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_port}{parts.path}"
        self._thread = threading.Thread(target=self.server.serve_forever, name="fault-proxy")
        self._thread.start()

    def draw(self, method: str) -> str | None:
        with self._lock:
            self.requests += 1
            fault = self._first.pop(method, None)
            if fault is None:
                if self._random.random() >= self.rate:
                    return None
                fault = self._random.choice(FAULTS)
            self.injected[fault] += 1
            if method in ("PUT", "POST"):
                self.on_writes[fault] += 1
            return fault

    def forward(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        connection = http.client.HTTPConnection(*self.upstream, timeout=120)
        try:
            connection.request(method, path, body=body or None, headers=headers)
            response = connection.getresponse()
            data = response.read()
            kept = [(name, response.getheader(name) or "") for name in _PASSED_BACK]
            return response.status, [(k, v) for k, v in kept if v], data
        finally:
            connection.close()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(10)


def _handler(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def _reply(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _drop(self) -> None:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)

        def _handle(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            fault = proxy.draw(self.command)
            outcome = orjson.dumps(
                {"resourceType": "OperationOutcome", "issue": [{"severity": "error"}]}
            )
            json = [("Content-Type", "application/fhir+json")]
            if fault == "429":
                return self._reply(429, [*json, ("Retry-After", "1")], outcome)
            if fault == "503":
                return self._reply(503, json, outcome)
            if fault == "drop-before":
                return self._drop()
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
            status, passed, data = proxy.forward(self.command, self.path, headers, body)
            if fault == "drop-after":
                return self._drop()
            if fault == "slow":
                time.sleep(proxy.slow_seconds)
            try:
                self._reply(status, passed, data)
            except OSError:  # the client gave up waiting
                self.close_connection = True
            return None

        do_GET = do_PUT = do_POST = do_DELETE = _handle  # noqa: N815 - http.server's names

    return Handler


class KillSwitch:
    """Counts the points at which a sweep can die (each HTTP answer received, each database
    commit about to happen) and SIGKILLs this process at point ``at`` (never when None)."""

    def __init__(self, at: int | None) -> None:
        self.at = at
        self.points = 0

    def point(self) -> None:
        self.points += 1
        if self.points == self.at:
            os.kill(os.getpid(), signal.SIGKILL)

    @contextmanager
    def armed(self, engine: Engine) -> Iterator[None]:
        send = requests.Session.send

        def counted(session: requests.Session, *args: Any, **kwargs: Any) -> requests.Response:
            response = send(session, *args, **kwargs)
            self.point()
            return response

        def on_commit(_connection: Any) -> None:
            self.point()

        requests.Session.send = counted  # type: ignore[method-assign]
        event.listen(engine, "commit", on_commit)
        try:
            yield
        finally:
            requests.Session.send = send  # type: ignore[method-assign]
            event.remove(engine, "commit", on_commit)


def ours(h: Harness) -> list[Resource]:
    """Every Task and Flag the service wrote for the practice, straight from the server."""
    found: list[Resource] = []
    for kind in ("Task", "Flag"):
        params = {
            "_tag": f"{terminology.TAG}|hrm-fhir",
            "subject:Patient.general-practitioner": f"Organization/{h.practice.org}",
        }
        found += h.gateway.search(kind, params).resources
    return found


def duplicates(resources: list[Resource]) -> int:
    """Resources beyond the first that carry the same business identifier."""
    values = Counter(
        i["value"]
        for r in resources
        for i in r.get("identifier", [])
        if i.get("system") == terminology.FINDING_IDENTIFIER
    )
    return sum(n - 1 for n in values.values())


def fingerprints(h: Harness, resources: list[Resource]) -> Counter[bytes]:
    """What the resources say, without ids, versions or the practice's run prefix, so twin
    practices built the same way compare equal."""
    out: Counter[bytes] = Counter()
    for resource in resources:
        body = {k: v for k, v in resource.items() if k not in ("id", "meta", "identifier")}
        out[orjson.dumps(body, option=orjson.OPT_SORT_KEYS).replace(h.practice.run.encode(), b"")]
    return out


def differences(a: Harness, b: Harness) -> tuple[int, int]:
    """(missing, extra): resources twin ``a`` holds that ``b`` lacks, and the reverse."""
    left, right = fingerprints(a, ours(a)), fingerprints(b, ours(b))
    return sum((left - right).values()), sum((right - left).values())
