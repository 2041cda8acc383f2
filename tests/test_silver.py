"""Silver layer: SCD2 history on a hand-made person, then incremental runs against a full rebuild."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import MapType, StringType, StructField, StructType, TimestampType

from presage.config import Settings
from presage.profiles.profile import as_of, history, history_attributes, statements
from presage.schemas import ATTRIBUTES_COLUMN, bronze_fields

LINEAGE_FIELDS = [StructField("_source_file", StringType()), StructField("_batch_id", StringType()), StructField("_ingested_at", TimestampType())]


def _ts(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def _crm(spark, *rows: dict) -> DataFrame:
    schema = StructType([*bronze_fields("customers"), StructField(ATTRIBUTES_COLUMN, MapType(StringType(), StringType())), *LINEAGE_FIELDS])
    full = [{**{f.name: None for f in schema.fields}, "_batch_id": "b1", "_ingested_at": _ts("2025-07-01"), **row} for row in rows]
    return spark.createDataFrame([tuple(r[f.name] for f in schema.fields) for r in full], schema)


def _unsubscribe(spark, person: str, at: str, channel: str) -> DataFrame:
    return spark.createDataFrame(
        [(f"E-{at}", _ts(at), "unsubscribe", channel, person)],
        "event_id string, event_ts timestamp, event_type string, channel string, person_id string",
    )


def test_history_answers_attributes_as_of_a_date(spark) -> None:
    yes = {"consent_marketing": True, "consent_email": True, "consent_sms": True}
    crm = _crm(
        spark,
        {"customer_id": "C1", "updated_at": _ts("2025-01-01"), "city": "Paris", "gender": "F", ATTRIBUTES_COLUMN: {"tier": "gold"}, **yes},
        {"customer_id": "C1", "updated_at": _ts("2025-03-01"), "city": "Lyon", "gender": "F", ATTRIBUTES_COLUMN: {"tier": "gold"}, **yes},
        # A resend of the same version in a later batch, and a version that changes nothing.
        {"customer_id": "C1", "updated_at": _ts("2025-03-01"), "city": "Lyon", "gender": "F", ATTRIBUTES_COLUMN: {"tier": "gold"}, **yes,
         "_batch_id": "b2", "_ingested_at": _ts("2025-07-02")},
        {"customer_id": "C1", "updated_at": _ts("2025-03-15"), "city": "Lyon", "gender": "F", ATTRIBUTES_COLUMN: {"tier": "gold"}, **yes},
        # The same person's second CRM record, updated later: its statements win from then on.
        {"customer_id": "C2", "updated_at": _ts("2025-05-01"), "city": "Nice", ATTRIBUTES_COLUMN: {"tier": "silver"}},
        {"customer_id": "C9", "updated_at": _ts("2025-01-01"), "city": "Oslo"},
    )
    persons = spark.createDataFrame(
        [("customer_id:C1", "customer_id", "C1", "P1"), ("customer_id:C2", "customer_id", "C2", "P1"), ("customer_id:C9", "customer_id", "C9", "P9")],
        "identifier string, kind string, value string, person_id string",
    )
    said = statements(crm, _unsubscribe(spark, "P1", "2025-04-01", "email"), persons)
    table = history(said, history_attributes(crm)).cache()

    p1 = table.where("person_id = 'P1'").orderBy("valid_from").collect()
    assert [(r["valid_from"], r["valid_to"]) for r in p1] == [
        (_ts("2025-01-01"), _ts("2025-03-01")),
        (_ts("2025-03-01"), _ts("2025-04-01")),
        (_ts("2025-04-01"), _ts("2025-05-01")),
        (_ts("2025-05-01"), None),
    ]
    assert [r["is_current"] for r in p1] == [False, False, False, True]

    def on(day: str) -> dict:
        rows = as_of(table, F.lit(_ts(day))).collect()
        return {r["person_id"]: r for r in rows}

    assert on("2024-12-31") == {}
    assert on("2025-02-15")["P1"]["city"] == "Paris"
    march = on("2025-03-31")["P1"]
    assert (march["city"], march["consent_email"], march["consent_sms"]) == ("Lyon", True, True)
    april = on("2025-04-01")["P1"]
    assert (april["city"], april["consent_email"], april["consent_sms"]) == ("Lyon", False, True)
    now = on("2026-01-01")["P1"]
    # Recency across records; the gender C2 never stated stays from C1; consent withdrawn stays withdrawn.
    assert (now["city"], now["gender"], now[ATTRIBUTES_COLUMN], now["consent_email"]) == ("Nice", "F", {"tier": "silver"}, False)
    oslo = on("2026-01-01")["P9"]
    # Opt-in: a person who never stated consent has none.
    assert (oslo["city"], oslo["consent_marketing"], oslo["consent_email"]) == ("Oslo", False, False)


def _canonical(df: DataFrame, identity_map: DataFrame) -> DataFrame:
    """``df`` with person ids replaced by their smallest identifier, and maps made comparable."""
    out = df
    if "person_id" in df.columns:
        names = identity_map.where(F.col("person_id").isNotNull()).groupBy("person_id").agg(F.min("identifier").alias("_person"))
        out = df.join(names, "person_id", "left").withColumn("person_id", F.col("_person")).drop("_person")
    for field in out.schema.fields:
        if isinstance(field.dataType, MapType):
            out = out.withColumn(field.name, F.array_sort(F.map_entries(field.name)))
    return out


SILVER_TABLES = ["identity_map", "orders", "order_items", "web_events", "campaign_events", "social_events", "reviews",
                 "products", "customer_profile", "customer_profile_history"]


@pytest.mark.slow
def test_incremental_runs_equal_a_full_rebuild_and_a_rerun_adds_nothing(
    spark, settings: Settings, generated, lake_home: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from presage.ingest.job import run as ingest
    from presage.lakehouse import Lakehouse
    from presage.profiles.job import build_silver

    monkeypatch.setenv(settings.privacy.key_env, "one-key-for-both-lakehouses")
    incremental, rebuilt = tmp_path / "incremental", tmp_path / "rebuilt"
    shutil.copytree(Path(lake_home) / "raw", incremental / "raw")
    monkeypatch.setenv("PRESAGE_HOME", str(incremental))
    # First wave: the CRM, orders and clickstream; the second brings campaigns, social and the rest,
    # whose identifiers link more devices and emails to persons (facts must be re-keyed).
    ingest(spark, settings, ["customers", "orders", "web_events"])
    first = build_silver(spark, settings, Lakehouse(str(incremental)))
    assert first.full
    ingest(spark, settings, None)
    second = build_silver(spark, settings, Lakehouse(str(incremental)))
    assert not second.full and second.written["campaign_events"] > 0

    shutil.copytree(incremental / "bronze", rebuilt / "bronze")
    monkeypatch.setenv("PRESAGE_HOME", str(rebuilt))
    full = build_silver(spark, settings, Lakehouse(str(rebuilt)))
    assert full.full

    a_map = spark.read.format("delta").load(str(incremental / "silver" / "identity_map"))
    b_map = spark.read.format("delta").load(str(rebuilt / "silver" / "identity_map"))
    for table in SILVER_TABLES:
        a = _canonical(spark.read.format("delta").load(str(incremental / "silver" / table)), a_map)
        b = _canonical(spark.read.format("delta").load(str(rebuilt / "silver" / table)), b_map)
        assert a.count() == b.count() > 0, table
        assert a.exceptAll(b).count() == 0 and b.exceptAll(a).count() == 0, table

    monkeypatch.setenv("PRESAGE_HOME", str(incremental))
    again = build_silver(spark, settings, Lakehouse(str(incremental)))
    assert again.identity.changed == 0 and again.persons_in_scope == 0
    assert all(rows == 0 for rows in again.written.values()), again.written

    silver = incremental / "silver"
    profile = spark.read.format("delta").load(str(silver / "customer_profile"))
    assert profile.count() == profile.select("person_id").distinct().count() == again.identity.persons
    # Consent: an email unsubscribe later than every CRM statement of the person withdraws email consent.
    crm = spark.read.format("delta").load(str(incremental / "bronze" / "customers"))
    last_crm = crm.join(a_map.where("kind = 'customer_id'").select(F.col("value").alias("customer_id"), "person_id"), "customer_id")
    last_crm = last_crm.groupBy("person_id").agg(F.max("updated_at").alias("last_crm"))
    unsub = spark.read.format("delta").load(str(silver / "campaign_events")).where("event_type = 'unsubscribe' AND channel = 'email'")
    unsub = unsub.groupBy("person_id").agg(F.max("event_ts").alias("last_unsub"))
    withdrawn = unsub.join(last_crm, "person_id", "left").where("last_crm IS NULL OR last_unsub > last_crm").select("person_id")
    assert withdrawn.count() > 0
    assert profile.join(withdrawn, "person_id").where("consent_email").count() == 0
