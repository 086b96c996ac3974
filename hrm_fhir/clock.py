"""Today, in the service's time zone: the one place the programme's calendar is defined.

Due dates, month boundaries, "today" and the local date of a result all count in one zone,
``HRM_TIMEZONE`` (an IANA name, default ``Europe/London``). The command line and the app factory
set it once from the settings (``use_zone``) before any work; everything else asks here.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT_ZONE = "Europe/London"

_zone = ZoneInfo(DEFAULT_ZONE)


def parse_zone(name: str) -> ZoneInfo:
    """The zone called ``name``; ValueError with the name when there is none."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ValueError(f"HRM_TIMEZONE {name!r} is not an IANA time zone name") from error


def use_zone(name: str) -> ZoneInfo:
    """Make ``name`` the service's zone (process-wide) and return it."""
    global _zone
    _zone = parse_zone(name)
    return _zone


def zone() -> ZoneInfo:
    """The service's time zone."""
    return _zone


def now() -> datetime:
    """This instant, in UTC."""
    return datetime.now(UTC)


def local_now() -> datetime:
    """This instant, in the service's zone."""
    return datetime.now(_zone)


def today() -> date:
    """Today's date in the service's zone."""
    return local_date(now())


def local_date(moment: datetime) -> date:
    """The date of ``moment`` in the service's zone; a naive moment is taken as local."""
    if moment.tzinfo is None:
        return moment.date()
    return moment.astimezone(_zone).date()


def start_of(day: date, at: time = time()) -> datetime:
    """``day`` at ``at`` (midnight unless told) in the service's zone, as an aware instant."""
    return datetime.combine(day, at, _zone)
