"""Schedule math: the dates of interval, cron and rrule schedules, across DST changes, checked by
hand and against Prefect's own server schedule classes; and what a valid schedule is."""

from __future__ import annotations

import datetime as dt
import random
from zoneinfo import ZoneInfo

import pytest
from pydantic import TypeAdapter, ValidationError

from orchestration.schemas.deployments import DeploymentScheduleCreate, ScheduleIn, stored_schedule
from orchestration.schemas.schedules import normalize_rrule_string, schedule_dates

UTC = dt.UTC
NY = ZoneInfo("America/New_York")


def _utc(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


def _dates(schedule, start, n=10, end=None):
    return list(schedule_dates(schedule, start=start, end=end, n=n))


def _instants(dates):
    return [d.astimezone(UTC) for d in dates]


def _local(dates, tz=NY):
    return [d.astimezone(tz).strftime("%m-%d %H:%M %Z") for d in dates]


class TestCron:
    def test_a_daily_time_keeps_its_local_clock_across_both_dst_changes(self):
        schedule = {"cron": "0 9 * * *", "timezone": "America/New_York", "day_or": True}
        spring = _dates(schedule, _utc(2024, 3, 9), n=3)
        assert _local(spring) == ["03-09 09:00 EST", "03-10 09:00 EDT", "03-11 09:00 EDT"]
        assert [d.astimezone(UTC).hour for d in spring] == [14, 13, 13]
        fall = _dates(schedule, _utc(2024, 11, 2), n=3)
        assert _local(fall) == ["11-02 09:00 EDT", "11-03 09:00 EST", "11-04 09:00 EST"]

    def test_a_time_skipped_by_spring_forward_fires_shifted_by_the_gap(self):
        schedule = {"cron": "30 2 * * *", "timezone": "America/New_York", "day_or": True}
        assert _local(_dates(schedule, _utc(2024, 3, 9), n=3)) == [
            "03-09 02:30 EST",
            "03-10 03:30 EDT",
            "03-11 02:30 EDT",
        ]

    def test_a_start_just_after_spring_forward_still_gets_the_shifted_time(self):
        schedule = {"cron": "30 2 * * *", "timezone": "America/New_York", "day_or": True}
        start = _utc(2024, 3, 10, 7, 10)  # 03:10 EDT, ten minutes after the change
        assert _local(_dates(schedule, start, n=2)) == ["03-10 03:30 EDT", "03-11 02:30 EDT"]

    def test_a_repeated_time_fires_once_on_fall_back(self):
        schedule = {"cron": "30 1 * * *", "timezone": "America/New_York", "day_or": True}
        dates = _dates(schedule, _utc(2024, 11, 2, 12), n=3)
        assert _local(dates) == ["11-03 01:30 EDT", "11-04 01:30 EST", "11-05 01:30 EST"]

    def test_an_hourly_cron_pauses_two_hours_on_fall_back(self):
        """Cron fires on wall-clock hours: 01:00 is reached once, then 02:00 (Prefect's docs)."""
        schedule = {"cron": "0 * * * *", "timezone": "America/New_York", "day_or": True}
        dates = _dates(schedule, _utc(2024, 11, 3, 4), n=3)
        assert [d.astimezone(UTC).hour for d in dates] == [4, 5, 7]

    def test_day_or(self):
        """The 13th or a Friday, or only Fridays the 13th."""
        either = {"cron": "0 0 13 * 5", "timezone": "UTC", "day_or": True}
        both = {"cron": "0 0 13 * 5", "timezone": "UTC", "day_or": False}
        assert [d.day for d in _dates(either, _utc(2024, 9, 1), n=3)] == [6, 13, 20]
        assert [d.date() for d in _dates(both, _utc(2024, 1, 1), n=2)] == [
            dt.date(2024, 9, 13),
            dt.date(2024, 12, 13),
        ]

    def test_start_is_inclusive_and_end_bounds(self):
        schedule = {"cron": "0 * * * *", "timezone": None, "day_or": True}
        dates = _dates(schedule, _utc(2024, 1, 1, 5), n=100, end=_utc(2024, 1, 1, 8))
        assert [d.hour for d in dates] == [5, 6, 7, 8]
        assert _dates(schedule, _utc(2024, 1, 1, 5, 0, 0, 1), n=1)[0].hour == 6


class TestInterval:
    def test_sub_day_intervals_step_in_utc_across_fall_back(self):
        schedule = {"interval": 3600, "anchor_date": "2024-01-01T00:30:00Z", "timezone": "America/New_York"}
        dates = _dates(schedule, _utc(2024, 11, 3, 4), n=4)
        assert [d.astimezone(UTC).strftime("%H:%M") for d in dates] == ["04:30", "05:30", "06:30", "07:30"]
        assert _local(dates) == ["11-03 00:30 EDT", "11-03 01:30 EDT", "11-03 01:30 EST", "11-03 02:30 EST"]

    def test_daily_intervals_keep_the_anchors_local_time(self):
        schedule = {"interval": 86400, "anchor_date": "2024-01-01T14:00:00Z", "timezone": "America/New_York"}
        assert _local(_dates(schedule, _utc(2024, 3, 9), n=3)) == [
            "03-09 09:00 EST",
            "03-10 09:00 EDT",
            "03-11 09:00 EDT",
        ]

    def test_a_skipped_local_time_moves_the_series(self):
        """Anchored at 02:30 local, the series lands in the spring-forward gap once and keeps 03:30."""
        schedule = {"interval": 86400, "anchor_date": "2024-03-01T07:30:00Z", "timezone": "America/New_York"}
        assert _local(_dates(schedule, _utc(2024, 3, 9), n=3)) == [
            "03-09 02:30 EST",
            "03-10 03:30 EDT",
            "03-11 03:30 EDT",
        ]

    def test_the_anchor_sets_the_phase_before_and_after_it(self):
        schedule = {"interval": 900, "anchor_date": "2030-01-01T00:05:00Z", "timezone": "UTC"}
        assert [d.minute for d in _dates(schedule, _utc(2024, 6, 1, 10, 1), n=3)] == [5, 20, 35]
        schedule = {"interval": 7 * 86400, "anchor_date": "2024-01-03T12:00:00Z", "timezone": "UTC"}
        assert {d.weekday() for d in _dates(schedule, _utc(2024, 6, 1), n=5)} == {2}

    def test_fractional_and_long_intervals(self):
        schedule = {"interval": 1.5, "anchor_date": "2024-01-01T00:00:00Z", "timezone": "UTC"}
        dates = _dates(schedule, _utc(2024, 1, 1, 0, 0, 1), n=2)
        assert dates == [_utc(2024, 1, 1, 0, 0, 1, 500000), _utc(2024, 1, 1, 0, 0, 3)]


class TestRRule:
    def test_weekly_in_a_timezone_across_dst(self):
        schedule = {"rrule": "DTSTART:20240101T090000\nFREQ=WEEKLY;BYDAY=MO", "timezone": "America/New_York"}
        assert _local(_dates(schedule, _utc(2024, 3, 1), n=3)) == [
            "03-04 09:00 EST",
            "03-11 09:00 EDT",
            "03-18 09:00 EDT",
        ]

    def test_count_ends_the_rule(self):
        schedule = {"rrule": "DTSTART:20240101T000000\nFREQ=DAILY;COUNT=3", "timezone": "UTC"}
        assert len(_dates(schedule, _utc(2023, 1, 1), n=10)) == 3
        assert _dates(schedule, _utc(2025, 1, 1), n=10) == []

    def test_rulesets_with_exdates(self):
        text = "DTSTART:20240101T000000\nRRULE:FREQ=DAILY\nEXDATE:20240102T000000"
        dates = _dates({"rrule": text, "timezone": "UTC"}, _utc(2024, 1, 1), n=3)
        assert [d.day for d in dates] == [1, 3, 4]

    def test_high_frequency_rules_get_a_recent_anchor(self):
        now = _utc(2026, 5, 1, 12, 7, 30)
        text = normalize_rrule_string("FREQ=MINUTELY;INTERVAL=15", now=now)
        assert text.startswith("DTSTART:20260501T120000\n")
        assert normalize_rrule_string("FREQ=DAILY") == "DTSTART:20200101T000000\nFREQ=DAILY"
        assert normalize_rrule_string("DTSTART:20240101T000000\nFREQ=DAILY").count("DTSTART") == 1


def _repeated(instant: dt.datetime, tz: str) -> bool:
    """Is ``instant`` in a wall-clock hour that occurs twice in ``tz``?"""
    zone = ZoneInfo(tz)
    wall = instant.astimezone(zone).replace(tzinfo=None)
    return zone.utcoffset(wall.replace(fold=0)) > zone.utcoffset(wall.replace(fold=1))


def _agree(ours, theirs, tz) -> bool:
    """Equal, except where Prefect drops an instant of a repeated hour (it compares wall-clock
    times there); compared up to where both lists reach."""
    ours, theirs = _instants(ours), _instants(theirs)
    if ours == theirs:
        return True
    if not ours or not theirs:
        return False
    horizon = min(ours[-1], theirs[-1])
    ours = [d for d in ours if d <= horizon]
    theirs = [d for d in theirs if d <= horizon]
    extra = set(ours) - set(theirs)
    return set(theirs) <= set(ours) and all(_repeated(d, tz) for d in extra)


PREFECT_TZS = ["America/New_York", "Europe/London", "UTC", "Australia/Lord_Howe", "Asia/Kolkata"]


@pytest.mark.parametrize("seed", range(4))
def test_dates_agree_with_prefects_server(seed):
    """Prefect's own schedule classes are the oracle: random schedules and starts, many of them
    across DST changes. (For intervals Prefect compares wall-clock times inside a repeated hour and
    can drop an occurrence there; see the last test of this module.)"""
    from prefect.server.schemas.schedules import CronSchedule, IntervalSchedule, RRuleSchedule

    rng = random.Random(seed)
    for _ in range(50):
        tz = rng.choice(PREFECT_TZS)
        start = _utc(
            2024,
            rng.choice([1, 3, 4, 7, 10]),
            rng.randint(1, 28),
            rng.randint(0, 23),
            rng.choice([0, 17, 30]),
        )
        end = start + dt.timedelta(days=rng.choice([1, 5, 40, 100]))
        n = rng.choice([1, 3, 25, 100])
        interval = rng.choice([60, 900, 3600, 5400, 86400, 2 * 86400, 7 * 86400, 86400 + 3600])
        anchor = _utc(
            rng.choice([2019, 2024, 2025]), rng.randint(1, 12), rng.randint(1, 28), rng.randint(0, 23)
        )
        theirs = IntervalSchedule(interval=dt.timedelta(seconds=interval), anchor_date=anchor, timezone=tz)
        ours = {"interval": interval, "anchor_date": anchor.isoformat(), "timezone": tz}
        assert _agree(
            _dates(ours, start, n, end), theirs._get_dates_generator(n=n, start=start, end=end), tz
        ), ours
        cron = rng.choice(["0 9 * * *", "30 2 * * *", "*/15 * * * *", "0 * * * *", "0 0 1 * *", "0 9 13 * 5"])
        day_or = rng.choice([True, False])
        theirs = CronSchedule(cron=cron, timezone=tz, day_or=day_or)
        ours = {"cron": cron, "timezone": tz, "day_or": day_or}
        assert _instants(_dates(ours, start, n, end)) == _instants(
            theirs._get_dates_generator(n=n, start=start, end=end)
        ), ours
        rule = rng.choice(
            [
                "DTSTART:20200101T000000\nFREQ=DAILY;BYHOUR=2;BYMINUTE=30",
                "DTSTART:20240101T090000\nFREQ=WEEKLY;BYDAY=MO,WE",
                "DTSTART:20200101T000000\nFREQ=HOURLY;INTERVAL=5",
                "DTSTART:20200108T063000\nFREQ=WEEKLY;INTERVAL=2;BYDAY=MO,FR",
                "DTSTART:20200101T000000\nFREQ=DAILY;INTERVAL=3;BYHOUR=1,13",
                "DTSTART:20200131T120000\nFREQ=MONTHLY",
                "DTSTART:20240301T010000\nFREQ=DAILY;COUNT=40",
            ]
        )
        theirs = RRuleSchedule(rrule=rule, timezone=tz)
        ours = {"rrule": rule, "timezone": tz}
        assert _instants(_dates(ours, start, n, end)) == _instants(
            theirs._get_dates_generator(n=n, start=start, end=end)
        ), ours


def test_cron_agrees_with_prefect_at_every_minute_around_dst_changes():
    from prefect.server.schemas.schedules import CronSchedule

    for change in (_utc(2024, 3, 10, 7), _utc(2024, 11, 3, 6)):
        for minutes in range(-90, 150, 7):
            start = change + dt.timedelta(minutes=minutes)
            for cron in ("30 2 * * *", "0 2 * * *", "*/20 * * * *", "30 1 * * *", "59 1 * * *"):
                theirs = CronSchedule(cron=cron, timezone="America/New_York")
                ours = {"cron": cron, "timezone": "America/New_York", "day_or": True}
                assert _instants(_dates(ours, start, 6)) == _instants(
                    theirs._get_dates_generator(n=6, start=start)
                ), (cron, start)


def test_an_hourly_interval_never_skips_a_utc_hour_in_the_repeated_hour():
    """Where Prefect compares wall-clock times inside the repeated hour (and skips 06:00Z here),
    instants are compared: every UTC hour fires."""
    schedule = {"interval": 3600, "anchor_date": "2011-12-28T12:00:00Z", "timezone": "America/New_York"}
    dates = _dates(schedule, _utc(2024, 11, 3, 5, 1), n=3)
    assert [d.astimezone(UTC).hour for d in dates] == [6, 7, 8]


class TestValidation:
    adapter = TypeAdapter(ScheduleIn)

    def test_interval_defaults(self):
        parsed = self.adapter.validate_python({"interval": "PT1H"})
        stored = stored_schedule(parsed)
        assert stored["interval"] == 3600.0 and stored["timezone"] == "UTC"
        assert stored["anchor_date"].endswith("Z")
        naive = stored_schedule(
            self.adapter.validate_python({"interval": 60, "anchor_date": "2024-01-01T00:00:00"})
        )
        assert naive["anchor_date"] == "2024-01-01T00:00:00Z"

    def test_cron_timezone_may_be_null_and_rrule_defaults_to_utc(self):
        assert stored_schedule(self.adapter.validate_python({"cron": "* * * * *"}))["timezone"] is None
        rrule = stored_schedule(self.adapter.validate_python({"rrule": "FREQ=DAILY"}))
        assert rrule == {"rrule": "DTSTART:20200101T000000\nFREQ=DAILY", "timezone": "UTC"}

    @pytest.mark.parametrize(
        "value",
        [
            {"cron": "61 * * * *"},
            {"cron": "R * * * *"},
            {"cron": "* * * * *", "timezone": "Not/AZone"},
            {"interval": 0},
            {"interval": "soon"},
            {"rrule": "FREQ=DAILY;INTERVAL=often"},
            {"rrule": "X" * 6501},
            {"rrule": "FREQ=DAILY", "timezone": "localtime"},
            {"cron": "* * * * *", "rrule": "FREQ=DAILY"},
            {},
            "0 9 * * *",
        ],
    )
    def test_invalid(self, value):
        with pytest.raises(ValidationError):
            self.adapter.validate_python(value)

    def test_max_scheduled_runs(self):
        with pytest.raises(ValidationError):
            DeploymentScheduleCreate.model_validate(
                {"schedule": {"cron": "* * * * *"}, "max_scheduled_runs": 0}
            )
        assert (
            DeploymentScheduleCreate.model_validate(
                {"schedule": {"cron": "* * * * *"}, "max_scheduled_runs": 50}
            ).max_scheduled_runs
            == 50
        )
