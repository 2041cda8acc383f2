"""`presage monitor`: PSI equal to a numpy computation on known distributions (and 0 for identical
data); on a copy of the scored model lakehouse, an unshifted run raises no alert and exits 0 with
--fail-on-alert, while a planted feature shift, score shift and bad batch raise alert rows and exit 3;
one quality row per ingestion batch; realised performance of a backtest date whose horizon passed,
equal to labels and metrics computed here from silver orders."""

from __future__ import annotations

import datetime as dt
import math
import shutil

import mlflow
import numpy as np
import pandas as pd
import pytest
from deltalake import DeltaTable
from pyspark.sql import Window
from pyspark.sql import functions as F
from sklearn.metrics import roc_auc_score

from presage.features.catalog import ENTITY, PARTITION, TIMESTAMP
from presage.monitoring import drift
from tests.conftest import MODEL_HORIZON, use_home

UTC = dt.UTC


def _numpy_psi(expected: np.ndarray, actual: np.ndarray) -> float:
    e = np.maximum(expected / expected.sum(), drift.EPSILON)
    a = np.maximum(actual / actual.sum(), drift.EPSILON)
    return float(np.sum((a - e) * np.log(a / e)))


def test_psi_formula():
    assert drift.psi([50, 50], [25, 75]) == pytest.approx(-0.25 * math.log(0.5) + 0.25 * math.log(1.5))
    assert drift.psi([1, 0], [1, 0]) == 0.0
    with pytest.raises(ValueError, match="bins"):
        drift.psi([1, 2], [1, 2, 3])
    assert [drift.status(v, 0.1, 0.25) for v in (0.0999, 0.1, 0.2499, 0.25)] == ["ok", "warn", "warn", "alert"]


def test_psi_equals_numpy_on_known_distributions(spark):
    rng = np.random.default_rng(5)
    # Discrete: the reference's deciles fall inside its values' masses (cumulative 15/35/65/85 %), so
    # each value is one bin; the current adds missing values and a value above every cut.
    ref_counts = {0: 150, 1: 200, 2: 300, 3: 200, 4: 150}
    cur_counts = {0: 100, 1: 100, 2: 300, 3: 300, 4: 50, 7: 100, None: 50}
    discrete_ref = [v for v, n in ref_counts.items() for _ in range(n)]
    discrete_cur = [v for v, n in cur_counts.items() for _ in range(n)]
    # Text with max_categories 2: a and b are bins, c (reference) and d (current only) share "other".
    text_ref = ["a"] * 500 + ["b"] * 300 + ["c"] * 200
    text_cur = ["a"] * 200 + ["b"] * 300 + ["d"] * 400 + [None] * 100
    normal_ref, normal_cur = rng.normal(0, 1, 1000), rng.normal(0.4, 1.3, 1000)
    reference = spark.createDataFrame(list(zip(discrete_ref, text_ref, normal_ref.tolist())), "n long, t string, x double")
    current = spark.createDataFrame(list(zip(discrete_cur, text_cur, normal_cur.tolist())), "n long, t string, x double")

    found = {d.column: d for d in drift.compare(reference, current, ["n", "t", "x"], bins=10, max_categories=2)}

    # missing, <= 0, (0, 1], (1, 2], (2, 3], (3, 4], > 4
    expected = np.array([0, 150, 200, 300, 200, 150, 0], float)
    actual = np.array([50, 100, 100, 300, 300, 50, 100], float)
    assert [b[0] for b in found["n"].bins] == ["missing", "<= 0", "(0, 1]", "(1, 2]", "(2, 3]", "(3, 4]", "> 4"]
    assert found["n"].psi == pytest.approx(_numpy_psi(expected, actual), rel=1e-12)
    assert found["t"].psi == pytest.approx(_numpy_psi(np.array([0, 500, 300, 200.]), np.array([100, 200, 300, 400.])), rel=1e-12)
    assert [b[0] for b in found["t"].bins] == ["missing", "a", "b", "other"]
    # Continuous: numpy's own deciles of the reference; approxQuantile may differ by 0.1 % of rank.
    edges = np.quantile(normal_ref, np.arange(1, 10) / 10)
    histogram = lambda values: np.bincount(np.searchsorted(edges, values, side="left"), minlength=10).astype(float)
    assert found["x"].psi == pytest.approx(_numpy_psi(histogram(normal_ref), histogram(normal_cur)), abs=0.01)
    assert found["x"].psi > 0.1 and found["x"].reference_rows == 1000 and found["x"].current_rows == 1000

    same = drift.compare(reference, reference, ["n", "t", "x"], bins=10, max_categories=2)
    assert [d.psi for d in same] == [0.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="0 current rows"):
        drift.compare(reference, current.limit(0), ["n"], bins=10, max_categories=2)


# ---- end to end on a copy of the scored model lakehouse --------------------------------------------


def _copy(model_lake: str, destination) -> str:
    home = str(destination / "lake")
    shutil.copytree(model_lake, home, ignore=shutil.ignore_patterns("raw", "truth", "models"))
    return home


def _delta(spark, path: str):
    return spark.read.format("delta").load(path)


def _replace(frame, path: str, column: str, value) -> None:
    (frame.write.format("delta").mode("overwrite").option("replaceWhere", f"{column} = DATE'{value.isoformat()}'").save(path))


@pytest.fixture(scope="module")
def copy(spark, scored_lake, model_lake: str, lake_home: str, model_settings, tmp_path_factory) -> str:
    """A copy of the scored model lakehouse whose newest gold snapshot is replaced by the training
    window of the champions (each row under its own key), so that features do not drift at all."""
    from presage.lakehouse import Lakehouse
    from presage.monitoring import reference

    home = _copy(model_lake, tmp_path_factory.mktemp("monitor"))
    with use_home(home, lake_home):
        models = reference.deployed(model_settings, None)
        assert len({run.train_end for run, _ in models.values()}) == 1, "the champions share one training window"
        train_end = next(iter(models.values()))[0].train_end
        newest = reference.current_snapshot(spark, Lakehouse.of(model_settings), dt.datetime.now(UTC))
        for table in ("customer_features", "customer_attributes"):
            path = f"{home}/gold/{table}"
            past = _delta(spark, path).where(F.col(TIMESTAMP) < F.lit(train_end))
            restamped = past.withColumn(ENTITY, F.concat_ws("@", ENTITY, F.col(PARTITION).cast("string"))) \
                .withColumn(TIMESTAMP, F.lit(newest)).withColumn(PARTITION, F.lit(newest.date()))
            _replace(restamped, path, PARTITION, newest.date())
    return home


@pytest.fixture(scope="module")
def unshifted(copy: str, lake_home: str) -> int:
    """The exit code of `presage monitor --fail-on-alert` on the unshifted copy."""
    from presage.cli import main

    with use_home(copy, lake_home):
        return main(["monitor", "--fail-on-alert"])


def _partition(home: str, table: str, day: dt.date) -> pd.DataFrame:
    frame = DeltaTable(f"{home}/monitoring/{table}").to_pandas()
    return frame[pd.to_datetime(frame["monitor_date"]) == pd.Timestamp(day)].reset_index(drop=True)


@pytest.mark.slow
def test_an_unshifted_run_does_not_alert(copy, unshifted):
    today = dt.datetime.now(UTC).date()
    assert unshifted == 0
    drifted = _partition(copy, "drift", today)
    features = drifted[drifted["kind"] == "feature"]
    assert set(features["model"]) == {"purchase_propensity", "churn_risk", "expected_spend", "channel_response"}
    assert len(features) > 200 and (features["psi"].abs() < 1e-12).all() and (features["status"] == "ok").all()
    scores = drifted[drifted["kind"] == "score"]
    assert {"purchase_propensity", "churn_risk", "expected_spend", "response_email"} <= set(scores["name"])
    assert (scores["psi"] == 0).all()  # only one scored date: the reference is itself
    assert not (_partition(copy, "alerts", today)["severity"] == "alert").any()


@pytest.mark.slow
def test_quality_history_has_one_row_per_batch(copy, unshifted):
    today = dt.datetime.now(UTC).date()
    history = _partition(copy, "quality", today).set_index("batch_id")
    results = DeltaTable(f"{copy}/quality/validation_results").to_pandas()
    quarantine = DeltaTable(f"{copy}/bronze/_quarantine").to_pandas(columns=["_batch_id"])
    per_batch = results.groupby("_batch_id").agg(expectations=("success", "size"), met=("success", "sum"),
                                                 rows=("element_count", "max"), worst=("unexpected_percent", "max"))
    assert sorted(history.index) == sorted(per_batch.index) and len(history) >= 8
    for batch, row in per_batch.iterrows():
        got = history.loc[batch]
        assert (got["expectations"], got["expectations_met"], got["rows_checked"]) == (row["expectations"], row["met"], row["rows"])
        assert got["min_success_rate"] == pytest.approx(1 - row["worst"] / 100)
        assert got["quarantined_rows"] == (quarantine["_batch_id"] == batch).sum()
        assert len(got["failures"]) == row["expectations"] - row["met"]


@pytest.mark.slow
def test_planted_shifts_alert_and_fail_the_run(spark, copy, unshifted, lake_home, capsys):
    from presage.cli import main
    from presage.ingest.quality import RESULT_SCHEMA

    today = dt.datetime.now(UTC).date()
    gold = f"{copy}/gold/customer_features"
    newest = _delta(spark, gold).agg(F.max(PARTITION)).first()[0]
    shifted = _delta(spark, gold).where(F.col(PARTITION) == newest).withColumn("web_sessions_30d", F.col("web_sessions_30d") + 5)
    _replace(shifted.localCheckpoint(), gold, PARTITION, newest)
    leads = f"{copy}/outputs/lead_priority"
    scored_on = _delta(spark, leads).agg(F.max("score_date")).first()[0]  # scored_lake's run: today
    scored = _delta(spark, leads).where(F.col("score_date") == scored_on).localCheckpoint()
    week_before = scored_on - dt.timedelta(days=7)  # becomes the first date this version scored: the reference
    _replace(scored.withColumn("score_date", F.lit(week_before)), leads, "score_date", week_before)
    _replace(scored.withColumn("purchase_propensity", F.sqrt("purchase_propensity")), leads, "score_date", scored_on)
    bad = spark.createDataFrame([
        ("orders", "bronze_orders", "expect_column_values_to_not_be_null", "order_id", True, 800, 0, 0.0, None),
        ("orders", "bronze_orders", "expect_column_values_to_be_in_set", "status", False, 800, 100, 12.5, None),
    ], RESULT_SCHEMA).select("*", F.lit("orders-999999").alias("_batch_id"), F.current_timestamp().alias("_ingested_at"))
    bad.write.format("delta").mode("append").save(f"{copy}/quality/validation_results")
    capsys.readouterr()

    with use_home(copy, lake_home):
        assert main(["monitor", "--fail-on-alert"]) == 3
    printed = capsys.readouterr().out
    alerts = _partition(copy, "alerts", today)
    raised = alerts[alerts["severity"] == "alert"]
    assert set(zip(raised["check"], raised["subject"])) == {
        ("feature_drift", "web_sessions_30d"), ("score_drift", "purchase_propensity"), ("data_quality", "orders orders-999999")}
    assert set(raised.loc[raised["check"] == "score_drift", "model"]) == {"purchase_propensity"}
    assert "ALERT feature_drift [purchase_propensity, churn_risk, expected_spend, channel_response] feature web_sessions_30d: PSI" in printed
    assert "expect_column_values_to_be_in_set(status) met by 87.50% of 800 rows" in printed
    drifted = _partition(copy, "drift", today)
    assert not drifted.duplicated(["model", "kind", "name"]).any()  # the rerun replaced its date
    moved = drifted[(drifted["name"] == "web_sessions_30d") & (drifted["model"] == "purchase_propensity")].iloc[0]
    assert moved["psi"] >= 0.25 and moved["status"] == "alert" and "training window" in moved["reference"]


# ---- realised performance -------------------------------------------------------------------------


BACKTEST_SNAPSHOT = dt.datetime(2026, 8, 3, tzinfo=UTC)  # + 56 days = 2026-09-28, inside the data
BACKTEST_DATE = dt.date(2026, 8, 4)


def _backtest_leads(spark, settings, home: str) -> None:
    """lead_priority rows of BACKTEST_DATE: the champions' scores of the BACKTEST_SNAPSHOT persons,
    ranked and tiered as `presage score` does, in today's rows' shape."""
    from presage.lakehouse import Lakehouse
    from presage.monitoring import reference
    from presage.scoring import champions
    from presage.scoring.predict import CHURN, PURCHASE, SPEND, score_persons

    models = {goal: champions.load(settings, goal) for goal in (PURCHASE, CHURN, SPEND)}
    rows = reference.snapshot_rows(reference.gold(spark, Lakehouse.of(settings)), BACKTEST_SNAPSHOT)
    scores = score_persons(rows, models, (), [])
    leads = f"{home}/outputs/lead_priority"
    template = _delta(spark, leads)
    newest = template.agg(F.max("score_date")).first()[0]
    joined = template.where(F.col("score_date") == newest).drop(PURCHASE, CHURN, SPEND, "priority_rank", "tier").join(scores, ENTITY)
    n = joined.count()
    ranked = joined.withColumn("priority_rank", F.row_number().over(Window.orderBy(F.desc(PURCHASE), F.asc(ENTITY))))
    tiered = ranked.withColumn("tier", F.when(F.col("priority_rank") <= math.ceil(0.1 * n), "hot").otherwise("cold")) \
        .withColumn("score_date", F.lit(BACKTEST_DATE)).withColumn("feature_snapshot", F.lit(BACKTEST_SNAPSHOT))
    _replace(tiered.select(*template.columns).localCheckpoint(), leads, "score_date", BACKTEST_DATE)


@pytest.mark.slow
def test_realised_performance_of_a_backtest_date(spark, scored_lake, model_lake: str, lake_home: str, model_settings,
                                                 tmp_path):
    from presage.lakehouse import Lakehouse
    from presage.models import tracking
    from presage.monitoring import performance, reference

    home = _copy(model_lake, tmp_path)
    today = dt.datetime.now(UTC)
    with use_home(home, lake_home):
        _backtest_leads(spark, model_settings, home)
        lake = Lakehouse.of(model_settings)
        dates = reference.scored_dates(spark, lake, today.date())
        realised = performance.realised(spark, model_settings, lake, dates, today)
        champion = tracking.champion(tracking.registered_name(model_settings, "purchase_propensity"))
        holdout_auc = mlflow.get_run(champion.run_id).data.metrics["auc"]
    rows = performance.rows(realised, model_settings.monitoring)
    table = spark.createDataFrame(rows, performance.SCHEMA).toPandas()  # the rows fit the table's schema

    end = BACKTEST_SNAPSHOT + dt.timedelta(days=MODEL_HORIZON)
    leads = DeltaTable(f"{home}/outputs/lead_priority").to_pandas()
    leads = leads[pd.to_datetime(leads["score_date"]) == pd.Timestamp(BACKTEST_DATE)]
    orders = DeltaTable(f"{home}/silver/orders").to_pandas(columns=["person_id", "order_ts", "status", "total_amount"])
    placed = pd.to_datetime(orders["order_ts"], utc=True)
    orders = orders[(placed >= BACKTEST_SNAPSHOT) & (placed < end) & (orders["status"] != "cancelled")]
    bought = leads[ENTITY].isin(set(orders["person_id"])).to_numpy(int)
    revenue = orders[orders["status"] == "completed"].groupby("person_id")["total_amount"].sum()
    spent = leads[ENTITY].map(revenue).fillna(0.0).to_numpy()
    hot = (leads["tier"] == "hot").to_numpy()

    assert set(table["model"]) == {"purchase_propensity", "churn_risk", "expected_spend"}
    assert (pd.to_datetime(table["score_date"]) == pd.Timestamp(BACKTEST_DATE)).all()
    assert (pd.to_datetime(table["label_window_end"], utc=True) == pd.Timestamp(end)).all()
    value = {(r.model, r.metric): r.value for r in table.itertuples()}
    purchase = table[table["model"] == "purchase_propensity"].set_index("metric")
    assert (purchase["rows"] == len(leads)).all() and value[("purchase_propensity", "base_rate")] == pytest.approx(bought.mean())
    assert value[("purchase_propensity", "auc")] == pytest.approx(roc_auc_score(bought, leads["purchase_propensity"]), abs=1e-12)
    assert value[("purchase_propensity", "auc")] > 0.6  # out of sample: the champion's training labels end before 2026-08-03
    assert value[("purchase_propensity", "hot_tier_precision")] == pytest.approx(bought[hot].mean())
    assert value[("purchase_propensity", "hot_tier_lift")] == pytest.approx(bought[hot].mean() / bought.mean())
    assert value[("expected_spend", "total_spend_error")] == pytest.approx((leads["expected_spend"].sum() - spent.sum()) / spent.sum())
    assert value[("expected_spend", "mae")] == pytest.approx(np.abs(leads["expected_spend"].to_numpy() - spent).mean())
    assert 0 < table.loc[table["model"] == "churn_risk", "rows"].iloc[0] < len(leads)  # active customers only
    # Judged on the primary metric only, against the holdout AUC the training run logged.
    assert purchase.loc["auc", "holdout"] == pytest.approx(holdout_auc)
    drop = holdout_auc - value[("purchase_propensity", "auc")]
    expected = "alert" if drop > 0.05 else "warn" if drop > 0.02 else "ok"
    assert purchase.loc["auc", "status"] == expected and purchase.drop(index="auc")["status"].isna().all()
