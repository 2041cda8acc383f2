"""``presage monitor``: drift, data quality and realised performance of one monitor date, and alerts.

- **drift**: PSI of every model feature between the gold snapshots of the model's training window
  and the newest snapshot, and of every score between the first lead_priority date its model
  version scored and the newest scored date (``reference.py`` says why).
- **quality**: the ingestion batches of the last ``monitoring.quality_days``, one row each.
- **performance**: realised metrics of the newest score date whose horizon has passed.
- **alerts**: every 'warn' or 'alert' of the three, one row each, with a sentence saying why.

Each is a Delta table under ``<home>/monitoring`` partitioned by ``monitor_date``; a rerun replaces
its date in all four (an empty result too), so reruns and crashed runs are repaired by running again.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from dataclasses import dataclass, field

from pyspark.sql import Column, DataFrame, Row, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from presage.config import Settings
from presage.features.catalog import CHANNELS, PARTITION
from presage.lakehouse import Lakehouse
from presage.monitoring import drift, performance, quality, reference
from presage.monitoring.reference import ModelRun, ScoredDate
from presage.scoring.predict import GOALS, RESPONSE, response_column

log = logging.getLogger(__name__)

MONITOR_DATE = "monitor_date"

DRIFT_SCHEMA = T.StructType([
    T.StructField("model", T.StringType()),
    T.StructField("model_version", T.StringType()),
    T.StructField("kind", T.StringType()),  # feature | score
    T.StructField("name", T.StringType()),
    T.StructField("psi", T.DoubleType()),
    T.StructField("status", T.StringType()),  # ok | warn | alert
    T.StructField("reference", T.StringType()),
    T.StructField("current", T.StringType()),
    T.StructField("reference_rows", T.LongType()),
    T.StructField("current_rows", T.LongType()),
    T.StructField("bins", T.ArrayType(T.StructType([
        T.StructField("bin", T.StringType()),
        T.StructField("reference_share", T.DoubleType()),
        T.StructField("current_share", T.DoubleType()),
    ]))),
])
ALERT_SCHEMA = T.StructType([
    T.StructField("severity", T.StringType()),  # warn | alert
    T.StructField("check", T.StringType()),  # feature_drift | score_drift | data_quality | performance
    T.StructField("model", T.StringType()),
    T.StructField("subject", T.StringType()),
    T.StructField("value", T.DoubleType()),
    T.StructField("threshold", T.DoubleType()),
    T.StructField("message", T.StringType()),
])


@dataclass(frozen=True)
class Alert:
    severity: str
    check: str
    model: str | None
    subject: str
    value: float | None
    threshold: float | None
    message: str


@dataclass
class MonitorResult:
    monitor_date: dt.date
    feature_snapshot: dt.datetime | None
    score_date: dt.date | None
    rows: dict[str, int] = field(default_factory=dict)
    alerts: list[Alert] = field(default_factory=list)


def _drift_rows(drifts: list[drift.Drift], model: str, version: str, kind: str, names: list[str], ref: str, cur: str,
                settings: Settings) -> tuple[list[tuple], list[Alert]]:
    config = settings.monitoring
    found = {d.column: d for d in drifts}
    rows, alerts = [], []
    for name in names:
        d = found[name]
        state = drift.status(d.psi, config.psi_warn, config.psi_alert)
        rows.append((model, version, kind, name, d.psi, state, ref, cur, d.reference_rows, d.current_rows, d.bins))
        if state != "ok":
            threshold = config.psi_alert if state == "alert" else config.psi_warn
            moved = max(d.bins, key=lambda b: abs(b[2] - b[1]))
            alerts.append(Alert(state, f"{kind}_drift", model, name, d.psi, threshold,
                                f"{kind} {name}: PSI {d.psi:.3f} >= {threshold} against {ref}; "
                                f"bin {moved[0]} holds {moved[2]:.1%} now vs {moved[1]:.1%}"))
    return rows, alerts


def _feature_drift(spark: SparkSession, settings: Settings, lake: Lakehouse,
                   models: dict[str, tuple[ModelRun, tuple[str, ...]]], cutoff: dt.datetime,
                   ) -> tuple[dt.datetime | None, list[tuple], list[Alert]]:
    """Each model's features: its training window's snapshots against the newest snapshot."""
    if not models:
        return None, [], []
    config = settings.monitoring
    gold = reference.gold(spark, lake)
    snapshot = reference.current_snapshot(spark, lake, cutoff)
    current = reference.snapshot_rows(gold, snapshot).persist()
    windows: dict[dt.datetime, list[str]] = defaultdict(list)
    for goal, (run, _) in models.items():
        windows[run.train_end].append(goal)
    rows: list[tuple] = []
    alerts: list[Alert] = []
    try:
        for goals in windows.values():
            features = {goal: [f for f in models[goal][1] if f in gold.columns] for goal in goals}
            columns = list(dict.fromkeys(f for goal in goals for f in features[goal]))
            first_run = models[goals[0]][0]
            window = F.col(PARTITION) <= F.lit(reference.last_training_snapshot(first_run))
            total = reference.behaviour(spark, lake).where(window).count()
            if total == 0:
                for goal in goals:
                    alerts.append(Alert("warn", "feature_drift", goal, "*", None, None,
                                        f"no gold snapshot of the training window of {goal} v{models[goal][0].version} "
                                        f"(before {first_run.train_end:%Y-%m-%d}) is left: feature drift not computed"))
                continue
            past = reference.sample_persons(gold.where(window), total, config.max_reference_rows) \
                .select(PARTITION, *columns).persist()
            try:
                span = past.agg(F.min(PARTITION), F.max(PARTITION)).first()
                drifts = drift.compare(past, current, columns, config.bins, config.max_categories)
                cur = f"gold snapshot {snapshot:%Y-%m-%d}"
                for goal in goals:
                    run = models[goal][0]
                    ref = f"gold snapshots {span[0]}..{span[1]} (training window of v{run.version})"
                    found, raised = _drift_rows(drifts, goal, run.version, "feature", features[goal], ref, cur, settings)
                    rows += found
                    alerts += raised
            finally:
                past.unpersist()
    finally:
        current.unpersist()
    return snapshot, rows, alerts


def _score_columns(goal: str, settings: Settings) -> dict[str, Column]:
    if goal == RESPONSE:
        return {response_column(c): F.col("channel_responses")[c] for c in CHANNELS if c in settings.channels}
    return {goal: F.col(goal)}


def _score_drift(spark: SparkSession, settings: Settings, lake: Lakehouse, dates: list[ScoredDate],
                 ) -> tuple[list[tuple], list[Alert]]:
    """Each score of the newest scored date against the first date its model version scored."""
    if not dates:
        return [], []
    config, newest = settings.monitoring, dates[-1]
    groups: dict[dt.date, list[str]] = defaultdict(list)
    for goal, version in newest.versions.items():
        if goal in GOALS:
            groups[reference.first_scored_by(dates, goal, version).score_date].append(goal)
    rows: list[tuple] = []
    alerts: list[Alert] = []
    for first, goals in sorted(groups.items()):
        columns = {name: expr for goal in goals for name, expr in _score_columns(goal, settings).items()}
        past, now = (reference.leads(spark, lake, day).select(*[expr.alias(name) for name, expr in columns.items()])
                     for day in (first, newest.score_date))
        drifts = drift.compare(past, now, list(columns), config.bins, config.max_categories)
        cur = f"lead_priority {newest.score_date}"
        for goal in goals:
            version = newest.versions[goal]
            ref = f"lead_priority {first} (first date scored by v{version})"
            found, raised = _drift_rows(drifts, goal, version, "score", list(_score_columns(goal, settings)), ref, cur, settings)
            rows += found
            alerts += raised
    return rows, alerts


def _quality_alerts(batches: list[Row], settings: Settings) -> list[Alert]:
    config = settings.monitoring
    alerts = []
    for r in (b for b in batches if b["status"] != "ok"):
        threshold = config.expectation_success_alert if r["status"] == "alert" else config.expectation_success_warn
        if r["exceptions"]:
            why = f"{r['exceptions']} expectation(s) could not be evaluated: {'; '.join(r['failures'])}"
        else:
            why = (f"{r['worst_expectation']} met by {r['min_success_rate']:.2%} of {r['rows_checked']:,d} rows "
                   f"(< {threshold:.0%}); {r['quarantined_rows']:,d} rows quarantined")
        alerts.append(Alert(r["status"], "data_quality", None, f"{r['source']} {r['batch_id']}", r["min_success_rate"],
                            threshold, f"batch {r['batch_id']} ingested {r['ingested_at']:%Y-%m-%d %H:%M}: {why}"))
    return alerts


def _performance_alerts(rows: list[tuple], settings: Settings) -> list[Alert]:
    config = settings.monitoring
    alerts = []
    for model, version, score_date, _, window_end, metric, value, holdout, state, persons in rows:
        if state in ("warn", "alert"):
            drop = config.metric_drop_alert if state == "alert" else config.metric_drop_warn
            alerts.append(Alert(state, "performance", model, metric, value, holdout - drop,
                                f"{model} v{version} scored {score_date}: realised {metric} {value:.4f} vs {holdout:.4f} "
                                f"on the training holdout (more than {drop} lower), {persons:,d} persons labelled "
                                f"up to {window_end:%Y-%m-%d}"))
    return alerts


def _write(df: DataFrame, path: str, monitor_date: dt.date) -> None:
    (df.write.format("delta").mode("overwrite").partitionBy(MONITOR_DATE)
     .option("replaceWhere", f"{MONITOR_DATE} = DATE'{monitor_date.isoformat()}'").save(path))


def _dated(spark: SparkSession, rows: list[tuple], schema: T.StructType, monitor_date: dt.date) -> DataFrame:
    return spark.createDataFrame(rows, schema).select(F.lit(monitor_date).alias(MONITOR_DATE), "*")


def run(spark: SparkSession, settings: Settings, as_of: dt.date | None = None) -> MonitorResult:
    """Monitor today (or ``as_of``, a date in the past, with the models and data known then) and
    write the four tables for the monitor date.

    Raises:
        FileNotFoundError: gold (or silver, for realised performance) is missing while a model exists.
    """
    lake = Lakehouse.of(settings)
    now = dt.datetime.now(dt.UTC)
    cutoff = dt.datetime.combine(as_of, dt.time.min, tzinfo=dt.UTC) if as_of else now
    monitor_date = as_of or now.date()
    models = reference.deployed(settings, cutoff if as_of else None)
    dates = reference.scored_dates(spark, lake, monitor_date)
    log.info("monitoring %s: models %s, %d scored dates", monitor_date,
             {goal: run.version for goal, (run, _) in models.items()}, len(dates))

    snapshot, feature_rows, alerts = _feature_drift(spark, settings, lake, models, cutoff)
    score_rows, score_alerts = _score_drift(spark, settings, lake, dates)
    start = cutoff - dt.timedelta(days=settings.monitoring.quality_days)
    batches = quality.batches(spark, lake, start, cutoff, settings.monitoring).collect()  # a row per batch: small
    performance_rows = performance.rows(performance.realised(spark, settings, lake, dates, cutoff), settings.monitoring)

    result = MonitorResult(monitor_date, snapshot, dates[-1].score_date if dates else None)
    result.alerts = [*alerts, *score_alerts, *_quality_alerts(batches, settings),
                     *_performance_alerts(performance_rows, settings)]
    alert_rows = [(a.severity, a.check, a.model, a.subject, a.value, a.threshold, a.message) for a in result.alerts]
    for table, rows, schema in (("drift", feature_rows + score_rows, DRIFT_SCHEMA), ("quality", batches, quality.SCHEMA),
                                ("performance", performance_rows, performance.SCHEMA), ("alerts", alert_rows, ALERT_SCHEMA)):
        _write(_dated(spark, rows, schema, monitor_date), lake.monitoring(table), monitor_date)
        result.rows[table] = len(rows)
    return result
