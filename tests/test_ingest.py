import shutil
from pathlib import Path

import deltalake
import pytest
from pyspark.sql import functions as F

from presage import fs
from presage.generate.dirty import SPECS
from presage.ingest.job import append_once, batch_frames, plan, run
from presage.ingest.read import RawReadError, read_batch
from presage.lakehouse import Lakehouse
from presage.schemas import RAW_SOURCES, load_schema

# Which check must catch each planted kind of dirt (the first failure recorded for the row).
EXPECTED_REASON = {
    "missing_key": "expect_column_values_to_not_be_null",
    "bad_type": "type_mismatch",
    "negative_amount": "expect_column_values_to_be_between",
    "future_timestamp": "expect_column_values_to_be_between",
    "duplicate": "duplicate_key",
    "malformed_record": "malformed_record",
}


def _invalid_reason(source: str) -> str:
    column, _ = SPECS[source].invalid
    return {"country": "expect_column_values_to_match_regex", "rating": "expect_column_values_to_be_between"}.get(
        column, "expect_column_values_to_be_in_set"
    )


def _table(path: str):
    return deltalake.DeltaTable(path).to_pandas()


def _first_batch(frame):
    """Rows of the first ingestion of each source (a later test ingests one more drop)."""
    return frame[frame["_batch_id"].str.endswith("-000001")]


def test_rows_in_equal_bronze_plus_quarantine(settings, generated, ingested) -> None:
    lake = Lakehouse.of(settings)
    quarantine = _first_batch(_table(lake.quarantine))
    for source in RAW_SOURCES:
        rows_in = generated["sources"][source]["rows"]
        bronze = len(_first_batch(_table(lake.bronze(source))))
        rejected = int((quarantine["source"] == source).sum())
        assert bronze + rejected == rows_in, source
        assert rejected == sum(generated["sources"][source]["dirty"].values()), source


@pytest.mark.parametrize("source", RAW_SOURCES)
def test_every_dirty_kind_is_quarantined_with_its_reason(settings, generated, ingested, source) -> None:
    quarantine = _first_batch(_table(Lakehouse.of(settings).quarantine))
    mine = quarantine[quarantine["source"] == source]
    counts = mine.groupby("reason", dropna=False).size().to_dict()
    expected: dict[str, int] = {}
    for kind, n in generated["sources"][source]["dirty"].items():
        reason = _invalid_reason(source) if kind == "invalid_value" else EXPECTED_REASON[kind]
        expected[reason] = expected.get(reason, 0) + n
    assert counts == expected
    assert mine["record"].notna().all() and (mine["failed_checks"].map(len) > 0).all()


def test_gx_results_agree_with_quarantine(settings, ingested) -> None:
    lake = Lakehouse.of(settings)
    results = _table(lake.quality_results)
    quarantine = _table(lake.quarantine)
    checked = 0
    for row in results.to_dict("records"):
        same_batch = (quarantine["source"] == row["source"]) & (quarantine["_batch_id"] == row["_batch_id"])
        flagged = quarantine[same_batch]["failed_checks"].map(
            lambda checks, row=row: any(c["check"] == row["expectation"] and c["column"] == row["column"] for c in checks)
        )
        assert int(flagged.sum()) == row["unexpected_count"], row
        checked += 1
    assert checked >= 8 * 2


def test_no_clear_email_or_phone_in_bronze(spark, settings, ingested) -> None:
    lake = Lakehouse.of(settings)
    ids = spark.read.parquet(f"{lake.truth}/identities").where(F.col("kind").isin("email", "phone")).collect()
    emails = {r.value for r in ids if r.kind == "email"}
    phones = {r.value for r in ids if r.kind == "phone"}
    written_phones = {
        r.phone
        for r in spark.read.option("header", True).csv(f"{lake.raw('customers')}/*/*.csv").select("phone").collect()
        if r.phone
    }
    assert emails and phones and written_phones
    tables = [lake.bronze(s) for s in RAW_SOURCES] + [lake.quarantine]
    for path in tables:
        frame = _table(path)
        for column in frame.columns:
            for value in frame[column].dropna().astype(str):
                low = value.lower()
                assert "@mail.example" not in low and "@inbox.example" not in low and "@post.example" not in low, (path, column, value)
                assert not any(p in value for p in written_phones), (path, column, value)
        assert not emails & set(frame.astype(str).stack().str.lower()), path
        assert not phones & set(frame.astype(str).stack()), path
    # And byte-level: no file anywhere under bronze contains a clear address.
    needles = [e.encode() for e in list(emails)[:200]]
    for info in fs.list_files(spark, lake.path("bronze")):
        data = Path(info.path.split(":", 1)[-1]).read_bytes()
        assert not any(n in data for n in needles), info.path


def test_unknown_columns_are_rescued_and_attributes_kept(settings, ingested) -> None:
    lake = Lakehouse.of(settings)
    orders = _table(lake.bronze("orders"))
    rescued = orders["_rescued_data"].map(lambda m: dict(m) if m is not None else {})
    assert rescued.map(lambda m: "gift_wrap" in m).any()
    customers = _table(lake.bronze("customers"))
    attributes = customers["attributes"].map(dict)
    assert attributes.map(lambda m: {"loyalty_tier", "income_band", "household_size"} <= set(m)).all()
    assert {"_batch_id", "_ingested_at", "_source_file"} <= set(customers.columns)


def test_reingest_adds_nothing(spark, settings, ingested) -> None:
    lake = Lakehouse.of(settings)
    before = {s: deltalake.DeltaTable(lake.bronze(s)).version() for s in RAW_SOURCES}
    assert run(spark, settings) == []
    assert {s: deltalake.DeltaTable(lake.bronze(s)).version() for s in RAW_SOURCES} == before


@pytest.mark.slow
def test_crash_after_bronze_write_resumes_to_clean_result(spark, settings, ingested) -> None:
    """A batch planned and half written (bronze only, then a crash) is resumed: nothing doubled."""
    lake = Lakehouse.of(settings)
    source_dir = Path(lake.raw("orders"))
    daily = max(p for p in source_dir.iterdir() if len(p.name) == 10)
    new_drop = source_dir / "2099-01-01"
    new_drop.mkdir()
    copy = new_drop / "orders-redelivered.csv"
    shutil.copy(next(daily.glob("*.csv")), copy)
    bronze_before = len(_table(lake.bronze("orders")))
    quarantine_before = len(_table(lake.quarantine))

    [batch] = plan(spark, lake, ["orders"])
    assert batch.files == ["2099-01-01/orders-redelivered.csv"]
    frames = batch_frames(spark, settings, lake, batch)
    append_once(frames.bronze, lake.bronze("orders"), "presage-ingest-orders", batch.seq)
    frames.checked.unpersist()  # crash here: quarantine, quality results and commit marker missing

    results = run(spark, settings, ["orders"])
    assert [r.batch_seq for r in results] == [batch.seq]
    rows_in = sum(1 for _ in copy.open()) - 1
    assert results[0].bronze_rows + results[0].quarantined_rows == rows_in
    bronze = _table(lake.bronze("orders"))
    assert len(bronze) == bronze_before + results[0].bronze_rows
    assert (bronze["_batch_id"] == batch.batch_id).sum() == results[0].bronze_rows
    assert len(_table(lake.quarantine)) == quarantine_before + results[0].quarantined_rows
    assert run(spark, settings, ["orders"]) == []


def test_missing_and_unreadable_files_are_named(spark, tmp_path) -> None:
    schema = load_schema("campaign_events")
    missing = str(tmp_path / "nope.parquet")
    with pytest.raises(RawReadError, match="nope.parquet"):
        read_batch(spark, [missing], schema)
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"this is not parquet at all")
    with pytest.raises(RawReadError, match="broken.parquet"):
        read_batch(spark, [str(broken)], schema).count()
    odd = tmp_path / "data.xlsx"
    odd.write_bytes(b"x")
    with pytest.raises(RawReadError, match="data.xlsx"):
        read_batch(spark, [str(odd)], schema)


def test_unknown_source_is_an_error(spark, settings, generated) -> None:
    with pytest.raises(ValueError, match="invoices"):
        run(spark, settings, ["invoices"])
