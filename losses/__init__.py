"""Losses: softmax focal loss (dense and gather forms), class weights, the multi-task objective."""
from losses.focal import IMPLEMENTATIONS, focal_loss
from losses.multitask import PRESETS, TASKS, MultiTaskLoss, TaskWeights, cross_entropy
from losses.weights import entity_class_weights, format_weights

__all__ = ["IMPLEMENTATIONS", "PRESETS", "TASKS", "MultiTaskLoss", "TaskWeights", "cross_entropy",
           "entity_class_weights", "focal_loss", "format_weights"]
