"""Every model's score for a table of persons: one Arrow kernel, run by Spark tasks and by ``presage serve``.

Batch scoring maps this kernel over Spark's Arrow batches (``mapInArrow``, no pandas detour): each
task rebuilds the boosters once from raw bytes and predicts whole batches with ``inplace_predict``,
which is several times faster than ``xgboost.spark``'s ``transform`` (see bench/xgboost_scoring.py).
The online server calls the same kernel on one row, so an online score equals the batch score for
the same features.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace

import numpy as np
import pyarrow as pa
import xgboost as xgb
from pyspark.sql import DataFrame
from pyspark.sql import types as T

from presage.features.catalog import ENTITY
from presage.models.explain import reasons
from presage.models.labels import CHANNEL
from presage.models.pyfunc import predict
from presage.models.spec import ModelSpec, encode_arrow
from presage.scoring.champions import Champion

PURCHASE, CHURN, SPEND, RESPONSE = "purchase_propensity", "churn_risk", "expected_spend", "channel_response"
GOALS = (PURCHASE, CHURN, SPEND, RESPONSE)
REASONS = "reasons"


def response_column(channel: str) -> str:
    return f"response_{channel}"


def score_columns(goals: Iterable[str], channels: tuple[str, ...]) -> list[str]:
    """Output columns for these goals, in kernel order (channel_response gives one column per channel)."""
    present = set(goals)
    return ([g for g in (PURCHASE, CHURN, SPEND) if g in present]
            + ([response_column(c) for c in channels] if RESPONSE in present else []))


def score_table(table: pa.Table | pa.RecordBatch, models: Mapping[str, tuple[xgb.Booster, ModelSpec]],
                channels: tuple[str, ...], top_reasons: int) -> dict[str, np.ndarray | list[list[str]]]:
    """The score of each goal in ``models`` (goal -> (booster, spec)) for the rows of ``table``, by
    output column (``score_columns`` order): a response probability per channel for
    channel_response, and with ``top_reasons`` > 0 the purchase model's top reasons in words."""
    out: dict[str, np.ndarray | list[list[str]]] = {}
    for goal in (PURCHASE, CHURN, SPEND):
        if goal in models:
            booster, spec = models[goal]
            out[goal] = predict(booster, encode_arrow(table, spec))
    if RESPONSE in models and channels:
        booster, spec = models[RESPONSE]
        # Encode once; only the channel column changes from one channel to the next.
        position, channel_only = spec.features.index(CHANNEL), replace(spec, features=(CHANNEL,))
        with_channel = table.append_column(CHANNEL, pa.nulls(table.num_rows, pa.string())) \
            if CHANNEL not in table.schema.names else table
        matrix = encode_arrow(with_channel, spec)
        for channel in channels:
            matrix[:, position] = encode_arrow(pa.table({CHANNEL: [channel]}), channel_only)[0, 0]
            out[response_column(channel)] = predict(booster, matrix)
    if top_reasons:
        out[REASONS] = reason_texts(*models[PURCHASE], table, top_reasons)
    return out


def reason_texts(booster: xgb.Booster, spec: ModelSpec, table: pa.Table | pa.RecordBatch, top: int) -> list[list[str]]:
    """The model's ``top`` reasons in words for each row (exact Tree SHAP: most of scoring's cost)."""
    if not table.num_rows:
        return []
    explained = reasons(booster, spec, table.select(list(spec.features)).to_pandas(), top)
    return [[r["text"] for r in row] for row in explained]


def boosters(champions: Mapping[str, Champion], threads: int = 1) -> dict[str, tuple[xgb.Booster, ModelSpec]]:
    """goal -> (booster, spec), the form ``score_table`` takes."""
    return {goal: (c.booster(threads), c.spec) for goal, c in champions.items()}


def score_persons(rows: DataFrame, champions: Mapping[str, Champion], channels: tuple[str, ...],
                  keep: list[str]) -> DataFrame:
    """Spark: ``rows`` (customer_id and the models' features) -> customer_id, ``keep`` columns and
    the scores of ``champions``, without reasons (:func:`explain_persons` adds them where wanted).

    Each task scores with one thread (a Spark task owns one core); boosters travel as bytes inside
    the closure, not through the driver per row.
    """
    scores = score_columns(champions, channels)
    fields = [rows.schema[ENTITY], *(rows.schema[c] for c in keep)] + [T.StructField(c, T.DoubleType()) for c in scores]
    schema = T.StructType(fields)

    def kernel(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        models = boosters(champions)
        passed = [ENTITY, *keep]
        for batch in batches:
            scored = score_table(batch, models, channels, 0)
            arrays = [batch.column(c) for c in passed] + [pa.array(scored[c], pa.float64()) for c in scores]
            yield pa.RecordBatch.from_arrays(arrays, names=schema.names)

    return rows.mapInArrow(kernel, schema)


def explain_persons(rows: DataFrame, champion: Champion, top_reasons: int) -> DataFrame:
    """Spark: ``rows`` (customer_id and the champion's features) -> customer_id, reasons: the
    champion's ``top_reasons`` reasons in words, one thread per task as in :func:`score_persons`."""
    schema = T.StructType([rows.schema[ENTITY], T.StructField(REASONS, T.ArrayType(T.StringType()))])

    def kernel(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        booster = champion.booster()
        for batch in batches:
            texts = pa.array(reason_texts(booster, champion.spec, batch, top_reasons), pa.list_(pa.string()))
            yield pa.RecordBatch.from_arrays([batch.column(ENTITY), texts], names=schema.names)

    return rows.mapInArrow(kernel, schema)
