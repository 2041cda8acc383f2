"""Pseudonymization of personal identifiers with keyed hashing (HMAC-SHA256).

The HMAC is computed in Spark SQL from ``sha2`` over binary concatenations (RFC 2104), so it runs in
the JVM at full speed with no Python UDF, and equals Python's ``hmac`` to the bit (tested).
Identifiers are normalized first so that ``Jane@X.com `` and ``jane@x.com`` get one pseudonym.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
from pathlib import Path

from pyspark.sql import Column
from pyspark.sql import functions as F

from presage.config import Settings
from presage.lakehouse import Lakehouse

log = logging.getLogger(__name__)

_BLOCK = 64  # SHA-256 block size in bytes
KEY_FILE = "hmac.key"
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"


def load_key(settings: Settings) -> bytes:
    """The HMAC key: from the environment variable named in the config, else the lakehouse's own.

    Without the variable a random key is created once under ``<home>/secrets`` (mode 0600), so the
    embedded default works with no setup and pseudonyms stay stable across runs of one lakehouse.
    Production deployments set the variable from their secret store.
    """
    value = os.environ.get(settings.privacy.key_env)
    if value:
        return value.encode()
    root = Lakehouse.of(settings).secrets
    if "://" in root:
        raise RuntimeError(
            f"set {settings.privacy.key_env}: a key cannot be created in a remote lakehouse ({root})"
        )
    path = Path(root) / KEY_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
        log.warning("%s is not set: created a key for this lakehouse at %s", settings.privacy.key_env, path)
    return path.read_text().strip().encode()


def normalize_email(value: str) -> str:
    return value.strip().lower()


def normalize_phone(value: str) -> str:
    digits = re.sub(r"\D", "", value)
    return digits.removeprefix("00")


def normalize_column(kind: str, column: Column) -> Column:
    """The Spark twin of :func:`normalize_email` / :func:`normalize_phone`; empty becomes null."""
    if kind == "email":
        out = F.lower(F.trim(column))
    elif kind == "phone":
        digits = F.regexp_replace(column, r"\D", "")
        out = F.when(digits.startswith("00"), F.substring(digits, 3, 1 << 20)).otherwise(digits)
    else:
        raise ValueError(f"unknown identifier kind {kind!r}; expected 'email' or 'phone'")
    return F.when(out == "", F.lit(None)).otherwise(out)


def pseudonymize(kind: str, value: str, key: bytes) -> str:
    """HMAC-SHA256 (hex) of a normalized identifier, as stored in bronze."""
    normal = normalize_email(value) if kind == "email" else normalize_phone(value)
    return hmac.new(key, normal.encode(), hashlib.sha256).hexdigest()


def _pads(key: bytes) -> tuple[bytes, bytes]:
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(_BLOCK, b"\0")
    return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)


def hmac_sha256(column: Column, key: bytes) -> Column:
    """HMAC-SHA256 (lowercase hex) of a string column, in Spark SQL; null stays null."""
    inner_pad, outer_pad = _pads(key)
    message = F.encode(column, "UTF-8")
    inner = F.unhex(F.sha2(F.concat(F.lit(inner_pad), message), 256))
    return F.when(column.isNull(), F.lit(None)).otherwise(
        F.sha2(F.concat(F.lit(outer_pad), inner), 256)
    )


def pseudonymize_column(kind: str, column: Column, key: bytes) -> Column:
    """Normalize then HMAC an identifier column."""
    return hmac_sha256(normalize_column(kind, column), key)
