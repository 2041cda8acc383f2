import json
from importlib import resources
from pathlib import Path

import pytest
from pyspark.sql.types import StructType

from presage.ingest.expectations import expectations, load_suite
from presage.schemas import (
    RAW_SOURCES,
    bronze_fields,
    event_time_column,
    key_columns,
    load_schema,
    pii_columns,
)

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.parametrize("source", RAW_SOURCES)
def test_every_source_loads_with_keys_and_docs(source: str) -> None:
    schema = load_schema(source)
    assert isinstance(schema, StructType) and len(schema.fields) >= 4
    assert key_columns(schema), f"{source} declares no key"
    assert all(f.metadata.get("description") for f in schema.fields), f"{source}: undocumented column"
    raw = json.loads((resources.files("presage") / "schemas" / f"{source}.json").read_text())
    assert StructType.fromJson(raw) == schema


def test_pii_is_hashed_in_bronze_shape() -> None:
    assert pii_columns(load_schema("customers")) == {"email": "email", "phone": "phone"}
    names = [f.name for f in bronze_fields("customers")]
    assert "email_hash" in names and "phone_hash" in names and "email" not in names


def test_event_time_columns() -> None:
    assert event_time_column(load_schema("orders")) == "order_ts"
    assert event_time_column(load_schema("products")) is None


def test_unknown_schema_lists_known_ones() -> None:
    with pytest.raises(KeyError, match="customers"):
        load_schema("invoices")


@pytest.mark.parametrize("source", RAW_SOURCES)
def test_suite_is_a_gx_suite_on_schema_columns(source: str) -> None:
    from great_expectations.core import ExpectationSuite

    suite = ExpectationSuite(**load_suite(source))
    assert len(suite.expectations) == len(expectations(source, load_schema(source)))


@pytest.mark.parametrize("source", RAW_SOURCES)
def test_readme_documents_every_column(source: str) -> None:
    text = README.read_text()
    section = text.split(f"#### `{source}`", 1)
    assert len(section) == 2, f"README has no section for {source}"
    body = section[1].split("####", 1)[0]
    for field in load_schema(source).fields:
        assert f"`{field.name}`" in body, f"README does not document {source}.{field.name}"
