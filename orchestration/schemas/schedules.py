"""Schedule math: the dates a deployment schedule fires on, as Prefect's server computes them.

A stored schedule (``DeploymentSchedule.schedule``) is one of Prefect's three shapes:

* ``{"interval": <seconds>, "anchor_date": <ISO>, "timezone": <IANA>}``
* ``{"cron": <expr>, "timezone": <IANA or null>, "day_or": <bool>}``
* ``{"rrule": <RFC 5545 text>, "timezone": <IANA>}``

:func:`schedule_dates` yields its dates on or after ``start`` (and not after ``end``), at most ``n``,
each an aware datetime in the schedule's timezone. The semantics follow
``prefect/server/schemas/schedules.py`` of Prefect 3.9 on Python 3.11, written here with the
standard library, ``croniter`` and ``dateutil``:

* interval: sub-day intervals step in absolute time (an hourly schedule fires every UTC hour across
  DST changes); whole-day intervals step in calendar days, keeping the local clock time; a local
  time that does not exist moves forward by the gap and the series keeps that time afterwards; a
  repeated local time resolves to its second occurrence;
* cron: wall-clock times in the schedule's timezone; a time skipped by a DST change fires at the
  shifted time, a repeated time fires once (its first occurrence);
* rrule: dateutil's expansion with the rule's DTSTART relabelled in the schedule's timezone.

The validators Prefect applies to schedules (cron syntax, rrule syntax and length, timezone
names) and its rrule DTSTART normalisation live here too, so the request schemas and the
scheduler agree on one definition.
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
import heapq
import itertools
import math
from collections.abc import Iterator
from typing import Any
from zoneinfo import ZoneInfo, available_timezones

import dateutil.rrule
import dateutil.tz
from croniter import croniter

UTC = dt.UTC

#: Candidate dates examined per call, as Prefect (``MAX_ITERATIONS``).
MAX_ITERATIONS = 1000
#: Longest rrule text accepted (Prefect: "approx. 1 year's worth of RDATEs + buffer").
MAX_RRULE_LENGTH = 6500
#: An rrule without DTSTART is anchored here (Prefect's implicit dateutil anchor).
DEFAULT_RRULE_ANCHOR = dt.datetime(2020, 1, 1, 0, 0, 0)


# --- validation ---------------------------------------------------------------------------------------


@functools.cache
def timezone_names() -> frozenset[str]:
    return frozenset(name for name in available_timezones() if "localtime" not in name)


def validate_timezone(value: str | None) -> str | None:
    if value is not None and value not in timezone_names():
        raise ValueError(
            f'Invalid timezone: "{value}" (specify in IANA tzdata format, for example, America/New_York)'
        )
    return value


def validate_cron_string(value: str) -> str:
    try:
        valid = croniter.is_valid(value)
    except Exception:  # noqa: BLE001 - croniter raises many kinds for garbage input
        valid = False
    if not valid:
        raise ValueError(f'Invalid cron string: "{value}"')
    if any(part.casefold() in ("r", "h") for part in value.split()):
        raise ValueError(f'Random and Hashed expressions are unsupported, received: "{value}"')
    return value


def validate_rrule_string(value: str) -> str:
    if len(value) > MAX_RRULE_LENGTH:
        raise ValueError(
            f'Invalid RRule string "{value[:40]}...": max length is {MAX_RRULE_LENGTH}, got {len(value)}'
        )
    try:
        dateutil.rrule.rrulestr(value, cache=True)
    except Exception as error:  # noqa: BLE001 - dateutil raises ValueError, TypeError, …
        raise ValueError(f'Invalid RRule string "{value}": {error}') from None
    return value


def normalize_rrule_string(value: str, *, timezone: str | None = None, now: dt.datetime | None = None) -> str:
    """Make DTSTART explicit, as Prefect does on every schedule it is sent: high-frequency rules
    (SECONDLY/MINUTELY, no COUNT) get a recent phase-equivalent anchor, so expanding them does not
    walk every occurrence since 2020; everything else gets the legacy 2020-01-01 anchor."""
    if "DTSTART" in value.upper():
        return value
    try:
        parsed = dateutil.rrule.rrulestr(value, dtstart=DEFAULT_RRULE_ANCHOR, cache=False)
    except (ValueError, TypeError):
        return value
    if not isinstance(parsed, dateutil.rrule.rrule):
        return _prepend_dtstart(value, DEFAULT_RRULE_ANCHOR)
    freq = getattr(parsed, "_freq", None)
    interval = getattr(parsed, "_interval", None)
    count = getattr(parsed, "_count", None)
    if (
        freq is None
        or interval is None
        or count is not None
        or freq not in (dateutil.rrule.SECONDLY, dateutil.rrule.MINUTELY)
    ):
        return _prepend_dtstart(value, DEFAULT_RRULE_ANCHOR)
    period = (1 if freq == dateutil.rrule.SECONDLY else 60) * interval
    anchor_tz = (dateutil.tz.gettz(timezone) if timezone else None) or UTC
    now = now or dt.datetime.now(UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    local_now = now.astimezone(anchor_tz).replace(tzinfo=None)
    delta = (local_now - DEFAULT_RRULE_ANCHOR).total_seconds()
    if delta <= 0:
        return _prepend_dtstart(value, DEFAULT_RRULE_ANCHOR)
    steps = int(delta // period)
    return _prepend_dtstart(value, DEFAULT_RRULE_ANCHOR + dt.timedelta(seconds=steps * period))


def _prepend_dtstart(value: str, anchor: dt.datetime) -> str:
    return f"DTSTART:{anchor.strftime('%Y%m%dT%H%M%S')}\n{value}"


def schedule_kind(schedule: dict[str, Any]) -> str:
    """``interval`` | ``cron`` | ``rrule``; the class name Prefect shows is :func:`schedule_class_name`."""
    for kind in ("interval", "cron", "rrule"):
        if kind in schedule:
            return kind
    raise ValueError("A schedule needs one of interval, cron or rrule.")


def schedule_class_name(schedule: dict[str, Any]) -> str:
    return {"interval": "IntervalSchedule", "cron": "CronSchedule", "rrule": "RRuleSchedule"}[
        schedule_kind(schedule)
    ]


# --- time zones ---------------------------------------------------------------------------------------


@functools.cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _offset(tz: dt.tzinfo, instant: float) -> dt.timedelta:
    return dt.datetime.fromtimestamp(instant, tz).utcoffset() or dt.timedelta(0)


@functools.cache
def _transitions_in_year(name: str, year: int) -> tuple[int, ...]:
    """The instants (POSIX seconds) at which ``name``'s UTC offset changes during ``year``,
    found by probing every 6 hours and bisecting to the second."""
    if name in ("UTC", "Etc/UTC", "Etc/GMT", "GMT"):
        return ()
    tz = _zone(name)
    begin = int(dt.datetime(year, 1, 1, tzinfo=UTC).timestamp())
    finish = int(dt.datetime(year + 1, 1, 1, tzinfo=UTC).timestamp())
    step = 6 * 3600
    found: list[int] = []
    low, low_offset = begin, _offset(tz, begin)
    while low < finish:
        high = min(low + step, finish)
        high_offset = _offset(tz, high)
        if high_offset != low_offset:
            lo, hi = low, high
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if _offset(tz, mid) == low_offset:
                    lo = mid
                else:
                    hi = mid
            found.append(hi)
        low, low_offset = high, high_offset
    return tuple(found)


def _next_transition(name: str, after: float, *, until: float) -> int | None:
    """The first offset change strictly after ``after`` and not after ``until``."""
    year = dt.datetime.fromtimestamp(after, UTC).year
    last_year = dt.datetime.fromtimestamp(until, UTC).year
    while year <= last_year:
        transitions = _transitions_in_year(name, year)
        index = bisect.bisect_right(transitions, int(math.floor(after)))
        if index < len(transitions):
            return transitions[index] if transitions[index] <= until else None
        year += 1
    return None


def _previous_transition(name: str, at: float) -> int | None:
    """The last offset change at or before ``at`` within the preceding day and a half (all that
    the DST handling of cron schedules needs to look at)."""
    year = dt.datetime.fromtimestamp(at, UTC).year
    candidates = [*_transitions_in_year(name, year - 1), *_transitions_in_year(name, year)]
    index = bisect.bisect_right(candidates, int(math.floor(at)))
    if index and at - candidates[index - 1] <= 36 * 3600:
        return candidates[index - 1]
    return None


def _localize_later(naive: dt.datetime, tz: ZoneInfo) -> dt.datetime:
    """A local wall time made aware the way Prefect's interval arithmetic does it: a skipped time
    moves forward by the gap, a repeated time is its second occurrence."""
    before = tz.utcoffset(naive.replace(fold=0)) or dt.timedelta(0)
    after = tz.utcoffset(naive.replace(fold=1)) or dt.timedelta(0)
    if after > before:
        naive = naive + (after - before)
    return naive.replace(tzinfo=tz, fold=1)


def _as_aware(value: dt.datetime | str, tz: ZoneInfo | None = None) -> dt.datetime:
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(tz) if tz is not None else value


# --- dates ----------------------------------------------------------------------------------------------


def schedule_dates(
    schedule: dict[str, Any],
    *,
    start: dt.datetime,
    end: dt.datetime | None = None,
    n: int | None = None,
) -> Iterator[dt.datetime]:
    """Dates of ``schedule`` from ``start`` (inclusive) to ``end`` (inclusive), at most ``n``
    (default: every date up to ``end``, else one), in ascending order."""
    if n is None:
        n = MAX_ITERATIONS if end is not None else 1
    kind = schedule_kind(schedule)
    if kind == "interval":
        return _interval_dates(schedule, start=start, end=end, n=n)
    if kind == "cron":
        return _cron_dates(schedule, start=start, end=end, n=n)
    return _rrule_dates(schedule, start=start, end=end, n=n)


def _interval_dates(
    schedule: dict[str, Any], *, start: dt.datetime, end: dt.datetime | None, n: int
) -> Iterator[dt.datetime]:
    name = schedule.get("timezone") or "UTC"
    tz = _zone(name)
    interval = dt.timedelta(seconds=float(schedule["interval"]))
    anchor = _as_aware(schedule["anchor_date"], tz)
    start = _as_aware(start, tz)
    end = _as_aware(end, tz) if end is not None else None

    # Whole days step on the calendar (local clock time kept), the rest in absolute seconds.
    days = interval.days
    seconds = interval.total_seconds() - days * 86400
    total = interval.total_seconds()

    def add(value: dt.datetime, add_days: int, add_seconds: float) -> dt.datetime:
        if add_days:
            naive = value.replace(tzinfo=None) + dt.timedelta(days=add_days, seconds=add_seconds)
            return _localize_later(naive, tz)
        return (value.astimezone(UTC) + dt.timedelta(seconds=add_seconds)).astimezone(tz)

    if days == 0 or seconds == 0:

        def jump(count: int) -> dt.datetime:
            return add(anchor, days * count, seconds * count)

    else:

        def jump(count: int) -> dt.datetime:
            return add(anchor, 0, total * count)

    offset = 0
    # Instants are compared as instants: two aware datetimes of one zone compare by wall time.
    if start.timestamp() >= anchor.timestamp() and days != 0 and seconds == 0 and name != "UTC":
        # A skipped local time can move the clock time of every later occurrence, so walk from
        # the anchor through each DST change (cheaply: whole stretches between changes at once).
        current = anchor
        while current.timestamp() < start.timestamp():
            transition = _next_transition(name, current.timestamp(), until=start.timestamp())
            boundary = start
            if transition is not None:
                boundary = dt.datetime.fromtimestamp(transition, tz)
            count = max(1, (boundary.date() - current.date()).days // days - 1)
            current = add(current, days * count, 0)
        next_date = current
    else:
        offset = int((start - anchor).total_seconds() / total)
        next_date = jump(offset)
        while next_date.timestamp() > start.timestamp():
            offset -= 1
            next_date = jump(offset)

    before_anchor_days = start.timestamp() < anchor.timestamp() and days != 0 and seconds == 0

    def following(value: dt.datetime) -> dt.datetime:
        nonlocal offset
        if before_anchor_days and offset < 0:
            offset += 1
            return jump(offset)
        return add(value, days, seconds)

    while next_date.timestamp() < start.timestamp():
        next_date = following(next_date)

    seen: set[dt.datetime] = set()
    counter = 0
    while True:
        if end is not None and next_date.timestamp() > end.timestamp():
            return
        # Keyed by instant: 01:30 EDT and 01:30 EST are equal as same-zone datetimes.
        instant = next_date.astimezone(UTC)
        if instant not in seen:
            seen.add(instant)
            yield next_date
        if len(seen) >= n or counter > MAX_ITERATIONS:
            return
        counter += 1
        next_date = following(next_date)


def _cron_dates(
    schedule: dict[str, Any], *, start: dt.datetime, end: dt.datetime | None, n: int
) -> Iterator[dt.datetime]:
    name = schedule.get("timezone") or "UTC"
    tz = _zone(name)
    day_or = schedule.get("day_or", True)
    expression = schedule["cron"]
    start = _as_aware(start, tz)
    start_utc = start.astimezone(UTC)
    end_utc = _as_aware(end).astimezone(UTC) if end is not None else None

    start_naive = start.replace(tzinfo=None) - dt.timedelta(seconds=1)
    if start.microsecond > 0:
        start_naive += dt.timedelta(seconds=1)

    def localize(wall: dt.datetime) -> dt.datetime:
        # The first occurrence of a repeated time; a skipped time shifted forward by the gap.
        return wall.replace(tzinfo=tz, fold=0).astimezone(UTC).astimezone(tz)

    def walls(since: dt.datetime) -> Iterator[dt.datetime]:
        cron = croniter(expression, since, day_or=day_or)
        while True:
            yield cron.get_next(dt.datetime)

    transition = _previous_transition(name, start_utc.timestamp() + 1 - 1e-6) if name != "UTC" else None
    gap = 0.0
    since_transition = 0.0
    transition_wall: dt.datetime | None = None
    if transition is not None:
        gap = (_offset(tz, transition) - _offset(tz, transition - 1)).total_seconds()
        since_transition = start_utc.timestamp() - transition
        transition_wall = dt.datetime.fromtimestamp(transition, tz).replace(tzinfo=None)
        if 0 <= since_transition < -gap:
            # Inside a repeated hour: its wall times fired on the first pass already.
            start_naive = transition_wall - dt.timedelta(seconds=gap) - dt.timedelta(seconds=1)

    candidates: Iterator[dt.datetime] = map(localize, walls(start_naive))
    if transition_wall is not None and 0 <= since_transition < gap:
        # Just after a spring-forward: times in the skipped hour still fire, shifted.
        gap_end = transition_wall
        shifted = itertools.takewhile(
            lambda wall: wall < gap_end, walls(start_naive - dt.timedelta(seconds=gap))
        )
        candidates = heapq.merge(map(localize, shifted), candidates, key=lambda date: date.astimezone(UTC))

    seen: set[dt.datetime] = set()
    for date in itertools.islice(candidates, MAX_ITERATIONS + 2):
        date_utc = date.astimezone(UTC)
        if end_utc is not None and date_utc > end_utc:
            return
        if date_utc >= start_utc and date_utc not in seen:
            seen.add(date_utc)
            yield date
        if len(seen) >= n:
            return


@functools.lru_cache(maxsize=1024)
def _rrule_for(text: str, name: str) -> dateutil.rrule.rrule | dateutil.rrule.rruleset:
    """The rule with its dates relabelled in the schedule's timezone (Prefect's ``to_rrule``)."""
    rule = dateutil.rrule.rrulestr(text, dtstart=dt.date(2020, 1, 1), cache=True)
    tz = dateutil.tz.gettz(name)

    def localized(part: dateutil.rrule.rrule) -> dateutil.rrule.rrule:
        changes: dict[str, Any] = {"dtstart": part._dtstart.replace(tzinfo=tz)}
        if part._until:
            changes["until"] = part._until.replace(tzinfo=tz)
        return part.replace(**changes)

    if isinstance(rule, dateutil.rrule.rrule):
        return localized(rule)
    rule._rrule = [localized(part) for part in rule._rrule]
    rule._exrule = [localized(part) for part in rule._exrule]
    rule._rdate = [value.replace(tzinfo=tz) for value in rule._rdate]
    rule._exdate = [value.replace(tzinfo=tz) for value in rule._exdate]
    return rule


_FIXED_PERIODS = {
    dateutil.rrule.WEEKLY: dt.timedelta(weeks=1),
    dateutil.rrule.DAILY: dt.timedelta(days=1),
    dateutil.rrule.HOURLY: dt.timedelta(hours=1),
    dateutil.rrule.MINUTELY: dt.timedelta(minutes=1),
    dateutil.rrule.SECONDLY: dt.timedelta(seconds=1),
}
#: How far before the first wanted date an advanced DTSTART stays.
_ADVANCE_MARGIN = dt.timedelta(days=3)


def _advanced(rule: Any, start: dt.datetime) -> Any:
    """The rule with DTSTART moved forward by whole periods to shortly before ``start``.

    dateutil expands a rule from DTSTART on every call, so a daily rule anchored in 2020 walks
    two thousand dates to find tomorrow's. A rule without COUNT whose periods have a fixed length
    (weekly and shorter) and whose BY-parts do not depend on the year (no BYSETPOS, BYWEEKNO,
    BYYEARDAY or BYEASTER) has the same occurrences after a DTSTART moved by a whole number of
    intervals, keeping its clock time and weekday. The margin keeps the few dates the moved start
    would skip in its first period (earlier weekdays of that week, say) before ``start``."""
    if not isinstance(rule, dateutil.rrule.rrule) or rule._count is not None:
        return rule
    period = _FIXED_PERIODS.get(rule._freq)
    if period is None or rule._bysetpos or rule._byweekno or rule._byyearday or rule._byeaster:
        return rule
    dtstart = rule._dtstart
    step = period * rule._interval
    local_start = start.astimezone(dtstart.tzinfo).replace(tzinfo=None) if dtstart.tzinfo else start
    distance = local_start - _ADVANCE_MARGIN - dtstart.replace(tzinfo=None)
    steps = distance // step if distance > dt.timedelta(0) else 0
    if steps <= 0:
        return rule
    return rule.replace(dtstart=dtstart + steps * step)


def _rrule_dates(
    schedule: dict[str, Any], *, start: dt.datetime, end: dt.datetime | None, n: int
) -> Iterator[dt.datetime]:
    name = schedule.get("timezone") or "UTC"
    tz = _zone(name)
    start = _as_aware(start, tz)
    end = _as_aware(end, tz) if end is not None else None
    seen: set[dt.datetime] = set()
    rule = _advanced(_rrule_for(schedule["rrule"], name), start)
    for counter, raw in enumerate(rule.xafter(start, count=None, inc=True)):
        date = _as_aware(raw).astimezone(tz)
        if end is not None and date > end:
            return
        instant = date.astimezone(UTC)
        if instant not in seen:
            seen.add(instant)
            yield date
        if len(seen) >= n or counter > MAX_ITERATIONS:
            return
