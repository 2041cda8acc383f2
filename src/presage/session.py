"""The one place a SparkSession is built.

Under ``spark-submit`` the session (master, packages, memory) belongs to the submitter, so it is
reused as it is. Run directly, a ``spark_conf/`` profile plus overrides configure it, with Delta's
jars resolved by Maven coordinates and the Python workers pointed at the running interpreter.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from importlib import resources
from pathlib import Path

from pyspark.sql import SparkSession

from presage.config import Settings

log = logging.getLogger(__name__)

DELTA_EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"


def read_profile(profile: str) -> dict[str, str]:
    """Read a spark-defaults style profile: a name from ``spark_conf/`` or a path to a file.

    Raises:
        FileNotFoundError: no such profile, with the names that exist.
    """
    candidate = Path(profile)
    if candidate.suffix == ".conf" and candidate.is_file():
        text = candidate.read_text()
    else:
        folder = resources.files("presage") / "spark_conf"
        file = folder / f"{profile}.conf"
        if not file.is_file():
            known = sorted(p.name.removesuffix(".conf") for p in folder.iterdir() if p.name.endswith(".conf"))
            raise FileNotFoundError(f"unknown Spark profile {profile!r}; known profiles: {known}")
        text = file.read_text()
    conf: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition(" ")
        conf[key] = value.strip()
    return conf


def _under_spark_submit() -> bool:
    # spark-submit's PythonRunner hands the gateway to the driver through these variables.
    return "PYSPARK_GATEWAY_PORT" in os.environ


def get_spark(
    app_name: str, settings: Settings | None = None, overrides: Mapping[str, str] | None = None
) -> SparkSession:
    """Return the session for a job: the active or submitted one, else one built from the profile.

    Args:
        app_name: shown in the Spark UI and logs.
        settings: configuration (profile name and extra Spark settings); defaults when ``None``.
        overrides: Spark settings that beat both the profile and ``settings.spark.conf``.

    Raises:
        RuntimeError: a submitted session without the Delta extension, which cannot be added later.
    """
    settings = settings or Settings()
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    if _under_spark_submit():
        spark = SparkSession.builder.getOrCreate()
        extensions = spark.conf.get("spark.sql.extensions", "") or ""
        if DELTA_EXTENSION not in extensions:
            raise RuntimeError(
                "this Spark session has no Delta Lake support: submit with "
                "--properties-file spark_conf/cluster.conf (or --packages "
                "io.delta:delta-spark_4.2_2.13:4.4.0 and the Delta catalog settings)"
            )
        return spark

    conf = read_profile(settings.spark.profile)
    conf.update(settings.spark.conf)
    conf.update(overrides or {})
    # Executors and the driver must import the same interpreter, or workers miss pandas etc.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(app_name)
    for key, value in conf.items():
        builder = builder.config(key, value)
    if "spark.jars.packages" not in conf and "spark.jars" not in conf:
        from delta import configure_spark_with_delta_pip

        builder = configure_spark_with_delta_pip(builder)
    log.info("starting Spark %s with profile %s", app_name, settings.spark.profile)
    return builder.getOrCreate()
