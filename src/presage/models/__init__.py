"""Models: labels, training with xgboost.spark, evaluation, MLflow registry (docs/models.md)."""
