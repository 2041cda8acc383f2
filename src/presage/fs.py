"""File operations on any Hadoop-supported filesystem (local, s3a://, abfss://, hdfs://).

Raw drops and the lakehouse may live on object stores, so file listing and renames go through the
Hadoop FileSystem of the running Spark session rather than ``os``.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import SparkSession


@dataclass(frozen=True)
class FileInfo:
    path: str
    size: int
    modified_ms: int


def _fs(spark: SparkSession, path: str):
    jvm = spark.sparkContext._jvm
    hpath = jvm.org.apache.hadoop.fs.Path(path)
    return hpath.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), hpath


def exists(spark: SparkSession, path: str) -> bool:
    fs, hpath = _fs(spark, path)
    return bool(fs.exists(hpath))


def list_files(spark: SparkSession, root: str) -> list[FileInfo]:
    """Every data file below ``root``, recursively, sorted by path; hidden files (``.``/``_``) skipped."""
    fs, hpath = _fs(spark, root)
    if not fs.exists(hpath):
        return []
    base = str(fs.makeQualified(hpath).toString()).rstrip("/")
    found = []
    iterator = fs.listFiles(hpath, True)
    while iterator.hasNext():
        status = iterator.next()
        path = status.getPath()
        relative = str(path.toString())[len(base):]
        if any(part.startswith((".", "_")) for part in relative.split("/") if part):
            continue
        found.append(FileInfo(str(path), int(status.getLen()), int(status.getModificationTime())))
    return sorted(found, key=lambda f: f.path)


def first_line(spark: SparkSession, path: str) -> str:
    """The first line of a text file (a CSV header), read without scanning the file."""
    jvm = spark.sparkContext._jvm
    fs, hpath = _fs(spark, path)
    stream = fs.open(hpath)
    try:
        reader = jvm.java.io.BufferedReader(jvm.java.io.InputStreamReader(stream, "UTF-8"))
        line = reader.readLine()
        return "" if line is None else str(line).lstrip("\ufeff")
    finally:
        stream.close()


def mkdirs(spark: SparkSession, path: str) -> None:
    fs, hpath = _fs(spark, path)
    fs.mkdirs(hpath)


def delete(spark: SparkSession, path: str) -> None:
    fs, hpath = _fs(spark, path)
    fs.delete(hpath, True)


def rename(spark: SparkSession, source: str, target: str) -> None:
    fs, src = _fs(spark, source)
    jvm = spark.sparkContext._jvm
    dst = jvm.org.apache.hadoop.fs.Path(target)
    fs.mkdirs(dst.getParent())
    if not fs.rename(src, dst):
        raise OSError(f"could not move {source} to {target}")
