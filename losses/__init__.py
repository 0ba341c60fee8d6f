"""Losses: softmax focal loss (dense and gather forms), class weights, the multi-task objective."""
from nlu_collapse.losses.focal import IMPLEMENTATIONS, focal_loss
from nlu_collapse.losses.multitask import PRESETS, TASKS, MultiTaskLoss, TaskWeights, cross_entropy
from nlu_collapse.losses.weights import entity_class_weights, format_weights

__all__ = ["IMPLEMENTATIONS", "PRESETS", "TASKS", "MultiTaskLoss", "TaskWeights", "cross_entropy",
           "entity_class_weights", "focal_loss", "format_weights"]
