"""``presage monitor``: drift (PSI) of features and scores, data-quality history, realised model
performance once a horizon has passed, and alerts (see docs/monitoring.md)."""
