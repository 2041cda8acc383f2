"""Batch scoring: the tables marketers and budget optimizers act on, and online scores."""
