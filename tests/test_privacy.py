import hashlib
import hmac

import pytest
from pyspark.sql import functions as F

from presage.privacy import normalize_email, normalize_phone, pseudonymize, pseudonymize_column

VALUES = ["jane.doe@mail.example", " Jane.Doe@Mail.Example ", "zoë@exämple.org", "+44 7700 900123", "0044 7700-900123"]


def test_normalization() -> None:
    assert normalize_email(" Jane.Doe@Mail.Example ") == "jane.doe@mail.example"
    assert normalize_phone("+44 7700 900123") == normalize_phone("0044 7700-900123") == "447700900123"


@pytest.mark.parametrize("key", [b"short-key", b"k" * 64, b"a-key-longer-than-one-sha256-block-" * 3])
def test_spark_hmac_equals_python_hmac(spark, key: bytes) -> None:
    df = spark.createDataFrame([(v,) for v in VALUES] + [(None,)], "v string")
    rows = df.select(
        "v",
        F.when(F.col("v").contains("@"), pseudonymize_column("email", F.col("v"), key))
        .otherwise(pseudonymize_column("phone", F.col("v"), key))
        .alias("h"),
    ).collect()
    for row in rows:
        if row.v is None:
            assert row.h is None
            continue
        expected = pseudonymize("email" if "@" in row.v else "phone", row.v, key)
        assert row.h == expected
        normal = normalize_email(row.v) if "@" in row.v else normalize_phone(row.v)
        assert row.h == hmac.new(key, normal.encode(), hashlib.sha256).hexdigest()


def test_same_person_same_pseudonym_different_keys_differ() -> None:
    assert pseudonymize("email", "A@B.example", b"k1") == pseudonymize("email", " a@b.example", b"k1")
    assert pseudonymize("email", "a@b.example", b"k1") != pseudonymize("email", "a@b.example", b"k2")
