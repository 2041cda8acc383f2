"""How well identity resolution finds the generator's real persons: pairwise precision and recall.

Over every identifier both the truth and the identity map know (identifiers the truth itself gives
to several persons, like a placeholder address, are left out), a pair of identifiers is *true* when
one person holds both and *predicted* when they resolve to one person id. Shared identifiers (no
person id) count as persons of their own.

Recall is reported twice: over every identifier, and over the *linkable* ones, those the data shows
together with another identifier at least once. An identifier never seen with another (a cookie
that never logged in, a social handle no CRM record or post ties to anyone) cannot be resolved by
any deterministic matcher; the first figure says how much of the truth is out of reach that way.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from presage.config import Settings
from presage.lakehouse import Lakehouse
from presage.privacy import load_key, pseudonymize_column
from presage.profiles.identity import observations


@dataclass(frozen=True)
class PairScore:
    identifiers: int
    true_pairs: int
    predicted_pairs: int
    correct_pairs: int

    @property
    def precision(self) -> float:
        return self.correct_pairs / self.predicted_pairs if self.predicted_pairs else 1.0

    @property
    def recall(self) -> float:
        return self.correct_pairs / self.true_pairs if self.true_pairs else 1.0


def _pairs(df: DataFrame, *columns: str) -> int:
    sizes = df.groupBy(*columns).count()
    return int(sizes.select(F.sum(F.col("count") * (F.col("count") - 1) / 2)).first()[0] or 0)


def score(truth: DataFrame, identity_map: DataFrame) -> PairScore:
    """Pairwise scores of ``identity_map`` (identifier, person_id) against ``truth`` (identifier, person)."""
    unique = truth.groupBy("identifier").agg(F.countDistinct("person").alias("n"), F.first("person").alias("person"))
    unique = unique.where("n = 1").drop("n")
    predicted = identity_map.select("identifier", F.coalesce("person_id", F.concat(F.lit("shared:"), "identifier")).alias("predicted"))
    joined = unique.join(predicted, "identifier").persist()
    result = PairScore(joined.count(), _pairs(joined, "person"), _pairs(joined, "predicted"), _pairs(joined, "person", "predicted"))
    joined.unpersist()
    return result


def generator_truth(spark: SparkSession, settings: Settings) -> DataFrame:
    """The generator's identifier -> person truth, as graph nodes (emails and phones hashed)."""
    key = load_key(settings)
    truth = spark.read.parquet(f"{Lakehouse.of(settings).truth}/identities")
    kind = F.col("kind")
    value = F.when(kind.isin("email", "phone"), F.when(kind == "email", pseudonymize_column("email", F.col("value"), key)).otherwise(
        pseudonymize_column("phone", F.col("value"), key)
    )).otherwise(F.col("value"))
    return truth.select(F.concat(kind, F.lit(":"), value).alias("identifier"), F.col("person_id").cast("string").alias("person"))


@dataclass(frozen=True)
class IdentityReport:
    all: PairScore
    linkable: PairScore

    def __str__(self) -> str:
        return (
            f"identity resolution vs truth: linkable identifiers {self.linkable.identifiers:,d} "
            f"precision {self.linkable.precision:.4f} recall {self.linkable.recall:.4f}; "
            f"all identifiers {self.all.identifiers:,d} precision {self.all.precision:.4f} recall {self.all.recall:.4f}"
        )


def evaluate(spark: SparkSession, settings: Settings, lake: Lakehouse) -> IdentityReport:
    """Score ``silver/identity_map`` against the generator's truth of the same lakehouse."""
    truth = generator_truth(spark, settings)
    identity_map = spark.read.format("delta").load(lake.silver("identity_map"))
    seen_together = observations(spark, lake).where(F.size("nodes") > 1)
    linkable = seen_together.select(F.explode("nodes").alias("identifier")).distinct()
    return IdentityReport(score(truth, identity_map), score(truth.join(linkable, "identifier"), identity_map))
