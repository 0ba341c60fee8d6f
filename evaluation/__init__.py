"""Evaluation with seqeval (entities) and scikit-learn (intents, commands)."""
from nlu_collapse.evaluation.metrics import compute_metrics, entity_type_report

__all__ = ["compute_metrics", "entity_type_report"]
