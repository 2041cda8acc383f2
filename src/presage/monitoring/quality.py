"""Data-quality history: one row per ingestion batch, from the Great Expectations results of
``presage ingest`` (``<home>/quality/validation_results``) and the quarantine.

An expectation's success rate is the share of the batch's rows that meet it (100 % minus GX's
unexpected percent). A batch is judged by its worst expectation, so that one badly broken column is
not averaged away by the healthy ones; an expectation GX could not evaluate (an exception) is an
alert. GX's own pass/fail per expectation is kept too (``expectations_met``), but without ``mostly``
in the suites a single bad row fails an expectation, so it is reported, not alerted on.
"""

from __future__ import annotations

import datetime as dt

from delta.tables import DeltaTable
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from presage.config import MonitorSettings
from presage.ingest.quality import RESULT_SCHEMA
from presage.lakehouse import Lakehouse

BATCH = "_batch_id"
INGESTED = "_ingested_at"

SCHEMA = T.StructType([
    T.StructField("source", T.StringType()),
    T.StructField("batch_id", T.StringType()),
    T.StructField("ingested_at", T.TimestampType()),
    T.StructField("expectations", T.LongType()),
    T.StructField("expectations_met", T.LongType()),
    T.StructField("rows_checked", T.LongType()),
    T.StructField("quarantined_rows", T.LongType()),
    T.StructField("min_success_rate", T.DoubleType()),
    T.StructField("worst_expectation", T.StringType()),
    T.StructField("failures", T.ArrayType(T.StringType())),
    T.StructField("exceptions", T.LongType()),
    T.StructField("status", T.StringType()),
])


def _delta(spark: SparkSession, path: str, schema: T.StructType) -> DataFrame:
    if DeltaTable.isDeltaTable(spark, path):
        return spark.read.format("delta").load(path)
    return spark.createDataFrame([], schema)


def _status(settings: MonitorSettings) -> Column:
    rate = F.col("min_success_rate")
    return (F.when((F.col("exceptions") > 0) | (rate < settings.expectation_success_alert), "alert")
            .when(rate < settings.expectation_success_warn, "warn").otherwise("ok"))


def batches(spark: SparkSession, lake: Lakehouse, start: dt.datetime, end: dt.datetime,
            settings: MonitorSettings) -> DataFrame:
    """The batches ingested in [start, end), one row each (SCHEMA), judged by ``settings``."""
    when = (F.col(INGESTED) >= F.lit(start)) & (F.col(INGESTED) < F.lit(end))
    stamped = T.StructType([*RESULT_SCHEMA.fields, T.StructField(BATCH, T.StringType()), T.StructField(INGESTED, T.TimestampType())])
    results = _delta(spark, lake.quality_results, stamped).where(when)
    rate = F.lit(1.0) - F.col("unexpected_percent") / 100.0
    name = F.concat(F.col("expectation"), F.when(F.col("column").isNotNull(), F.concat(F.lit("("), F.col("column"), F.lit(")")))
                    .otherwise(F.lit("")))
    failure = F.when(~F.col("success"), F.concat(name, F.lit(": "), F.coalesce(
        F.concat(F.format_number(F.col("unexpected_percent"), 3), F.lit(" % of rows unexpected")),
        F.concat(F.lit("not evaluated: "), F.coalesce(F.col("exception"), F.lit("no result"))))))
    summary = results.groupBy("source", BATCH).agg(
        F.max(INGESTED).alias("ingested_at"),
        F.count("*").alias("expectations"),
        F.sum(F.col("success").cast("long")).alias("expectations_met"),
        F.max("element_count").alias("rows_checked"),
        F.min(rate).alias("min_success_rate"),
        F.min_by(name, F.coalesce(rate, F.lit(2.0))).alias("worst_expectation"),
        F.sort_array(F.collect_list(failure)).alias("failures"),
        F.count("exception").alias("exceptions"),
    )
    quarantine = (_delta(spark, lake.quarantine, T.StructType([T.StructField("source", T.StringType()),
                                                             T.StructField(BATCH, T.StringType()),
                                                             T.StructField(INGESTED, T.TimestampType())]))
                  .where(when).groupBy("source", BATCH).agg(F.count("*").alias("quarantined_rows")))
    return (summary.join(quarantine, ["source", BATCH], "left")
            .withColumn("quarantined_rows", F.coalesce("quarantined_rows", F.lit(0)).cast("long"))
            .withColumn("status", _status(settings))
            .select(F.col("source"), F.col(BATCH).alias("batch_id"), *SCHEMA.fieldNames()[2:]))
