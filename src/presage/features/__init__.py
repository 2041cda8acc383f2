"""Gold layer: point-in-time feature snapshots per person and as-of date, for Feast."""
