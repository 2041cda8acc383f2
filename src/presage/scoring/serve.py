"""``presage serve``: a person's current scores and next best action over HTTP.

Features come from the Feast online store (what ``presage materialize`` wrote), models are the
champions, and the tier thresholds are those of the latest batch run (score_thresholds), so the
answer equals the batch row for the same features. When ``presage stream`` has pushed the person's
activity since that snapshot, it is folded into the windowed features first
(:func:`presage.features.activity.fold_in`), so a cart added seconds ago moves the scores. The scoring kernel and the decision are the
functions batch scoring runs (:mod:`presage.scoring.predict`, :mod:`presage.scoring.leads`).

    GET /score/{customer_id}  -> scores, tier, next best action, channel, send time, reasons, versions
    GET /health               -> model versions and the threshold date in use
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pyarrow as pa
from deltalake import DeltaTable
from fastapi import FastAPI, HTTPException
from feast.errors import FeatureServiceNotFoundException

from presage.config import Settings
from presage.features.activity import ACTIVITY, fold_in
from presage.features.catalog import CHANNELS, ENTITY
from presage.featurestore.store import open_store
from presage.lakehouse import Lakehouse
from presage.scoring import champions
from presage.scoring.leads import Thresholds, decide
from presage.scoring.predict import CHURN, GOALS, PURCHASE, REASONS, SPEND, boosters, response_column, score_table

log = logging.getLogger(__name__)

REALTIME_SERVICE = "customer_realtime"
# A behaviour feature the activity adds to: its online timestamp is the snapshot the row came from.
SNAPSHOT_FEATURE = "product_views_7d"
TIMESTAMP_SUFFIX = "__ts"  # Feast's suffix of feature timestamps in online responses


def latest_thresholds(lake: Lakehouse) -> tuple[str, Thresholds]:
    """(score date, thresholds) of the newest batch run.

    Raises:
        LookupError: no batch scoring has run yet.
    """
    path = lake.output("score_thresholds")
    try:
        table = DeltaTable(path).to_pandas()
    except Exception as exc:  # deltalake raises its own TableNotFoundError; any unreadable table means the same here
        raise LookupError(f"no batch scores at {path}: run `presage score` first ({exc})") from exc
    if table.empty:
        raise LookupError(f"no batch scores at {path}: run `presage score` first")
    row = table.sort_values("score_date").iloc[-1]
    return str(row["score_date"]), Thresholds(hot=float(row["hot"]), warm=float(row["warm"]),
                                              order_value=float(row["order_value"]), send_hour=int(row["send_hour"]),
                                              send_weekday=int(row["send_weekday"]))


def _clean(value: Any) -> Any:
    """JSON-safe: NaN and missing as null, numpy scalars as Python numbers."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if hasattr(value, "item") else value


@dataclass
class OnlineScorer:
    """Everything one lookup needs, loaded once at start."""

    settings: Settings

    def __post_init__(self) -> None:
        self.store = open_store(self.settings)
        loaded = {goal: champions.load(self.settings, goal) for goal in GOALS}
        self.versions = {goal: m.version for goal, m in loaded.items()}
        self.models = boosters(loaded)
        self.service = self.store.get_feature_service(loaded[PURCHASE].spec.service)
        self.threshold_date, self.thresholds = latest_thresholds(Lakehouse.of(self.settings))
        self.channels = tuple(c for c in CHANNELS if c in self.settings.channels)
        try:
            self.realtime = self.store.get_feature_service(REALTIME_SERVICE)
        except FeatureServiceNotFoundException:
            log.warning("no feature service %s in the registry (run `feast apply`): scores use the snapshot only", REALTIME_SERVICE)
            self.realtime = None

    def features(self, customer_id: str) -> tuple[pd.DataFrame, pd.Series]:
        """The person's snapshot features and the snapshot's time in seconds since 1970."""
        frame = self.store.get_online_features(features=self.service, entity_rows=[{ENTITY: customer_id}]).to_df(
            include_event_timestamps=True)
        stamps = [c for c in frame.columns if c.endswith(TIMESTAMP_SUFFIX)]
        return frame.drop(columns=stamps), frame[SNAPSHOT_FEATURE + TIMESTAMP_SUFFIX]

    def activity(self, customer_id: str) -> pd.DataFrame | None:
        """The person's pushed real-time activity (None without the service or any push)."""
        if self.realtime is None:
            return None
        frame = self.store.get_online_features(features=self.realtime, entity_rows=[{ENTITY: customer_id}]).to_df()
        names = [f.name for f in ACTIVITY]
        return None if frame[names].isna().all(axis=None) else frame[names]

    def score(self, customer_id: str) -> dict[str, Any] | None:
        """The person's scores and decision; None when the online store has no feature for them."""
        frame, snapshot_epoch = self.features(customer_id)
        if frame.drop(columns=[ENTITY]).isna().all(axis=None):
            return None
        activity = self.activity(customer_id)
        if activity is not None:
            frame = fold_in(frame, activity, snapshot_epoch)
        scores = score_table(pa.Table.from_pandas(frame, preserve_index=False), self.models, self.channels,
                             self.settings.scoring.leads.reasons)
        scored = frame.assign(**scores)
        decided = decide(scored, self.thresholds, self.settings.channels, self.settings.scoring.leads).iloc[0]
        row = scored.iloc[0]
        return {
            ENTITY: customer_id,
            PURCHASE: _clean(row[PURCHASE]), CHURN: _clean(row[CHURN]), SPEND: _clean(row[SPEND]),
            "channel_responses": {c: _clean(row[response_column(c)]) for c in self.channels},
            **{k: _clean(v) for k, v in decided.items()},
            REASONS: list(row[REASONS]),
            "model_versions": self.versions,
            "thresholds_of": self.threshold_date,
            "activity": _fresh(activity),
        }


def _fresh(activity: pd.DataFrame | None) -> dict[str, Any] | None:
    """The pushed activity as JSON, minutes since the last activity and engagement counted to now."""
    if activity is None:
        return None
    row = {k: _clean(v) for k, v in activity.iloc[0].items()}
    now = dt.datetime.now(dt.UTC).timestamp()
    for minutes, epoch in (("minutes_since_last_activity", "last_activity_epoch"),
                           ("minutes_since_last_engagement", "last_engagement_epoch")):
        if row.get(epoch) is not None:
            row[minutes] = round((now - row[epoch]) / 60.0, 2)
    return row


def app(settings: Settings) -> FastAPI:
    scorer = OnlineScorer(settings)
    api = FastAPI(title="presage online scores")

    @api.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "model_versions": scorer.versions, "thresholds_of": scorer.threshold_date}

    @api.get("/score/{customer_id}")
    def score(customer_id: str) -> dict[str, Any]:
        result = scorer.score(customer_id)
        if result is None:
            raise HTTPException(status_code=404, detail=f"no online features for {customer_id}")
        return result

    return api
