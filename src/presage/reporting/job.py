"""``presage report``: the charts of one score date as one self-contained HTML page.

Written to ``<home>/reports/presage_<score_date>.html`` (or ``--output``) through the Hadoop
FileSystem of the session, like every other lakehouse file, so a report lands next to its tables on
s3a:// or abfss:// too. A rerun for the same date replaces the page.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from pyspark.sql import SparkSession

from presage.config import Settings
from presage.lakehouse import Lakehouse
from presage.reporting import charts, page
from presage.reporting.data import ReportData, gather

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReportResult:
    data: ReportData  # what the page drew
    path: str
    charts: list[str]  # the keys of the charts drawn, in page order
    notes: list[str]  # what the page could not draw, and why


def _write(spark: SparkSession, path: str, text: str) -> None:
    jvm = spark.sparkContext._jvm
    target = jvm.org.apache.hadoop.fs.Path(path)
    fs = target.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    fs.mkdirs(target.getParent())
    stream = fs.create(target, True)
    try:
        stream.write(text.encode("utf-8"))
    finally:
        stream.close()


def run(spark: SparkSession, settings: Settings, as_of: dt.date | None = None, output: str | None = None) -> ReportResult:
    """Draw the report of ``as_of`` (default: the newest score date) and write it.

    Raises:
        FileNotFoundError: nothing scored yet.
        LookupError: nothing scored on ``as_of``.
    """
    lake = Lakehouse.of(settings)
    data = gather(spark, settings, lake, as_of)
    drawn = charts.build(data)
    html = page.render(data, drawn, dt.datetime.now(dt.UTC))
    path = output or lake.report(data.score_date.isoformat())
    _write(spark, path, html)
    notes = [e.note for e in data.models if not e.curves]
    if data.drift is None:
        notes.append(f"no drift measured on or before {data.score_date}: run `presage monitor`")
    log.info("report of %s: %d charts -> %s", data.score_date, len(drawn.all()), path)
    return ReportResult(data, path, [c.key for c in drawn.all()], notes)
