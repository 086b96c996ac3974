"""One sweeper at a time: leases that expire, renew, release, and survive real contention."""

from __future__ import annotations

import multiprocessing
from datetime import datetime, timedelta
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from hrm_fhir.adapters.store.database import make_engine, make_session_factory
from hrm_fhir.adapters.store.ledger import acquire_lock, live_lock, release_lock
from hrm_fhir.adapters.store.records import LockRecord
from tests.adapters.store.examples import NOW


def test_a_second_holder_is_refused_while_the_lock_is_held(session: Session) -> None:
    assert acquire_lock(session, "sweep", "a", ttl_seconds=600, now=NOW)
    assert not acquire_lock(session, "sweep", "b", ttl_seconds=600, now=NOW + timedelta(minutes=9))
    lock = live_lock(session, "sweep", now=NOW + timedelta(minutes=9))
    assert lock is not None
    assert lock.holder == "a"


def test_an_expired_lock_can_be_taken_over(session: Session) -> None:
    assert acquire_lock(session, "sweep", "a", ttl_seconds=600, now=NOW)
    later = NOW + timedelta(minutes=10)
    assert live_lock(session, "sweep", now=later) is None
    assert acquire_lock(session, "sweep", "b", ttl_seconds=600, now=later)
    lock = live_lock(session, "sweep", now=later)
    assert lock is not None
    assert (lock.holder, lock.acquired_at, lock.expires_at) == (
        "b",
        later,
        later + timedelta(minutes=10),
    )


def test_the_holder_renews_without_moving_acquired_at(session: Session) -> None:
    assert acquire_lock(session, "sweep", "a", ttl_seconds=600, now=NOW)
    renewed = NOW + timedelta(minutes=5)
    assert acquire_lock(session, "sweep", "a", ttl_seconds=600, now=renewed)
    lock = live_lock(session, "sweep", now=renewed)
    assert lock is not None
    assert (lock.acquired_at, lock.expires_at) == (NOW, renewed + timedelta(minutes=10))


def test_a_released_lock_can_be_acquired_again(session: Session) -> None:
    assert acquire_lock(session, "sweep", "a", ttl_seconds=600, now=NOW)
    assert not release_lock(session, "sweep", "b")
    assert live_lock(session, "sweep", now=NOW) is not None
    assert release_lock(session, "sweep", "a")
    assert live_lock(session, "sweep", now=NOW) is None
    assert acquire_lock(session, "sweep", "b", ttl_seconds=600, now=NOW)


def test_locks_are_independent_by_name(session: Session) -> None:
    assert acquire_lock(session, "sweep", "a", ttl_seconds=600, now=NOW)
    assert acquire_lock(session, "reconcile", "b", ttl_seconds=600, now=NOW)


NAMES = [f"lock-{n}" for n in range(20)]
EXPIRED = NAMES[::2]
"""Half the locks start out held by a crashed holder whose lease has run out."""


def _contend(
    url: str, holder: str, now: datetime, barrier: Barrier, results: Queue[tuple[str, list[str]]]
) -> None:
    engine = make_engine(url)
    try:
        sessions = make_session_factory(engine)
        barrier.wait(timeout=60)
        won = []
        for name in NAMES:
            with sessions() as session:
                if acquire_lock(session, name, holder, ttl_seconds=600, now=now):
                    won.append(name)
        results.put((holder, won))
    finally:
        engine.dispose()


def test_two_processes_contend_and_exactly_one_wins_each_lock(
    engine: Engine, database_url: str
) -> None:
    with make_session_factory(engine)() as session:
        for name in EXPIRED:
            assert acquire_lock(
                session, name, "crashed", ttl_seconds=60, now=NOW - timedelta(hours=1)
            )

    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    results: Queue[tuple[str, list[str]]] = context.Queue()
    processes = [
        context.Process(target=_contend, args=(database_url, holder, NOW, barrier, results))
        for holder in ("p1", "p2")
    ]
    for process in processes:
        process.start()
    try:
        won = dict(results.get(timeout=120) for _ in processes)
    finally:
        for process in processes:
            process.join(timeout=60)
        results.close()
        results.join_thread()
    assert [process.exitcode for process in processes] == [0, 0]

    assert sorted(won["p1"] + won["p2"]) == sorted(NAMES)
    assert not set(won["p1"]) & set(won["p2"])
    with make_session_factory(engine)() as session:
        holders = dict(session.execute(select(LockRecord.name, LockRecord.holder)).all())
    assert holders == {name: ("p1" if name in won["p1"] else "p2") for name in NAMES}
