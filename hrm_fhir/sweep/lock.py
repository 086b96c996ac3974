"""The sweep lock: one sweeper at a time, held in the ledger as a lease that a sweep renews and
that a dead process on this host gives up at once."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from hrm_fhir.adapters.store import ledger
from hrm_fhir.errors import HRMError

LOCK_TTL_SECONDS = 15 * 60


class SweepBusyError(HRMError):
    """Another process holds the sweep lock."""


def take_lock(sessions: sessionmaker[Session], holder: str, clock: Callable[[], datetime]) -> None:
    """Take the sweep lock; a lock left by a dead process on this host is taken over at once
    (a killed sweep would otherwise block the next one until the lease expires)."""
    for _ in range(2):
        with sessions.begin() as session:
            if ledger.acquire_lock(
                session, ledger.SWEEP_LOCK, holder, ttl_seconds=LOCK_TTL_SECONDS, now=clock()
            ):
                return
        with sessions.begin() as session:
            lock = ledger.live_lock(session, ledger.SWEEP_LOCK, now=clock())
            if lock is None or not _is_dead_local(lock.holder):
                break
            ledger.release_lock(session, ledger.SWEEP_LOCK, lock.holder)
    raise SweepBusyError("another sweep is running (the sweep lock is held)")


def renew_lock(sessions: sessionmaker[Session], holder: str, clock: Callable[[], datetime]) -> None:
    """Extend the lease; SweepBusyError when another process has taken the lock meanwhile."""
    with sessions.begin() as session:
        if not ledger.acquire_lock(
            session, ledger.SWEEP_LOCK, holder, ttl_seconds=LOCK_TTL_SECONDS, now=clock()
        ):
            raise SweepBusyError("the sweep lock was lost to another process")


def release_lock(sessions: sessionmaker[Session], holder: str) -> None:
    with sessions.begin() as session:
        ledger.release_lock(session, ledger.SWEEP_LOCK, holder)


def _is_dead_local(holder: str) -> bool:
    host, _, pid = holder.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
