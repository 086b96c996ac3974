"""The only module that speaks HTTP to the FHIR server.

Retries: GET, PUT and ``$validate`` are idempotent, so connection errors, timeouts, 408, 429 and
5xx are retried up to ``max_retries`` times with exponential backoff capped at ``max_backoff``,
waiting what ``Retry-After`` asks instead when it is given. A server that asks for a longer wait
than ``max_backoff`` is not retried. Giving up raises FHIRTemporaryError; other 4xx raise
FHIRFatalError at once.

POST create and transaction are NOT retried after a connection error, timeout, 408 or 5xx: the
server may already have applied the request, and repeating it could write a duplicate Task or
Flag. They are retried only on 429, which means the server refused the request unprocessed
(unless the caller says a Bundle is idempotent: every entry a PUT by id, as the loader sends).
Any request is repeated once after a 401, with the auth provider's credentials invalidated.

Searches and histories send ``Cache-Control: no-cache`` (HAPI otherwise replays cached results for
a minute) and follow ``Bundle.link`` ``next`` URLs verbatim, only while they stay under the
configured base URL. Redirects are never followed. Log messages carry resource types, ids and
statuses, never query values or bodies.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from typing import NamedTuple
from urllib.parse import urlsplit

import orjson
import requests

from hrm_fhir.adapters.fhir.answers import (
    Resource,
    SearchResult,
    WriteResult,
    bundle_of,
    error_for,
    give_up,
    next_link,
    objects,
    resource_of,
    retry_after_seconds,
    write_result,
)
from hrm_fhir.adapters.fhir.fhir_auth import AuthProvider, NoAuth, build_auth
from hrm_fhir.adapters.fhir.urls import (
    FHIR_ID,
    check_type,
    origin,
    resource_path,
    resource_type_of,
    server_path,
)
from hrm_fhir.config import Settings
from hrm_fhir.errors import (
    FHIRCapabilityError,
    FHIRError,
    FHIRFatalError,
    FHIRTemporaryError,
    OffOriginLinkError,
    ResourceNotFound,
)

logger = logging.getLogger(__name__)

FHIR_JSON = "application/fhir+json"
Params = Mapping[str, str | Sequence[str]]
_NO_CACHE = {"Cache-Control": "no-cache"}
_TRANSPORT_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
)


class _Request(NamedTuple):
    """What ``_send`` sends, the same on every attempt."""

    method: str
    url: str
    label: str
    params: list[tuple[str, str]] | None
    data: bytes | None
    headers: dict[str, str]
    stream: bool
    credentials: bool
    accept: Collection[int]


class _Failure(NamedTuple):
    """An attempt that failed in a way a retry may mend."""

    error: FHIRError
    cause: Exception | None
    refused_unprocessed: bool
    """HTTP 429: the server did not process it, so even a POST may be sent again."""
    retry_after: str | None


class FHIRGateway:
    """A FHIR R4 server reached over HTTP; see the module docstring for retry rules."""

    def __init__(
        self,
        base_url: str,
        *,
        auth: AuthProvider | None = None,
        timeout: float = 30.0,
        max_retries: int = 4,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        page_size: int = 200,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
            raise ValueError("FHIR base URL must be an absolute http(s) URL without a query")
        if max_retries < 0 or page_size < 1:
            raise ValueError("max_retries must be >= 0 and page_size >= 1")
        self.base_url = base_url.rstrip("/")
        self._origin = origin(self.base_url)
        self._base_path = urlsplit(self.base_url).path
        self._auth: AuthProvider = auth or NoAuth()
        self._timeout = timeout
        self._max_retries = max_retries
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._owns_session = session is None
        self._session = session or requests.Session()
        self._sleep = sleep
        self._page_size = page_size
        self._capabilities: Resource | None = None

    @property
    def page_size(self) -> int:
        """The ``_count`` searches ask for unless told otherwise."""
        return self._page_size

    @classmethod
    def from_settings(cls, settings: Settings) -> FHIRGateway:
        """A gateway configured from settings, with the auth provider ``settings.auth`` names."""
        return cls(
            settings.fhir_base_url,
            auth=build_auth(settings),
            timeout=settings.fhir_timeout,
            max_retries=settings.fhir_max_retries,
            page_size=settings.page_size,
        )

    def capabilities(self) -> Resource:
        """The server's CapabilityStatement (``GET [base]/metadata``), fetched once."""
        if self._capabilities is None:
            label = "capabilities"
            response = self._send("GET", f"{self.base_url}/metadata", label)
            self._capabilities = resource_of(response, label, "CapabilityStatement")
        return self._capabilities

    def require_writable(self, resource_types: Sequence[str] = ("Task", "Flag")) -> None:
        """Raise FHIRCapabilityError unless the server can create and update every type given."""
        statement = self.capabilities()
        interactions: dict[str, set[str]] = {}
        for rest in objects(statement.get("rest")):
            if rest.get("mode") == "server":
                for entry in objects(rest.get("resource")):
                    codes = {i.get("code") for i in objects(entry.get("interaction"))}
                    interactions.setdefault(str(entry.get("type")), set()).update(
                        code for code in codes if isinstance(code, str)
                    )
        problems = []
        for resource_type in resource_types:
            if resource_type not in interactions:
                problems.append(f"{resource_type} is not supported")
                continue
            missing = [c for c in ("create", "update") if c not in interactions[resource_type]]
            if missing:
                problems.append(f"{resource_type} lacks the {' and '.join(missing)} interaction")
        if problems:
            raise FHIRCapabilityError(
                f"FHIR server {self.base_url} cannot store what this service writes: "
                + "; ".join(problems)
            )

    def search(
        self, resource_type: str, params: Params, *, count: int | None = None
    ) -> SearchResult:
        """Every page of ``GET [base]/Type?params``; logs a warning when matches are missing."""
        resources: list[Resource] = []
        total: int | None = None
        server_time: str | None = None
        pages = 0
        for bundle in self.iter_pages(resource_type, params, count=count):
            if pages == 0:
                first_total = bundle.get("total")
                total = first_total if type(first_total) is int else None
                meta = bundle.get("meta")
                updated = meta.get("lastUpdated") if isinstance(meta, dict) else None
                server_time = updated if isinstance(updated, str) else None
            pages += 1
            for entry in bundle.get("entry", []):
                search = entry.get("search")
                mode = search.get("mode") if isinstance(search, dict) else None
                if mode in (None, "match"):
                    resources.append(entry["resource"])
        result = SearchResult(resources, total, pages, server_time)
        if result.shortfall:
            logger.warning(
                "search %s: server total %s but %d received over %d pages",
                resource_type,
                total,
                len(resources),
                pages,
            )
        return result

    def iter_pages(
        self, resource_type: str, params: Params, *, count: int | None = None, history: bool = False
    ) -> Iterator[Resource]:
        """Yield each searchset Bundle page (with ``history``, each page of the type's history,
        ``GET [base]/Type/_history``); stops at a page without a next link or entries."""
        check_type(resource_type)
        if "_count" in params:
            raise ValueError("pass count= rather than a _count parameter")
        if count is not None and count < 1:
            raise ValueError("count must be >= 1")
        query = [
            (name, item)
            for name, value in params.items()
            for item in ([value] if isinstance(value, str) else value)
        ]
        query.append(("_count", str(count or self._page_size)))
        if history:
            return self._pages(
                f"{resource_type}/_history", query, f"history {resource_type}", "history"
            )
        return self._pages(resource_type, query, f"search {resource_type}")

    def history(self, resource_type: str, resource_id: str) -> list[Resource]:
        """Every version of one resource, ``GET [base]/Type/id/_history`` across its pages, in
        the server's order (newest first on HAPI); deleted versions carry no resource and are
        left out. Empty when the server has no such resource (404 or 410)."""
        path = resource_path(resource_type, resource_id)
        pages = self._pages(
            f"{path}/_history", [("_count", str(self._page_size))], f"history {path}", "history"
        )
        try:
            return [
                entry["resource"]
                for bundle in pages
                for entry in bundle.get("entry", [])
                if "resource" in entry
            ]
        except ResourceNotFound:
            return []

    def read(self, resource_type: str, resource_id: str) -> Resource | None:
        """``GET [base]/Type/id``; None when the server answers 404 or 410."""
        path = resource_path(resource_type, resource_id)
        label = f"read {path}"
        try:
            response = self._send("GET", f"{self.base_url}/{path}", label)
        except ResourceNotFound:
            return None
        return resource_of(response, label, resource_type)

    def update(self, resource: Resource, *, if_match: str | None = None) -> WriteResult:
        """``PUT [base]/Type/id``; ``if_match`` is a versionId, sent as ``If-Match: W/"n"``.

        A 409 or 412 when ``if_match`` was given raises VersionConflict.
        """
        path = resource_path(resource_type_of(resource), str(resource.get("id", "")))
        headers = {}
        if if_match is not None:
            if FHIR_ID.fullmatch(if_match) is None:
                raise ValueError('if_match is a bare versionId such as "3"')
            headers["If-Match"] = f'W/"{if_match}"'
        label = f"update {path}"
        response = self._send(
            "PUT", f"{self.base_url}/{path}", label, body=resource, headers=headers
        )
        return write_result(response, label)

    def create(self, resource: Resource, *, if_none_exist: str | None = None) -> WriteResult:
        """``POST [base]/Type``, conditional on ``If-None-Exist`` (e.g. ``identifier=sys|value``).

        With ``if_none_exist`` a 200 means a match already existed; several matches give a 412
        FHIRFatalError. Never retried except on 429 (see the module docstring).
        """
        resource_type = resource_type_of(resource)
        headers = {} if if_none_exist is None else {"If-None-Exist": if_none_exist}
        label = f"create {resource_type}"
        response = self._send(
            "POST",
            f"{self.base_url}/{resource_type}",
            label,
            body=resource,
            headers=headers,
            idempotent=False,
        )
        return write_result(response, label)

    def transaction(self, bundle: Resource, *, idempotent: bool = False) -> Resource:
        """``POST [base]`` with a transaction or batch Bundle; returns the response Bundle.

        ``idempotent``: the caller vouches that sending the Bundle twice writes nothing twice
        (every entry a ``PUT`` by id, say), so it is retried like a PUT."""
        kind = bundle.get("type")
        if bundle.get("resourceType") != "Bundle" or kind not in ("transaction", "batch"):
            raise ValueError("transaction() takes a Bundle of type transaction or batch")
        label = f"{kind} Bundle"
        response = self._send("POST", self.base_url, label, body=bundle, idempotent=idempotent)
        result = resource_of(response, label, "Bundle")
        if result.get("type") != f"{kind}-response":
            raise FHIRFatalError(f"{label}: response Bundle is not a {kind}-response")
        return result

    def validate(self, resource: Resource) -> Resource:
        """``POST [base]/Type/$validate``; the OperationOutcome, also when sent with 400/412/422."""
        resource_type = resource_type_of(resource)
        label = f"validate {resource_type}"
        url = f"{self.base_url}/{resource_type}/$validate"
        response = self._send("POST", url, label, body=resource, accept=(400, 412, 422))
        return resource_of(response, label, "OperationOutcome")

    def request(
        self,
        method: str,
        url: str,
        label: str,
        *,
        params: list[tuple[str, str]] | None = None,
        body: Resource | None = None,
        headers: Mapping[str, str] | None = None,
        accept: Collection[int] = (),
        stream: bool = False,
        credentials: bool = True,
    ) -> requests.Response:
        """Any request, with the retry rules of the module docstring, for protocols beyond
        search and CRUD (Bulk Data ``$export``). ``url`` is absolute or relative to the base;
        with ``credentials`` it must stay under the base (OffOriginLinkError otherwise), without
        them no Authorization is sent. A ``stream``ed response is the caller's to close."""
        absolute = url if urlsplit(url).scheme else f"{self.base_url}/{url.lstrip('/')}"
        if credentials:
            self._check_on_base(absolute, label)
        return self._send(
            method,
            absolute,
            label,
            params=params,
            body=body,
            headers=headers,
            idempotent=method in ("GET", "PUT", "DELETE"),
            accept=accept,
            stream=stream,
            credentials=credentials,
        )

    def close(self) -> None:
        """Release connections; a session passed in by the caller is left to the caller."""
        if self._owns_session:
            self._session.close()

    def _pages(
        self, path: str, query: list[tuple[str, str]], what: str, kind: str = "searchset"
    ) -> Iterator[Resource]:
        """Each ``kind`` Bundle page of ``GET [base]/path?query``, following ``next`` links."""
        url = f"{self.base_url}/{path}"
        params: list[tuple[str, str]] | None = query
        followed: set[str] = set()
        page = 1
        while True:
            label = f"{what} page {page}"
            response = self._send("GET", url, label, params=params, headers=_NO_CACHE)
            bundle = bundle_of(response, label, kind)
            yield bundle
            next_url = next_link(bundle, label)
            if next_url is None or not bundle.get("entry"):
                return
            self._check_on_base(next_url, label)
            if next_url in followed:
                raise FHIRFatalError(f"{label}: next link repeats an earlier page")
            followed.add(next_url)
            url, params, page = next_url, None, page + 1

    def _check_on_base(self, url: str, label: str) -> None:
        """Refuse a link outside the configured scheme, host, port and base path, judged on the
        path as the server will read it (``server_path``): percent-encoded dot segments
        (``/fhir/%2e%2e/other``) and the like are refused, not passed."""
        parts = urlsplit(url)
        try:
            path = server_path(parts.path)
            on_base = (
                origin(url) == self._origin
                and parts.username is None
                and path is not None
                and (path == self._base_path or path.startswith(self._base_path + "/"))
            )
        except ValueError:  # an invalid port
            on_base = False
        if not on_base:
            where = f"{parts.scheme}://{parts.hostname}" if parts.hostname else "a relative URL"
            raise OffOriginLinkError(
                f"{label}: link to {where} leaves the configured "
                f"base {self.base_url} and is not followed (a server behind a proxy may need its "
                "public address configured)"
            )

    def _send(
        self,
        method: str,
        url: str,
        label: str,
        *,
        params: list[tuple[str, str]] | None = None,
        body: Resource | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool = True,
        accept: Collection[int] = (),
        stream: bool = False,
        credentials: bool = True,
    ) -> requests.Response:
        """Send with retries; return a 2xx response (or one in ``accept``), else raise FHIRError."""
        extra = dict(headers or {})
        data = None
        if body is not None:
            data = orjson.dumps(body)
            extra["Content-Type"] = FHIR_JSON
        # A PUT that collides with another writer (409, or 412 on If-Match) is a version conflict
        # the caller resolves by re-reading and re-applying.
        versioned = method == "PUT" or "If-Match" in extra
        sent = _Request(method, url, label, params, data, extra, stream, credentials, accept)
        retries = 0
        reauthorised = False
        while True:
            answer = self._attempt(sent, versioned=versioned, reauthorise=not reauthorised)
            if isinstance(answer, requests.Response):
                return answer
            if answer is None:  # 401: credentials refreshed, sent once more
                reauthorised = True
                continue
            self._wait_before_retry(answer, retries, idempotent=idempotent)
            retries += 1

    def _attempt(
        self, sent: _Request, *, versioned: bool, reauthorise: bool
    ) -> requests.Response | _Failure | None:
        """One request: the response when it is wanted, None after a 401 whose credentials were
        just invalidated, the failure when it may be retried; raises a failure that may not."""
        try:
            response = self._session.request(
                sent.method,
                sent.url,
                params=sent.params,
                data=sent.data,
                headers={
                    "Accept": FHIR_JSON,
                    **self._credentials(sent.credentials),
                    **sent.headers,
                },
                timeout=self._timeout,
                allow_redirects=False,
                stream=sent.stream,
            )
        except _TRANSPORT_ERRORS as exc:
            error = FHIRTemporaryError(f"{sent.label}: {type(exc).__name__}")
            return _Failure(error, exc, refused_unprocessed=False, retry_after=None)
        status = response.status_code
        if status == 401 and sent.credentials and reauthorise:
            logger.info("%s: HTTP 401, retrying once with fresh credentials", sent.label)
            response.close()
            self._auth.invalidate()
            return None
        if 200 <= status < 300 or status in sent.accept:
            return response
        failure = error_for(response, sent.label, versioned=versioned)
        response.close()
        if not isinstance(failure, FHIRTemporaryError):
            raise failure
        retry_after = response.headers.get("Retry-After")
        return _Failure(failure, None, refused_unprocessed=status == 429, retry_after=retry_after)

    def _wait_before_retry(self, failure: _Failure, retries: int, *, idempotent: bool) -> None:
        """Sleep before the next attempt, or raise the failure when it must not be retried: a POST
        the server may have applied, the attempts used up, or a Retry-After beyond max_backoff."""
        error, cause = failure.error, failure.cause
        if not (idempotent or failure.refused_unprocessed):
            raise give_up(error, "not retried: repeating a POST could write twice") from cause
        if retries >= self._max_retries:
            raise give_up(error, f"gave up after {retries + 1} attempts") from cause
        delay = self._delay(retries, failure.retry_after)
        if delay is None:
            raise give_up(error, f"Retry-After exceeds {self._max_backoff}s") from cause
        logger.warning("%s; retry %d of %d in %.2fs", error, retries + 1, self._max_retries, delay)
        self._sleep(delay)

    def _credentials(self, wanted: bool) -> dict[str, str]:
        return self._auth.headers() if wanted else {}

    def _delay(self, retries: int, retry_after: str | None) -> float | None:
        """Seconds before the next attempt; None when Retry-After asks for more than max_backoff."""
        asked = None if retry_after is None else retry_after_seconds(retry_after)
        if asked is None:
            return float(min(self._max_backoff, self._backoff * 2**retries))
        return asked if asked <= self._max_backoff else None
