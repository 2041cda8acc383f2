"""Days of the generated window as Spark columns: timestamps, drops and seasonality."""

from __future__ import annotations

import calendar
import datetime as dt
import math

from pyspark.sql import Column
from pyspark.sql import functions as F

from presage.generate.params import GenParams

# Peak of the demand multiplier below, used to thin candidate orders (accept = mult / peak).
SEASON_PEAK = 2.8


def start_epoch(p: GenParams) -> int:
    return calendar.timegm(p.start_date.timetuple())


def timestamp(p: GenParams, day: Column, seconds: Column) -> Column:
    """UTC timestamp of ``seconds`` after midnight of window day ``day`` (day 0 = start date)."""
    return F.timestamp_seconds(F.lit(start_epoch(p)) + day.cast("long") * 86400 + seconds.cast("long"))


def season(p: GenParams, day: Column) -> Column:
    """Demand multiplier: Black Friday weeks, Christmas run-up, a January lull, busier weekends."""
    date = F.date_add(F.lit(p.start_date), day.cast("int"))
    doy = F.dayofyear(date).cast("double")
    weekend = F.dayofweek(date).isin(1, 7)
    bump = (
        1.0
        + 0.7 * F.exp(-F.pow((doy - 331.0) / 9.0, 2))
        + 0.6 * F.exp(-F.pow((doy - 352.0) / 7.0, 2))
        - 0.25 * F.exp(-F.pow((doy - 20.0) / 12.0, 2))
        + 0.1 * F.sin(2 * math.pi * doy / 365.0)
    )
    return bump * F.when(weekend, 1.2).otherwise(1.0)


def drop_of(p: GenParams, day: Column) -> Column:
    """Which drop a record of window day ``day`` is delivered in.

    History arrives as monthly drops (``2026-03``); the last ``daily_drops`` days as daily drops
    (``2026-10-30``), as a company backfills once and then sends a file a day.
    """
    date = F.date_add(F.lit(p.start_date), F.greatest(day, F.lit(0)).cast("int"))
    first_daily = p.end_date - dt.timedelta(days=p.daily_drops - 1)
    return F.when(date >= F.lit(first_daily), F.date_format(date, "yyyy-MM-dd")).otherwise(
        F.date_format(date, "yyyy-MM")
    )


def is_daily(drop: Column) -> Column:
    return F.length(drop) == 10
