"""`presage score` end to end on the model lakehouse: every table written and readable without Spark,
consent respected in each, the budget and its bounds honoured, a rerun that replaces its date,
honest backtests, and `presage serve` answering what the batch wrote for the same features."""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import polars as pl
import pytest
from deltalake import DeltaTable
from pyspark.sql import functions as F

from presage.features.catalog import ENTITY, TIMESTAMP
from tests.conftest import use_home

pytestmark = pytest.mark.slow



@pytest.fixture(scope="module")
def settings_s(model_lake: str, lake_home: str, model_settings):
    """The model lakehouse's settings with a budget that binds (every consented contact would cost
    about 36) and bounds on two channels."""
    channels = dict(model_settings.channels)
    channels["email"] = channels["email"].model_copy(update={"min_budget": 1.0})
    channels["sms"] = channels["sms"].model_copy(update={"max_budget": 5.0})
    scoring = model_settings.scoring.model_copy(update={"budget": model_settings.scoring.budget.model_copy(update={"total": 20.0})})
    with use_home(model_lake, lake_home):
        yield model_settings.model_copy(update={"channels": channels, "scoring": scoring})


@pytest.fixture(scope="module")
def scored(spark, scored_lake, settings_s):
    """One scoring run with the binding budget, on the champions of ``scored_lake``."""
    from presage.scoring.job import run

    return run(spark, settings_s)


def _table(settings, name: str) -> str:
    return f"{settings.root}/outputs/{name}"


def _read(spark, settings, name: str, day: dt.date):
    """One score date of an output table (a run near midnight UTC leaves two dates in the lakehouse:
    the scored_lake's and this module's)."""
    return spark.read.format("delta").load(_table(settings, name)).where(F.col("score_date") == F.lit(day))


def _attributes(spark, settings, snapshot: dt.datetime):
    return (spark.read.format("delta").load(f"{settings.root}/gold/customer_attributes")
            .where(F.col(TIMESTAMP) == F.lit(snapshot)))


def test_every_table_is_written_and_readable_without_spark(spark, scored, settings_s):
    from presage.scoring.job import TABLES

    assert set(scored.rows) == set(TABLES)
    for name in TABLES:
        path = _table(settings_s, name)
        arrow = DeltaTable(path).to_pyarrow_table(filters=[("score_date", "=", scored.score_date)])
        frame = pl.read_delta(path).filter(pl.col("score_date") == scored.score_date)
        assert arrow.num_rows == frame.height == scored.rows[name], name
        assert DeltaTable(path).metadata().partition_columns == ["score_date"]
    for name in ("lead_priority", "segments", "segment_members", "budget_allocation", "recommendations"):
        assert scored.rows[name] > 0, name

    persons = (spark.read.format("delta").load(f"{settings_s.root}/gold/customer_features")
               .where(F.col(TIMESTAMP) == F.lit(scored.feature_snapshot)).count())
    leads = pl.read_delta(_table(settings_s, "lead_priority")).filter(pl.col("score_date") == scored.score_date)
    assert leads.height == persons == leads[ENTITY].n_unique()
    assert sorted(leads["priority_rank"].to_list()) == list(range(1, persons + 1))
    top = leads.sort("priority_rank")
    assert top["purchase_propensity"].is_sorted(descending=True)
    hot = (leads["tier"] == "hot").sum() / persons
    assert 0.09 <= hot <= 0.2, hot
    assert set(leads["next_best_action"].unique()) <= {"do_not_contact", "retention_offer", "contact_now",
                                                       "upsell_cross_sell", "nurture"}
    # Reasons for the tiers a campaign contacts (leads.explain_tiers: hot and warm), null for the rest.
    explained = leads["tier"].is_in(["hot", "warm"])
    assert 0 < explained.sum() < persons
    assert leads.filter(explained)["reasons"].list.len().min() >= 1
    assert leads.filter(~explained)["reasons"].null_count() == persons - explained.sum()
    assert _read(spark, settings_s, "lead_priority", scored.score_date).select("model_versions").first()[0] == scored.models


def test_consent_is_respected_in_every_table(spark, scored, settings_s):
    from presage.scoring.leads import consent_column

    consent = _attributes(spark, settings_s, scored.feature_snapshot).select(
        ENTITY, *[F.coalesce(F.col(c), F.lit(0)).alias(c) for c in ("consent_marketing", "consent_email", "consent_sms", "consent_push")])
    refused = consent.where(F.col("consent_marketing") != 1).select(ENTITY)
    assert refused.count() > 0, "the generated data should hold persons without consent"

    leads = _read(spark, settings_s, "lead_priority", scored.score_date).join(consent, ENTITY)
    silent = leads.join(refused, ENTITY, "left_semi")
    assert silent.where((F.col("next_best_action") != "do_not_contact") | F.col("best_channel").isNotNull()).count() == 0
    for channel in settings_s.channels:
        wrong = leads.where((F.col("best_channel") == channel) & (F.col(consent_column(channel)) != 1)).count()
        assert wrong == 0, channel
    for name in ("segment_members", "recommendations"):
        assert _read(spark, settings_s, name, scored.score_date).join(refused, ENTITY, "left_semi").count() == 0, name

    allocation = _read(spark, settings_s, "budget_allocation", scored.score_date)
    eligible = {r["channel"]: r["eligible"] for r in allocation.groupBy("channel").agg(F.sum("eligible").alias("eligible")).collect()}
    members = _read(spark, settings_s, "segment_members", scored.score_date).select(ENTITY)
    for channel, count in eligible.items():
        allowed = consent.join(members, ENTITY, "left_semi").where(F.col(consent_column(channel)) == 1)
        if consent_column(channel) != "consent_marketing":
            allowed = allowed.where(F.col("consent_marketing") == 1)
        assert count == allowed.count(), channel


def test_budget_and_channel_bounds_are_honoured(spark, scored, settings_s):
    rows = _read(spark, settings_s, "budget_allocation", scored.score_date).toPandas()
    budget = settings_s.scoring.budget.total
    assert rows["budget"].sum() == pytest.approx(budget, rel=1e-9)
    spent = rows.groupby("channel")["budget"].sum()
    for channel, conf in settings_s.channels.items():
        assert spent.get(channel, 0.0) >= conf.min_budget - 1e-9
        if conf.max_budget is not None:
            assert spent.get(channel, 0.0) <= conf.max_budget + 1e-9
    assert (rows["expected_revenue"] >= 0).all() and (rows["budget"] >= 0).all()


def test_rerun_replaces_its_date(spark, scored, settings_s):
    from presage.scoring.job import TABLES, run

    before = _read(spark, settings_s, "lead_priority", scored.score_date).select(ENTITY, "purchase_propensity", "priority_rank", "tier").toPandas()
    again = run(spark, settings_s)
    assert again.score_date == scored.score_date and again.rows == scored.rows
    for name in TABLES:
        assert _read(spark, settings_s, name, scored.score_date).count() == scored.rows[name], name
    after = _read(spark, settings_s, "lead_priority", scored.score_date).select(ENTITY, "purchase_propensity", "priority_rank", "tier").toPandas()
    key = [ENTITY]
    assert before.sort_values(key).reset_index(drop=True).equals(after.sort_values(key).reset_index(drop=True))


def test_a_backtest_needs_models_trained_by_its_date(spark, scored, settings_s):
    from presage.scoring.job import run

    with pytest.raises(LookupError, match=r"presage train --model \w+ --as-of 2026-04-01"):
        run(spark, settings_s, dt.date(2026, 4, 1))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_online_score_equals_the_batch_score(spark, scored, settings_s, tmp_path):
    from presage.featurestore.materialize import materialize
    from presage.featurestore.store import open_store

    materialize(spark, open_store(settings_s), None, None)
    port = _free_port()
    env = {**os.environ, "PRESAGE_HOME": settings_s.root, "MLFLOW_DISABLE_TELEMETRY": "true"}
    with open(tmp_path / "serve.log", "w") as serve_log:  # the server keeps its own descriptor
        server = subprocess.Popen([sys.executable, "-m", "presage.cli", "serve", "--port", str(port)], env=env,
                                  stdout=subprocess.DEVNULL, stderr=serve_log, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            try:
                status, health = _get(f"{url}/health")
                break
            except OSError:
                assert server.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
                time.sleep(0.5)
        assert status == 200 and health["model_versions"] == scored.models

        leads = _read(spark, settings_s, "lead_priority", scored.score_date)
        sample = (leads.where(F.col("next_best_action") != "do_not_contact").orderBy("priority_rank").limit(3)
                  .unionByName(leads.where(F.col("next_best_action") == "do_not_contact").limit(2))
                  .unionByName(leads.where(F.col("tier") == "cold").limit(2)).toPandas())
        for row in sample.itertuples():
            status, online = _get(f"{url}/score/{row.customer_id}")
            assert status == 200, online
            for goal in ("purchase_propensity", "churn_risk", "expected_spend"):
                assert online[goal] == pytest.approx(getattr(row, goal), abs=1e-12), (row.customer_id, goal)
            for field in ("tier", "next_best_action", "best_channel", "best_send_hour", "best_send_weekday"):
                batch = getattr(row, field)
                assert online[field] == (None if batch is None or (isinstance(batch, float) and math.isnan(batch)) else batch), (row.customer_id, field)
            # serve explains anyone; batch only the tiers in leads.explain_tiers (hot and warm).
            if row.tier == "cold":
                assert row.reasons is None and online["reasons"], row.customer_id
            else:
                assert online["reasons"] == list(row.reasons), row.customer_id
        status, unknown = _get(f"{url}/score/nobody-{port}")
        assert status == 404 and "nobody" in unknown["detail"]
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)


def test_where_summarises_tables_models_and_rows(scored, settings_s):
    from presage.scoring.predict import GOALS
    from presage.summary import champions, delta_tables

    tables = {t.name: t for t in delta_tables(settings_s.root)}
    assert tables["outputs/lead_priority"].rows == pl.read_delta(_table(settings_s, "lead_priority")).height
    assert {"bronze/orders", "silver/identity_map", "gold/customer_features"} <= set(tables)
    assert not any(name.startswith("outputs/lead_priority/") for name in tables)  # partitions are not tables
    models = {m.goal: m for m in champions(settings_s, GOALS)}
    assert {goal: m.version for goal, m in models.items()} == {goal: str(v) for goal, v in scored.models.items()}
    assert set(models) == set(GOALS)
    assert "auc" in models["purchase_propensity"].metrics and "gini" in models["expected_spend"].metrics
