"""Where every table and file lives under the lakehouse root.

One place for the layout, so that moving ``PRESAGE_HOME`` moves raw drops, Delta tables, Feast and
MLflow state together. Paths are plain strings so that URIs (s3a://, abfss://) work the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from presage.config import Settings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


@dataclass(frozen=True)
class Lakehouse:
    root: str

    @classmethod
    def of(cls, settings: Settings) -> Lakehouse:
        return cls(settings.root)

    def path(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def raw(self, source: str) -> str:
        """Folder where drops of one raw source land (any nesting of files below it)."""
        return self.path("raw", source)

    def bronze(self, source: str) -> str:
        return self.path("bronze", source)

    @property
    def quarantine(self) -> str:
        """Rejected rows of every source, with the check that failed."""
        return self.path("bronze", "_quarantine")

    @property
    def ingest_log(self) -> str:
        """Which raw files were planned and committed in which ingestion batch."""
        return self.path("bronze", "_ingest_log")

    @property
    def quality_results(self) -> str:
        """Great Expectations validation results, one row per batch and expectation."""
        return self.path("quality", "validation_results")

    def silver(self, name: str) -> str:
        return self.path("silver", name)

    def read_silver(self, spark: SparkSession, name: str) -> DataFrame:
        """A silver table, or a message saying which command builds it.

        Raises:
            FileNotFoundError: the table does not exist yet.
        """
        from delta.tables import DeltaTable

        path = self.silver(name)
        if not DeltaTable.isDeltaTable(spark, path):
            raise FileNotFoundError(f"silver table {name} not found at {path}: run `presage build-profiles` first")
        return spark.read.format("delta").load(path)

    def gold(self, name: str) -> str:
        return self.path("gold", name)

    def output(self, name: str) -> str:
        """Tables people act on (lead_priority, budget_allocation, ...), partitioned by score_date."""
        return self.path("outputs", name)

    def stream(self, *parts: str) -> str:
        """Real-time state: ``<source>/`` landing folders (the folder source), ``activity_events``
        (resolved recent events) and ``_checkpoints``."""
        return self.path("stream", *parts)

    def landing(self, source: str) -> str:
        """Where the stream's folder source reads one source's JSON-lines files."""
        return self.stream("incoming", source)

    def monitoring(self, name: str) -> str:
        """What ``presage monitor`` finds (drift, quality, performance, alerts), partitioned by monitor_date."""
        return self.path("monitoring", name)

    def report(self, score_date: str) -> str:
        """The HTML page of charts of one score date (``presage report``)."""
        return self.path("reports", f"presage_{score_date}.html")

    def audit(self, name: str) -> str:
        """What privacy jobs did (``erasures``, ``retention``): hashed subjects and counts, never ids."""
        return self.path("audit", name)

    @property
    def truth(self) -> str:
        """Ground truth written by the generator (never read by the pipeline, only by evaluations)."""
        return self.path("truth")

    @property
    def secrets(self) -> str:
        return self.path("secrets")
