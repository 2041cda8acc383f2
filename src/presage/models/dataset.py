"""From labels to the model's training and holdout rows, split by time.

Holdout = the latest labelled snapshots (or, for custom labels spread over time, the latest 20 %
of their time span). Training rows must have their whole label window before the holdout starts,
so that nothing the holdout measures was visible when training (a backtest's honesty); when the
history is too short for that gap the split keeps time order without it, and the run says so.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from feast import FeatureStore
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from presage.features.catalog import ENTITY, TIMESTAMP
from presage.featurestore.training import training_set
from presage.models.goals import Goal
from presage.models.labels import CHANNEL

log = logging.getLogger(__name__)

PART = "_part"
EARLY_STOP = "_early_stop"
MANY_INSTANTS = 400  # more distinct label times than this: custom labels, split by time quantile
EARLY_STOP_SHARE = 15  # percent of training persons whose rows drive early stopping


@dataclass(frozen=True)
class Split:
    holdout_start: dt.datetime
    train_end: dt.datetime  # training rows are before this
    gap: bool  # True: training label windows end before the holdout starts
    train_instants: int
    holdout_instants: int


def plan_split(labels: DataFrame, horizon_days: int | None, holdout_snapshots: int) -> Split:
    """Where the holdout starts and where training stops.

    Raises:
        ValueError: fewer than two distinct label times (nothing to validate on).
    """
    instants = [r[0] for r in labels.select(TIMESTAMP).distinct().orderBy(TIMESTAMP).collect()]
    if len(instants) < 2:
        raise ValueError(
            f"labels cover {len(instants)} point(s) in time; a time-based validation needs at least two "
            "labelled snapshots (a longer history, or a shorter horizon_days)"
        )
    if len(instants) > MANY_INSTANTS:
        first, last = instants[0], instants[-1]
        start = first + (last - first) * 0.8
    else:
        start = instants[-min(holdout_snapshots, max(1, len(instants) // 2))]
    train_end, gap = start, False
    if horizon_days is not None:
        gapped = start - dt.timedelta(days=horizon_days)
        if any(t <= gapped for t in instants):
            train_end, gap = gapped + dt.timedelta(microseconds=1), True
        else:
            log.warning("history too short for a gap of %d days between training labels and the holdout", horizon_days)
    return Split(start, train_end, gap, sum(t < train_end for t in instants), sum(t >= start for t in instants))


def _hash_bucket(column: str, modulo: int) -> F.Column:
    return F.pmod(F.xxhash64(F.col(column)), F.lit(modulo))


def assemble(
    store: FeatureStore, goal: Goal, labels: DataFrame, split: Split, max_training_rows: int
) -> DataFrame:
    """Labels with their point-in-time features from Feast, tagged ``_part`` train/holdout and, for
    training rows, ``_early_stop`` (a fixed share of persons, never both sides of it)."""
    train = labels.where(F.col(TIMESTAMP) < F.lit(split.train_end))
    rows = train.count()
    if rows > max_training_rows:
        keep = int(10_000 * max_training_rows / rows)
        train = train.where(_hash_bucket(ENTITY, 10_000) < keep)  # whole persons, same sample every run
    tagged = train.withColumn(PART, F.lit("train")).unionByName(
        labels.where(F.col(TIMESTAMP) >= F.lit(split.holdout_start)).withColumn(PART, F.lit("holdout"))
    )
    tagged = tagged.withColumn(EARLY_STOP, (F.col(PART) == "train") & (_hash_bucket(ENTITY, 100) < EARLY_STOP_SHARE))
    return training_set(store, tagged, goal.service)


def service_features(store: FeatureStore, service: str) -> list[str]:
    """Feature names of a Feast feature service, in its order."""
    return [f.name for projection in store.get_feature_service(service).feature_view_projections
            for f in projection.features]


def model_features(store: FeatureStore, goal: Goal, sensitive: list[str], rows: DataFrame) -> list[str]:
    """The service's features minus sensitive attributes (plus the channel a response row is about)."""
    available = set(rows.columns)
    features = [f for f in service_features(store, goal.service) if f not in sensitive and f in available]
    if goal.kind == "channel_response":
        features.append(CHANNEL)
    return features
