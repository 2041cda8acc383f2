"""Identity resolution on hand-made identifier graphs, then on generated data against its truth."""

from __future__ import annotations

import pytest
from pyspark.sql import functions as F

from presage.config import Settings
from presage.privacy import load_key, pseudonymize
from presage.profiles.identity import resolve


def _obs(spark, *rows: list[str]):
    return spark.createDataFrame([(list(r),) for r in rows], "nodes array<string>")


def _persons(resolution) -> dict[str, str | None]:
    return {r["identifier"]: r["person_id"] for r in resolution.identity_map.collect()}


def _groups(resolution) -> set[frozenset[str]]:
    out: dict[str, set[str]] = {}
    for identifier, person in _persons(resolution).items():
        if person is not None:
            out.setdefault(person, set()).add(identifier)
    return {frozenset(v) for v in out.values()}


def test_chain_of_links_is_one_person(spark, settings: Settings) -> None:
    obs = _obs(
        spark,
        ["customer_id:A", "email:e1"],
        ["customer_id:B", "email:e1"],
        ["customer_id:B", "device_id:d1"],
        ["device_id:d1", "customer_id:C"],
        ["customer_id:D"],
    )
    groups = _groups(resolve(obs, settings, None))
    assert groups == {
        frozenset({"customer_id:A", "email:e1", "customer_id:B", "device_id:d1", "customer_id:C"}),
        frozenset({"customer_id:D"}),
    }


def test_shared_email_over_limit_does_not_merge_strangers(spark, settings: Settings) -> None:
    limit = settings.identity.max_customers_per_identifier["email"]
    rows = [[f"customer_id:S{i}", "email:family"] for i in range(limit + 1)]
    resolution = resolve(_obs(spark, *rows, ["customer_id:S0", "phone:p0"]), settings, None)
    persons = _persons(resolution)
    assert persons["email:family"] is None
    shared = {r["identifier"] for r in resolution.identity_map.where("is_shared").collect()}
    assert shared == {"email:family"}
    assert len({persons[f"customer_id:S{i}"] for i in range(limit + 1)}) == limit + 1
    assert persons["phone:p0"] == persons["customer_id:S0"]


def test_email_within_limit_merges(spark, settings: Settings) -> None:
    resolution = resolve(_obs(spark, ["customer_id:X1", "email:x"], ["customer_id:X2", "email:x"]), settings, None)
    assert _groups(resolution) == {frozenset({"customer_id:X1", "customer_id:X2", "email:x"})}


def test_blocked_values_are_ignored(spark, settings: Settings) -> None:
    placeholder = "email:" + pseudonymize("email", "Test@Test.com ", load_key(settings))
    resolution = resolve(_obs(spark, ["customer_id:B1", placeholder], ["customer_id:B2", placeholder]), settings, None)
    persons = _persons(resolution)
    assert placeholder not in persons
    assert persons["customer_id:B1"] != persons["customer_id:B2"]


def test_low_priority_links_are_dropped_from_oversized_persons(spark, settings: Settings) -> None:
    # Two households linked by emails, chained together by devices into a five-customer blob.
    obs = _obs(
        spark,
        ["customer_id:H1", "email:h"], ["customer_id:H2", "email:h"],
        ["customer_id:G1", "email:g"], ["customer_id:G2", "email:g"],
        ["customer_id:H2", "device_id:t1"], ["customer_id:G1", "device_id:t1"],
        ["customer_id:G2", "device_id:t2"], ["customer_id:K", "device_id:t2"],
    )
    assert settings.identity.max_customer_ids_per_person < 5
    groups = _groups(resolve(obs, settings, None))
    assert frozenset({"customer_id:H1", "customer_id:H2", "email:h"}) in groups
    assert frozenset({"customer_id:G1", "customer_id:G2", "email:g"}) in groups
    assert frozenset({"customer_id:K"}) in groups
    # The dropped device links leave the devices as persons of their own, never with a customer.
    assert frozenset({"device_id:t1"}) in groups and frozenset({"device_id:t2"}) in groups


def test_priority_is_configurable(spark, settings: Settings) -> None:
    obs = _obs(spark, ["customer_id:Q1", "email:q"], ["customer_id:Q2", "email:q"], ["customer_id:Q2", "phone:r"], ["customer_id:Q3", "phone:r"])
    strict = settings.model_copy(update={"identity": settings.identity.model_copy(update={"max_customer_ids_per_person": 2})})
    groups = _groups(resolve(obs, strict, None))  # phone is less trusted than email: its link goes
    assert frozenset({"customer_id:Q1", "customer_id:Q2", "email:q"}) in groups
    flipped = strict.identity.model_copy(update={"priority": ["customer_id", "phone", "email", "social_handle", "device_id"]})
    groups = _groups(resolve(obs, strict.model_copy(update={"identity": flipped}), None))
    assert frozenset({"customer_id:Q2", "customer_id:Q3", "phone:r"}) in groups


def _previous(resolution):
    return resolution.identity_map.select(F.col("identifier").alias("node"), "person_id")


def test_ids_are_stable_and_a_new_link_records_a_merge(spark, settings: Settings) -> None:
    before = resolve(_obs(spark, ["customer_id:M1", "email:m1"], ["customer_id:M2", "email:m2"], ["customer_id:M3"]), settings, None)
    ids = _persons(before)
    again = resolve(_obs(spark, ["customer_id:M1", "email:m1"], ["customer_id:M2", "email:m2"], ["customer_id:M3"]), settings, _previous(before))
    assert _persons(again) == ids and again.merges.count() == 0

    linked = _obs(spark, ["customer_id:M1", "email:m1"], ["customer_id:M2", "email:m2"], ["customer_id:M3"], ["email:m1", "device_id:z", "customer_id:M2"])
    after = resolve(linked, settings, _previous(before))
    persons = _persons(after)
    survivor = persons["customer_id:M1"]
    assert survivor == persons["customer_id:M2"] == persons["device_id:z"]
    assert survivor in {ids["customer_id:M1"], ids["customer_id:M2"]}
    assert persons["customer_id:M3"] == ids["customer_id:M3"]
    [merge] = after.merges.collect()
    assert merge["into_person_id"] == survivor
    assert merge["merged_person_id"] == ({ids["customer_id:M1"], ids["customer_id:M2"]} - {survivor}).pop()


def test_a_split_keeps_the_id_with_the_larger_part(spark, settings: Settings) -> None:
    rows = [["customer_id:N1", "email:n"], ["customer_id:N1", "phone:n1"], ["customer_id:N2", "email:n"]]
    before = resolve(_obs(spark, *rows), settings, None)
    old = _persons(before)["customer_id:N1"]
    after = _persons(resolve(_obs(spark, rows[0], rows[1], ["customer_id:N2"]), settings, _previous(before)))
    assert after["customer_id:N1"] == old
    assert after["customer_id:N2"] not in (None, old)


@pytest.mark.slow
def test_generated_identities_match_the_truth_and_rerun_changes_nothing(spark, settings: Settings, ingested) -> None:
    from presage.lakehouse import Lakehouse
    from presage.profiles.evaluate import evaluate
    from presage.profiles.job import build_identity_map

    lake = Lakehouse.of(settings)
    first = build_identity_map(spark, settings, lake)
    assert first.persons > 0 and first.identifiers > first.persons
    report = evaluate(spark, settings, lake)
    print(report)
    # A regression guard on 300 customers, where one household sharing an email moves precision by
    # a point; the acceptance figures on the default 10k data come from bench/identity_quality.py.
    assert report.linkable.recall >= 0.98 and report.linkable.precision >= 0.97
    assert report.all.recall <= report.linkable.recall
    second = build_identity_map(spark, settings, lake)
    assert second.changed == 0 and second.merges == 0
    assert second.persons == first.persons
