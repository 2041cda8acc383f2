"""Real time: events dropped in the landing folder reach bronze (exactly once), the quarantine, the
activity features (Delta and the Feast online store) and the online score within seconds; the
stream's activity equals the batch computation over the same events; a stream killed mid-batch and
restarted keeps every event exactly once.

Runs on a copy of the model lakehouse (champions and thresholds from ``scored_lake``), whose
generated history ends today, so the persons have real recent activity besides the events streamed here."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pandas as pd
import pytest
import yaml
from pyspark.sql import functions as F

from presage.features.activity import NAMES, TABLE, activity_events, activity_features
from presage.features.catalog import ENTITY, PARTITION, TIMESTAMP
from presage.featurestore.store import open_store
from presage.lakehouse import Lakehouse
from presage.profiles.facts import attach_person, identifier_nodes
from presage.streaming import STREAMED
from presage.streaming.batch import (
    EVENTS_SCHEMA,
    LOOKUP_LIMIT,
    identities_of,
    newest_snapshot,
    resolver,
    rows_for,
)
from tests.conftest import use_home

pytestmark = pytest.mark.slow

ARRIVAL_TIMEOUT = 120  # seconds: a guard against a stuck stream; bench/stream_latency.py measures latency


@pytest.fixture(scope="module")
def settings_st(scored_lake, model_lake: str, lake_home: str, model_settings, tmp_path_factory):
    """A copy of the scored model lakehouse, PRESAGE_HOME pointing at it: the stream appends to
    bronze, which would leave silver behind for the modules sharing the original."""
    copy = tmp_path_factory.mktemp("streaming") / "lake"
    shutil.copytree(model_lake, copy, ignore=shutil.ignore_patterns("raw", "truth", "models"))
    with use_home(str(copy), lake_home):
        yield model_settings


@pytest.fixture(scope="module")
def persons(spark, settings_st) -> list[tuple[str, str]]:
    """(person_id, CRM customer_id) of six persons of the newest online snapshot with nothing in
    their cart, after materializing it (so the online store holds that snapshot)."""
    from presage.featurestore.materialize import materialize

    materialize(spark, open_store(settings_st), None, None)
    lake = Lakehouse.of(settings_st)
    snapshot = newest_snapshot(spark, lake)
    gold = (spark.read.format("delta").load(lake.gold("customer_features"))
            .where((F.col(PARTITION) == F.lit(snapshot.date())) & (F.col("open_cart") == 0)))
    ids = (spark.read.format("delta").load(lake.silver("identity_map"))
           .where((F.col("kind") == "customer_id") & F.col("person_id").isNotNull() & ~F.col("is_shared"))
           .groupBy("person_id").agg(F.min("value").alias("crm_id")))
    rows = gold.join(ids, gold[ENTITY] == ids["person_id"]).orderBy(F.desc("days_since_last_visit"), "person_id").limit(6).collect()
    assert len(rows) == 6
    return [(r["person_id"], r["crm_id"]) for r in rows]


def _web(customer: str, event_type: str, at: dt.datetime, event_id: str | None = None) -> dict:
    return {"event_id": event_id or f"stream-{uuid.uuid4().hex}", "event_ts": at.isoformat(), "event_type": event_type,
            "session_id": f"s-{customer}", "customer_id": customer, "platform": "web", "page_url": "/p/1", "product_id": "P0001"}


def _campaign(customer: str, event_type: str, channel: str, at: dt.datetime) -> dict:
    return {"event_id": f"stream-{uuid.uuid4().hex}", "event_ts": at.isoformat(), "event_type": event_type,
            "channel": channel, "campaign_id": "C-stream", "customer_id": customer}


def drop(lake: Lakehouse, source: str, lines: list[dict | str]) -> str:
    """Land a JSON-lines file the way producers must: written under another name, then renamed."""
    folder = Path(lake.landing(source))
    folder.mkdir(parents=True, exist_ok=True)
    name = folder / f"{uuid.uuid4().hex}.jsonl"
    temporary = name.with_suffix(".jsonl.tmp")
    temporary.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    os.rename(temporary, name)
    return str(name)


def online_activity(settings, person: str) -> dict:
    store = open_store(settings)
    return store.get_online_features(features=store.get_feature_service("customer_realtime"),
                                     entity_rows=[{ENTITY: person}]).to_dict()


def wait_for(check, timeout: float = ARRIVAL_TIMEOUT) -> float:
    """Seconds until ``check()`` is true; fails after ``timeout``."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < timeout, "the stream did not deliver in time"
        time.sleep(0.2)
    return time.monotonic() - started


@pytest.fixture(scope="module")
def streamed(spark, persons, settings_st):
    """The stream running in this session (1 s trigger) while two files arrive one after the other,
    the second with a resent event; returns what the tests check."""
    from presage.scoring.serve import OnlineScorer
    from presage.streaming.job import start

    lake = Lakehouse.of(settings_st)
    person, crm = persons[0]
    scorer = OnlineScorer(settings_st)
    before = scorer.score(person)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0, tzinfo=None)
    first = [_web(crm, "product_view", now - dt.timedelta(seconds=50 - i)) for i in range(3)]
    first += [_web(crm, "add_to_cart", now - dt.timedelta(seconds=20)), _web(crm, "add_to_cart", now - dt.timedelta(seconds=10)),
              _web(crm, "search", now - dt.timedelta(seconds=5))]
    others = [_web(c, "product_view", now - dt.timedelta(minutes=30 + i)) for i, (_, c) in enumerate(persons[1:])]
    bad = ['{"event_id": "stream-broken", "event_ts": ', {**_web(crm, "page_view", now), "event_ts": "yesterday-ish"}]
    click = _campaign(crm, "click", "email", now - dt.timedelta(seconds=3))
    query = start(spark, settings_st)
    try:
        t0 = time.monotonic()
        drop(lake, "web_events", first + others + bad)
        drop(lake, "campaign_events", [click])
        drop(lake, "unknown_feed", [{"event_id": "x"}])
        first_latency = wait_for(lambda: online_activity(settings_st, person)["carts_1h"] == [2])
        resent = first[0]
        later = _web(crm, "add_to_cart", dt.datetime.now(dt.UTC).replace(microsecond=0, tzinfo=None))
        t1 = time.monotonic()
        drop(lake, "web_events", [later, resent])
        second_latency = wait_for(lambda: online_activity(settings_st, person)["carts_1h"] == [3])
        after = scorer.score(person)
        query.processAllAvailable()  # the batch's appends come after its push: let them finish
        assert query.exception() is None
    finally:
        query.stop()
    print(f"event to online feature: {first_latency:.1f} s (first file, {t0:.0f}), {second_latency:.1f} s (second, {t1:.0f})")
    return {"person": person, "before": before, "after": after, "first": first, "others": others, "later": later,
            "resent": resent, "click": click}


def test_events_reach_bronze_once_and_rejects_the_quarantine(spark, streamed, settings_st):
    lake = Lakehouse.of(settings_st)
    ours = [e["event_id"] for e in streamed["first"] + streamed["others"] + [streamed["later"]]]
    counts = {r["event_id"]: r["n"] for r in spark.read.format("delta").load(lake.bronze("web_events"))
              .where(F.col("event_id").isin(ours)).groupBy("event_id").agg(F.count("*").alias("n")).collect()}
    resent = streamed["resent"]["event_id"]
    # Every event once per delivery: the resent one was delivered twice (silver keeps one, as for batch drops).
    assert counts == {e: (2 if e == resent else 1) for e in ours}
    clicks = spark.read.format("delta").load(lake.bronze("campaign_events")).where(F.col("event_id") == streamed["click"]["event_id"])
    assert clicks.count() == 1
    quarantine = spark.read.format("delta").load(lake.quarantine).where(F.col("_batch_id").startswith("stream-"))
    reasons = {(r["source"], r["reason"]) for r in quarantine.collect()}
    assert reasons == {("web_events", "malformed_record"), ("web_events", "type_mismatch"), ("unknown_feed", "unknown_source")}


def test_fresh_activity_is_in_the_online_store(spark, streamed, settings_st):
    online = online_activity(settings_st, streamed["person"])
    snapshot = newest_snapshot(spark, Lakehouse.of(settings_st)).replace(tzinfo=dt.UTC)
    assert online["views_1h"] == [3]  # the resent view counts once
    assert online["searches_1h"] == [1] and online["carts_24h"] == [3] and online["new_carts"] == [3]
    assert online["last_engagement_channel"] == ["email"] and online["last_engagement_type"] == ["click"]
    assert online["snapshot_epoch"] == [int(snapshot.timestamp())]
    assert 0 <= online["minutes_since_last_activity"][0] < 5


def test_a_cart_added_seconds_ago_moves_the_online_score(streamed):
    before, after = streamed["before"], streamed["after"]
    assert before["activity"] is None or before["activity"]["carts_1h"] == 0
    assert after["activity"]["carts_1h"] == 3 and after["activity"]["new_product_views"] >= 2
    assert after["purchase_propensity"] != before["purchase_propensity"]
    print(f"purchase propensity {before['purchase_propensity']:.4f} -> {after['purchase_propensity']:.4f}, "
          f"action {before['next_best_action']} -> {after['next_best_action']}")


def test_stream_and_batch_compute_the_same_activity(spark, streamed, settings_st):
    """The stream's rows (one per person and micro-batch, computed from the events it kept and the
    batch's) against the batch function over every bronze event resolved through the identity map,
    at the same times."""
    lake = Lakehouse.of(settings_st)
    stream_rows = spark.read.format("delta").load(lake.gold(TABLE)).toPandas()
    snapshot = newest_snapshot(spark, lake)
    identity = spark.read.format("delta").load(lake.silver("identity_map"))
    bronze = {s: attach_person(spark.read.format("delta").load(lake.bronze(s)), s, settings_st, identity) for s in STREAMED}
    events = activity_events(bronze["web_events"], bronze["campaign_events"]).cache()
    batches = []
    for as_of, rows in stream_rows.groupby(TIMESTAMP):
        persons = spark.createDataFrame([(p,) for p in rows[ENTITY]], "person_id string")
        batches.append(activity_features(events.join(persons, "person_id", "left_semi"), as_of.to_pydatetime(), snapshot).toPandas())
    events.unpersist()
    batch = pd.concat(batches).sort_values([ENTITY, TIMESTAMP]).reset_index(drop=True)
    stream = stream_rows.sort_values([ENTITY, TIMESTAMP]).reset_index(drop=True)
    assert len(stream) >= len(streamed["others"]) + 2  # the first person in both batches
    assert list(batch[ENTITY]) == list(stream[ENTITY])
    pd.testing.assert_frame_equal(batch[[ENTITY, TIMESTAMP, *NAMES]], stream[[ENTITY, TIMESTAMP, *NAMES]], check_dtype=False)


def _plan(frame) -> str:
    return frame._jdf.queryExecution().executedPlan().toString()


@pytest.mark.parametrize("rows", [5, 4000], ids=["few identifiers: looked up by value", "many: broadcast join"])
def test_a_batch_resolves_through_its_identities_as_through_the_whole_map(spark, settings_st, rows):
    """A batch's persons found through :func:`identities_of` (the cached map's rows for the batch's
    identifiers) are those the whole map gives, on both of its paths."""
    lake = Lakehouse.of(settings_st)
    identity = resolver(spark, lake)
    bronze = {s: spark.read.format("delta").load(lake.bronze(s)).orderBy("event_id").limit(rows).localCheckpoint()
              for s in STREAMED}
    carried = sum(b.select(F.explode(identifier_nodes(s, settings_st)).alias("i")).where("i IS NOT NULL").count()
                  for s, b in bronze.items())  # with repeats, as identities_of counts them
    known = identities_of(identity, bronze, settings_st)
    if rows == 5:
        assert carried <= LOOKUP_LIMIT
        plan = _plan(known)
        assert "InMemoryTableScan" in plan and " OR " in plan and "INSET" not in plan.upper() and "Join" not in plan
    else:
        assert carried > LOOKUP_LIMIT
        assert "BroadcastHashJoin" in _plan(known)
    for source, frame in bronze.items():
        order = ["event_id", "_batch_id", "_ingested_at"]
        narrow = attach_person(frame, source, settings_st, known).toPandas().sort_values(order, ignore_index=True)
        whole = attach_person(frame, source, settings_st, identity).toPandas().sort_values(order, ignore_index=True)
        assert narrow["person_id"].notna().sum() > 0
        pd.testing.assert_frame_equal(narrow, whole)
    identity.unpersist()


def _files_scanned(frame) -> int:
    """Files the (executed) frame's Delta scan read, from the scan's metrics."""
    frame.collect()
    plan, scans = frame._jdf.queryExecution().executedPlan(), []

    def walk(node) -> None:
        if node.nodeName().startswith("Scan parquet"):
            scans.append(node.metrics().apply("numFiles").value())
        children = node.children().iterator()
        while children.hasNext():
            walk(children.next())

    walk(plan)
    assert len(scans) == 1
    return scans[0]


def test_a_batch_reads_only_the_files_of_its_persons_earlier_events(spark, tmp_path):
    """Each batch appends a file to ``stream/activity_events``; a later batch looking up its persons
    by value reads the files whose person range holds one (Delta's data skipping), and gets the rows a
    filter over the whole table gives."""
    path = str(tmp_path / "activity_events")
    at = dt.datetime(2026, 12, 1, 12)
    for person in ("P-a", "P-b", "P-c", "P-d"):
        rows = [(person, f"{person}-{i}", at, "web", "page_view", None) for i in range(3)]
        spark.createDataFrame(rows, EVENTS_SCHEMA).coalesce(1).write.format("delta").mode("append").save(path)
    table = spark.read.format("delta").load(path)
    wanted = spark.createDataFrame([("P-b",), ("P-d",), ("P-b",)], "person_id string")

    found = rows_for(table, "person_id", wanted)

    assert _files_scanned(found) == 2
    assert sorted(found.collect()) == sorted(table.where(F.col("person_id").isin("P-b", "P-d")).collect())
    assert _files_scanned(table) == 4


def _delta_versions(path: str) -> int:
    log = Path(path) / "_delta_log"
    return len(list(log.glob("*.json"))) if log.is_dir() else 0


def test_a_stream_killed_mid_batch_keeps_every_event_exactly_once(spark, streamed, persons, settings_st, tmp_path):
    """SIGKILL right after the batch's bronze commit (before its activity events are appended; the
    push runs beside the bronze append and may or may not have happened), then a restart from the
    checkpoint: bronze, the activity events and the online store hold each event once."""
    lake = Lakehouse.of(settings_st)
    person, crm = persons[1]
    config = tmp_path / "stream.yaml"
    config.write_text(yaml.safe_dump({"spark": {"profile": "test"}, "stream": {"checkpoint": str(tmp_path / "checkpoint")}}))
    now = dt.datetime.now(dt.UTC).replace(microsecond=0, tzinfo=None)
    events = [_web(crm, "add_to_cart", now - dt.timedelta(seconds=30 - i)) for i in range(4)]
    bronze = lake.bronze("web_events")
    versions = _delta_versions(bronze)
    drop(lake, "web_events", events)
    env = {**os.environ, "PRESAGE_HOME": settings_st.root, "MLFLOW_DISABLE_TELEMETRY": "true"}
    command = [sys.executable, "-m", "presage.cli", "stream", "--config", str(config)]
    with open(tmp_path / "stream.log", "w") as log:  # the stream keeps its own descriptor
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: _delta_versions(bronze) > versions or process.poll() is not None, timeout=600)
        assert process.poll() is None, (tmp_path / "stream.log").read_text()[-3000:]
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    ids = [e["event_id"] for e in events]
    kept = spark.read.format("delta").load(lake.stream("activity_events")).where(F.col("event_id").isin(ids)).count()
    assert kept == 0, "killed too late: the batch had appended its activity events"
    rerun = subprocess.run([*command, "--available-now"], env=env, capture_output=True, text=True, timeout=900,
                           check=False)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    in_bronze = spark.read.format("delta").load(bronze).where(F.col("event_id").isin(ids)).groupBy("event_id").count().collect()
    assert {r["event_id"]: r["count"] for r in in_bronze} == dict.fromkeys(ids, 1)
    merged = spark.read.format("delta").load(lake.stream("activity_events")).where(F.col("event_id").isin(ids)).count()
    assert merged == len(ids)
    online = online_activity(settings_st, person)
    assert online["carts_1h"] == [4] and online["new_carts"] == [4]
