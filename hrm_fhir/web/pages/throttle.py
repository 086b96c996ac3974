"""Sign-in throttling: failed sign-ins are counted per submitted username and per client address,
and past either limit every sign-in is refused (429, Retry-After) until the window moves on, even
with the right password.

Counting is done by ``limits`` (the rate-limiting library under Flask-Limiter, by the same
maintainers), moving window, in the storage ``HRM_RATE_LIMIT_STORAGE`` names: ``memory://`` (the
default) counts in this process only, which is exact for ``hrm-fhir serve`` (one process, many
threads); several processes or hosts must share ``redis://...``. The username is counted whether
or not such an account exists, so the lockout says nothing about which accounts exist, and it is
counted as a keyed digest, so the storage never holds what was typed (a password in the username
field). Only failures count, so a user who signs in often is never locked out.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time

from limits import RateLimitItem, parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter


class SignInThrottle:
    def __init__(self, storage_uri: str, per_account: str, per_address: str, key: bytes) -> None:
        self._limiter = MovingWindowRateLimiter(storage_from_string(storage_uri))
        self._limits: tuple[tuple[str, RateLimitItem], ...] = (
            ("account", parse(per_account)),
            ("address", parse(per_address)),
        )
        self._key = key

    def attempt_id(self, username: str) -> str:
        """A keyed digest of the submitted username (16 hex digits): what logs and counters
        hold instead of the text."""
        name = username.strip().lower().encode("utf-8", "surrogatepass")
        return hmac.new(self._key, name, hashlib.sha256).hexdigest()[:16]

    def wait_seconds(self, username: str, address: str) -> int | None:
        """Seconds until sign-in is allowed again for this username and address; None: now."""
        waits = [
            self._limiter.get_window_stats(item, kind, ident).reset_time - time.time()
            for kind, item, ident in self._keys(username, address)
            if not self._limiter.test(item, kind, ident)
        ]
        return max(1, math.ceil(max(waits))) if waits else None

    def failed(self, username: str, address: str) -> None:
        for kind, item, ident in self._keys(username, address):
            self._limiter.hit(item, kind, ident)

    def succeeded(self, username: str) -> None:
        """A right password clears the username's failures (not the address's)."""
        kind, item = self._limits[0]
        self._limiter.clear(item, kind, self.attempt_id(username))

    def _keys(self, username: str, address: str) -> list[tuple[str, RateLimitItem, str]]:
        (account, per_account), (place, per_address) = self._limits
        return [
            (account, per_account, self.attempt_id(username)),
            (place, per_address, address),
        ]
