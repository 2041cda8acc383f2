import hashlib
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from presage import fs
from presage.generate.dirty import SPECS
from presage.generate.params import GenParams
from presage.generate.population import persons
from presage.generate.rand import Draws
from presage.generate.run import generate
from presage.lakehouse import Lakehouse
from presage.schemas import RAW_SOURCES
from tests.conftest import SMALL


def _digests(spark, root: str) -> dict[str, str]:
    out = {}
    for info in fs.list_files(spark, root):
        path = info.path.split(":", 1)[-1]
        out[path.removeprefix(root.split(":", 1)[-1])] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return out


@pytest.mark.slow
def test_same_seed_gives_identical_files(spark, settings, generated, tmp_path) -> None:
    lake = Lakehouse(str(tmp_path / "again"))
    generate(spark, GenParams(**SMALL), lake)
    first = _digests(spark, Lakehouse.of(settings).path("raw"))
    second = _digests(spark, lake.path("raw"))
    assert first and first == second


def test_another_seed_gives_other_people(spark) -> None:
    params = GenParams(customers=50, days=30, seed=1)
    a = persons(spark, params, Draws(1)).select("z_engagement").collect()
    b = persons(spark, params, Draws(2)).select("z_engagement").collect()
    assert a != b


def test_drops_formats_and_dirt(spark, settings, generated) -> None:
    raw = Lakehouse.of(settings).path("raw")
    names = [f.path for f in fs.list_files(spark, raw)]
    assert any(n.endswith(".csv") for n in names)
    assert any(n.endswith(".jsonl") for n in names)
    assert any(n.endswith(".parquet") for n in names)
    for source in RAW_SOURCES:
        info = generated["sources"][source]
        assert len(info["drops"]) >= 1 and info["rows"] > 0
        assert set(info["dirty"]) <= set(SPECS[source].kinds)
    # Several daily drops after the monthly history.
    assert sum(len(d) == 10 for d in generated["sources"]["web_events"]["drops"]) >= 2
    total_dirty = sum(sum(i["dirty"].values()) for i in generated["sources"].values())
    total = sum(i["rows"] for i in generated["sources"].values())
    assert 0.01 < total_dirty / total < 0.04


def test_planted_behaviour_is_learnable_but_noisy(spark, settings, generated) -> None:
    """Engaged persons buy more, yet engagement alone does not separate buyers (not trivial)."""
    truth = Lakehouse.of(settings).truth
    people = spark.read.parquet(f"{truth}/persons")
    ids = spark.read.parquet(f"{truth}/identities").where("kind = 'customer_id'")
    orders = spark.read.option("header", True).csv(f"{Lakehouse.of(settings).raw('orders')}/*/*.csv")
    per_person = orders.join(ids, orders.customer_id == ids.value).groupBy("person_id").count()
    joined = people.join(per_person, "person_id", "left").fillna(0, ["count"])
    corr = joined.stat.corr("z_engagement", "count")
    assert 0.1 < corr < 0.9
    buyers = joined.where("count > 0").count()
    assert 0.1 * joined.count() < buyers < 0.95 * joined.count()
    assert joined.where(F.col("end_day") < SMALL["days"]).count() > 0, "some persons churn in the window"
