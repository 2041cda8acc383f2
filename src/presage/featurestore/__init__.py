"""Feast on the gold tables: opening the repository, online materialization, training sets."""
