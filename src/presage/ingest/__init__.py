"""Validated ingestion of raw drops into bronze Delta tables (see :mod:`presage.ingest.job`)."""
