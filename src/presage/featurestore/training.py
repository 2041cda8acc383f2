"""Point-in-time correct training data through Feast's historical retrieval (Spark offline store).

Each entity row (customer_id, event_timestamp, any label or extra columns) gets, per feature view,
the newest snapshot at or before its timestamp and within the view's TTL; columns of the entity
rows pass through. The join runs in Spark: nothing is collected to the driver.
"""

from __future__ import annotations

from delta.tables import DeltaTable
from feast import FeatureStore
from feast.errors import FeatureServiceNotFoundException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from presage.features.catalog import ENTITY, TIMESTAMP


def read_entities(spark: SparkSession, path: str) -> DataFrame:
    """Entity rows from a Delta table, or a CSV / JSON-lines / Parquet file or folder (by extension)."""
    if DeltaTable.isDeltaTable(spark, path):
        return spark.read.format("delta").load(path)
    lowered = path.lower().rstrip("/")
    if lowered.endswith(".csv"):
        return spark.read.option("header", True).option("inferSchema", True).csv(path)
    if lowered.endswith((".json", ".jsonl")):
        return spark.read.json(path)
    return spark.read.parquet(path)


def training_set(store: FeatureStore, entities: DataFrame, service: str) -> DataFrame:
    """Entity rows joined point-in-time with the features of a feature service.

    Raises:
        ValueError: the rows lack customer_id or a valid event_timestamp, or the service is unknown.
    """
    missing = [c for c in (ENTITY, TIMESTAMP) if c not in entities.columns]
    if missing:
        raise ValueError(f"entity rows need the columns {ENTITY} and {TIMESTAMP}; missing {missing}")
    rows = entities.withColumn(TIMESTAMP, F.col(TIMESTAMP).try_cast("timestamp"))
    invalid = rows.where(F.col(TIMESTAMP).isNull() | F.col(ENTITY).isNull()).count()
    if invalid:
        raise ValueError(f"{invalid} entity rows have no {ENTITY} or no valid {TIMESTAMP}")
    try:
        features = store.get_feature_service(service)
    except FeatureServiceNotFoundException:
        known = sorted(s.name for s in store.list_feature_services())
        raise ValueError(f"unknown feature service {service!r}; known: {known}") from None
    return store.get_historical_features(entity_df=rows, features=features).to_spark_df()
