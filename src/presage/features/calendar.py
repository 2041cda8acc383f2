"""Which as-of dates get a feature snapshot.

A snapshot at date ``d`` is stamped ``event_timestamp = d 00:00 UTC`` and reads only data strictly
before that instant, so "as of 2026-11-01" means "everything through 31 October". Grid dates are
calendar-anchored (every day, or every Monday), so new data adds dates and never shifts old ones.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column
from pyspark.sql import functions as F

from presage.config import FeatureSettings


def grid(earliest: dt.datetime, latest: dt.datetime, settings: FeatureSettings) -> list[dt.date]:
    """Snapshot dates for data spanning [earliest, latest]: oldest first.

    The newest date is the day after the newest data (the last day counts as complete); the oldest
    leaves ``min_history_days`` of data behind it and is within ``lookback_days`` of the newest.
    """
    newest = latest.date() + dt.timedelta(days=1)
    oldest = max(earliest.date() + dt.timedelta(days=settings.min_history_days), newest - dt.timedelta(days=settings.lookback_days))
    if settings.frequency == "weekly":
        newest -= dt.timedelta(days=newest.weekday())
        oldest += dt.timedelta(days=(7 - oldest.weekday()) % 7)
    step = dt.timedelta(days=1 if settings.frequency == "daily" else 7)
    dates = []
    day = oldest
    while day <= newest:
        dates.append(day)
        day += step
    return dates


def parse_date(value: str) -> dt.date:
    """A YYYY-MM-DD command-line date, with an error that says what was expected."""
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"expected a date as YYYY-MM-DD, got {value!r}") from exc


def during(column: str, start: dt.datetime, end: dt.datetime) -> Column:
    """``column`` in [start, end): the window convention of every as-of read (the end is excluded)."""
    return (F.col(column) >= F.lit(start)) & (F.col(column) < F.lit(end))
