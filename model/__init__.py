"""The multi-task NLU model: shared encoder, intent / command / entity heads, invalid-label masking."""
from nlu_collapse.model.masking import MaskValue, apply_mask
from nlu_collapse.model.multitask import MultiTaskNLU, build_encoder
from nlu_collapse.model.tokenization import Encoded, build_tiny_tokenizer, encode

__all__ = ["Encoded", "MaskValue", "MultiTaskNLU", "apply_mask", "build_encoder", "build_tiny_tokenizer", "encode"]
