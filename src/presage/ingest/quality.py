"""Batch validation with Great Expectations: the suite files run on each batch through GX itself.

GX computes its metrics with Spark on the executors (no collect of the batch), and the summary per
expectation (element count, unexpected count, success) is kept in the quality table, next to the
quarantine that the same suite fills row by row.
"""

from __future__ import annotations

import logging
import os
from functools import cache
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import BooleanType, DoubleType, LongType, StringType, StructField, StructType

from presage.ingest.expectations import load_suite
from presage.schemas import load_schema

log = logging.getLogger(__name__)

RESULT_SCHEMA = StructType(
    [
        StructField("source", StringType(), False),
        StructField("suite", StringType(), False),
        StructField("expectation", StringType(), False),
        StructField("column", StringType(), True),
        StructField("success", BooleanType(), True),
        StructField("element_count", LongType(), True),
        StructField("unexpected_count", LongType(), True),
        StructField("unexpected_percent", DoubleType(), True),
        StructField("exception", StringType(), True),
    ]
)


@cache
def _batch_definition():
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    asset = context.data_sources.add_spark(name="presage_raw").add_dataframe_asset(name="batch")
    return asset.add_batch_definition_whole_dataframe("whole_batch")


def validation_results(checked: DataFrame, source: str, parameters: dict[str, Any]) -> DataFrame:
    """Validate the parsed rows of a batch with the source's suite; one result row per expectation.

    Malformed records are left out: they have no values to check and are quarantined as such.
    """
    from great_expectations.core import ExpectationSuite

    spark = checked.sparkSession
    suite_doc = load_suite(source)
    suite = ExpectationSuite(**{k: v for k, v in suite_doc.items() if k in ("name", "expectations", "meta")})
    columns = load_schema(source).fieldNames()
    parsed = checked.where(~F.col("_malformed")).select(*columns)
    batch = _batch_definition().get_batch(batch_parameters={"dataframe": parsed})
    result = batch.validate(suite, expectation_parameters=parameters)
    rows = []
    for item in result.results:
        info = item.result or {}
        raised = (item.exception_info or {}).get("exception_message") if item.exception_info else None
        rows.append(
            (
                source,
                suite.name,
                item.expectation_config.type,
                item.expectation_config.kwargs.get("column"),
                bool(item.success),
                info.get("element_count"),
                info.get("unexpected_count"),
                float(info["unexpected_percent"]) if info.get("unexpected_percent") is not None else None,
                raised,
            )
        )
    if not result.success:
        failed = [f"{r[2]}({r[3]}): {r[6]}" for r in rows if not r[4]]
        log.warning("%s: %d expectation(s) failed on this batch: %s", source, len(failed), "; ".join(failed))
    return spark.createDataFrame(rows, RESULT_SCHEMA)
