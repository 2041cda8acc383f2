"""Every model's score for a frame of persons: one pandas kernel, run by Spark tasks and by ``presage serve``.

Batch scoring maps this kernel over Arrow batches (``mapInPandas``): each task rebuilds the boosters
once from raw bytes and predicts whole batches with ``inplace_predict``, which is several times
faster than ``xgboost.spark``'s ``transform`` (see bench/xgboost_scoring.py). The online server
calls the same kernel on one row, so an online score equals the batch score for the same features.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace

import pandas as pd
import xgboost as xgb
from pyspark.sql import DataFrame
from pyspark.sql import types as T

from presage.features.catalog import ENTITY
from presage.models.explain import reasons
from presage.models.labels import CHANNEL
from presage.models.pyfunc import predict, score
from presage.models.spec import ModelSpec, encode_pandas
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


def score_frame(frame: pd.DataFrame, models: Mapping[str, tuple[xgb.Booster, ModelSpec]], channels: tuple[str, ...],
                top_reasons: int) -> pd.DataFrame:
    """The score of each goal in ``models`` (goal -> (booster, spec)) for the rows of ``frame`` (same
    index): a response probability per channel for channel_response, and with ``top_reasons`` > 0
    the purchase model's top reasons in words."""
    out = pd.DataFrame(index=frame.index)
    for goal in (PURCHASE, CHURN, SPEND):
        if goal in models:
            booster, spec = models[goal]
            out[goal] = score(booster, spec, frame)
    if RESPONSE in models and channels:
        booster, spec = models[RESPONSE]
        # Encode once; only the channel column changes from one channel to the next.
        matrix = encode_pandas(frame.assign(**{CHANNEL: channels[0]}), spec)
        position, channel_only = spec.features.index(CHANNEL), replace(spec, features=(CHANNEL,))
        for channel in channels:
            matrix[:, position] = encode_pandas(pd.DataFrame({CHANNEL: [channel]}), channel_only)[0, 0]
            out[response_column(channel)] = predict(booster, matrix)
    if top_reasons:
        booster, spec = models[PURCHASE]
        explained = reasons(booster, spec, frame, top_reasons) if len(frame) else []
        out[REASONS] = [[r["text"] for r in row] for row in explained]
    return out


def boosters(champions: Mapping[str, Champion], threads: int = 1) -> dict[str, tuple[xgb.Booster, ModelSpec]]:
    """goal -> (booster, spec), the form ``score_frame`` takes."""
    return {goal: (c.booster(threads), c.spec) for goal, c in champions.items()}


def score_persons(rows: DataFrame, champions: Mapping[str, Champion], channels: tuple[str, ...],
                  top_reasons: int, keep: list[str]) -> DataFrame:
    """Spark: ``rows`` (customer_id and the models' features) -> customer_id, ``keep`` columns, the
    scores of ``champions`` and (``top_reasons`` > 0) the purchase model's reasons.

    Each task scores with one thread (a Spark task owns one core); boosters travel as bytes inside
    the closure, not through the driver per row.
    """
    scores = score_columns(champions, channels)
    fields = [rows.schema[ENTITY], *(rows.schema[c] for c in keep)] + [T.StructField(c, T.DoubleType()) for c in scores]
    if top_reasons:
        fields.append(T.StructField(REASONS, T.ArrayType(T.StringType())))
    schema = T.StructType(fields)

    def kernel(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        models = boosters(champions)
        passed = [ENTITY, *keep]
        for batch in batches:
            yield pd.concat([batch[passed], score_frame(batch, models, channels, top_reasons)], axis=1)

    return rows.mapInPandas(kernel, schema)
