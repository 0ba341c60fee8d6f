"""Evaluation with seqeval (entities) and scikit-learn (intents, commands)."""
from evaluation.metrics import Predictions, compute_metrics, entity_type_report, predict

__all__ = ["Predictions", "compute_metrics", "entity_type_report", "predict"]
