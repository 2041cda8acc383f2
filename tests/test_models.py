"""Training end to end on a generated lakehouse with eight months of history: the model beats a
recency baseline, the champion alias only moves for a better challenger, a custom label table
trains from the command line against a real `mlflow server`, backtests read nothing after their
date, explanations name real features."""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient
from pyspark.sql import functions as F

from presage.config import Settings
from presage.features.catalog import ENTITY, TIMESTAMP
from tests.conftest import MODEL_HORIZON as HORIZON
from tests.conftest import use_home

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def settings_m(model_lake: str, lake_home: str, model_settings: Settings):
    """The model lakehouse's settings with registered names of this module's own (test_models_<goal>),
    so that the champion tests here start from no champion, whichever module trained on it before."""
    mlflow_settings = model_settings.mlflow.model_copy(update={"registered_prefix": "test_models_"})
    with use_home(model_lake, lake_home):
        yield model_settings.model_copy(update={"mlflow": mlflow_settings})


PURCHASE = "test_models_purchase_propensity"


@pytest.fixture(scope="module")
def first(spark, settings_m):
    from presage.models.train import train

    return train(spark, settings_m, "purchase_propensity")


def test_model_beats_recency_and_becomes_champion(first, settings_m):
    from presage.models import tracking

    assert first.metrics["auc"] > first.baseline["auc"] + 0.02, (first.metrics, first.baseline)
    assert first.metrics["lift_quality_pct"] > first.baseline["lift_quality_pct"]
    assert 0 < first.metrics["brier"] < 0.25 and first.trees >= 1
    assert first.promoted and str(tracking.champion(PURCHASE).version) == first.version
    run = mlflow.get_run(first.run_id)
    assert run.data.params["feature_service"] == "purchase_propensity"
    assert run.data.tags["presage.feature_service_version"] and run.inputs.dataset_inputs
    artifacts = {a.path for a in MlflowClient().list_artifacts(first.run_id)}
    assert {"gain_lift.png", "calibration.png", "feature_importance.png", "fairness.json", "explanations_top200.csv"} <= artifacts
    assert "gender" not in first.metrics and set(first.fairness) == {"gender", "age_years"}


def test_registered_model_scores_and_explains_with_real_features(spark, first, settings_m):
    from presage.models.explain import describe, reasons

    model = mlflow.pyfunc.load_model(f"models:/{PURCHASE}@champion")
    inner = model.unwrap_python_model()
    assert "gender" not in inner.spec.features and "age_years" not in inner.spec.features
    frame = spark.read.format("delta").load(f"{settings_m.root}/models/training_sets/purchase_propensity") \
        .where(F.col("_part") == "holdout").limit(50).toPandas()
    inputs = frame[list(inner.spec.features)]
    scores = model.predict(inputs)["score"].to_numpy()
    assert inputs["orders_total"].dtype == "int64"  # as Feast returns counts: accepted by the signature
    assert ((scores > 0) & (scores < 1)).all()
    explained = reasons(inner.booster, inner.spec, frame, top=3)
    assert len(explained) == 50 and all(1 <= len(r) <= 3 for r in explained)
    for row in explained:
        for reason in row:
            assert reason["feature"] in inner.spec.features
            assert reason["text"].startswith(describe(reason["feature"]) + ": ")


def test_worse_challenger_keeps_the_champion(spark, first, settings_m):
    from presage.models import tracking
    from presage.models.train import train

    weak = settings_m.model_copy(update={"models": settings_m.models.model_copy(update={"max_rounds": 1, "params": {"max_depth": 1}})})
    second = train(spark, weak, "purchase_propensity")
    assert second.metrics["auc"] < first.metrics["auc"]
    assert not second.promoted and second.decision.startswith("kept the champion")
    assert second.champion_metric == pytest.approx(first.metrics["auc"], abs=1e-9)
    assert str(tracking.champion(PURCHASE).version) == first.version
    assert mlflow.get_run(second.run_id).data.metrics["champion_auc"] == pytest.approx(first.metrics["auc"])


def test_backtest_reads_nothing_after_its_date(spark, first, settings_m):
    from presage.models import tracking
    from presage.models.train import train

    as_of = dt.datetime(2026, 7, 20, tzinfo=dt.UTC)  # about four months of history
    result = train(spark, settings_m, "purchase_propensity", as_of=as_of)
    rows = spark.read.format("delta").load(f"{settings_m.root}/models/training_sets/purchase_propensity")
    newest = rows.agg(F.max(TIMESTAMP)).first()[0].replace(tzinfo=dt.UTC)
    assert newest + dt.timedelta(days=HORIZON) <= as_of
    assert not result.promoted and str(tracking.champion(PURCHASE).version) == first.version
    assert mlflow.get_run(result.run_id).data.tags["presage.backtest"] == "true"


def test_spend_and_channel_response_train(spark, settings_m):
    from presage.models.train import train

    spend = train(spark, settings_m, "expected_spend")
    assert spend.metrics["spearman"] > 0 and spend.metrics["gini"] > 0 and spend.metrics["mae"] > 0
    response = train(spark, settings_m, "channel_response")
    assert response.metrics["auc"] > 0.5


@pytest.fixture()
def mlflow_server(tmp_path):
    """A real `mlflow server` on 127.0.0.1 (SQLite backend, served artifacts), stopped afterwards."""
    port = _free_port()
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    server = subprocess.Popen(
        [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{tmp_path}/server.db", "--artifacts-destination", str(tmp_path / "artifacts")],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(240):
        try:
            urllib.request.urlopen(f"{url}/health", timeout=2).read()
            break
        except OSError:
            assert server.poll() is None, "mlflow server exited"
            time.sleep(0.5)
    yield url
    os.killpg(server.pid, 15)
    server.wait(timeout=30)


def test_custom_goal_from_the_command_line_on_a_real_mlflow_server(spark, settings_m, tmp_path, mlflow_server):
    from presage.cli import main

    # "Bought in the top category within 8 weeks": a goal the built-in models do not have (~5-15 % positive).
    items = spark.read.format("delta").load(f"{settings_m.root}/silver/order_items")
    orders = spark.read.format("delta").load(f"{settings_m.root}/silver/orders")
    products = spark.read.format("delta").load(f"{settings_m.root}/silver/products")
    top = items.join(products, "product_id").groupBy("category").count().orderBy(F.desc("count")).first()["category"]
    bought = (items.join(products.where(F.col("category") == top), "product_id").join(orders.select("order_id", "order_ts"), "order_id")
              .select(F.col("person_id").alias(ENTITY), "order_ts"))
    grid = spark.read.format("delta").load(f"{settings_m.root}/gold/customer_features").select(ENTITY, TIMESTAMP) \
        .where(F.col(TIMESTAMP) <= F.lit(dt.datetime(2026, 9, 1)))
    window = (F.col("order_ts") >= F.col(TIMESTAMP)) & (F.col("order_ts") < F.col(TIMESTAMP) + F.expr("INTERVAL 56 DAYS"))
    labels = grid.join(bought, ENTITY, "left").groupBy(ENTITY, TIMESTAMP) \
        .agg(F.max(F.when(window, 1).otherwise(0)).alias("label"))
    rate = labels.agg(F.avg("label")).first()[0]
    assert 0.01 < rate < 0.3, rate
    labels.write.parquet(str(tmp_path / "labels.parquet"))
    config = tmp_path / "conf.yaml"
    config.write_text(json.dumps({"spark": {"profile": "test"}, "horizon_days": HORIZON,
                                  "models": settings_m.models.model_dump(), "mlflow": {"tracking_uri": mlflow_server}}))
    code = main(["train", "--model", "bought_top_category", "--labels", str(tmp_path / "labels.parquet"), "--config", str(config)])
    assert code == 0
    client = MlflowClient(tracking_uri=mlflow_server, registry_uri=mlflow_server)
    version = client.get_model_version_by_alias("presage_bought_top_category", "champion")
    run = client.get_run(version.run_id)
    assert run.data.metrics["auc"] > 0.5 and run.data.params["feature_service"] == "custom_goal"
    loaded = mlflow.pyfunc.load_model("models:/presage_bought_top_category@champion")
    assert loaded.unwrap_python_model().spec.kind == "custom"
